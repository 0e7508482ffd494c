"""The CGI gateway: each request runs a fresh instance of its route's module.

    >>> gateway = Gateway(router, log=print)
    >>> await serve_connection(stream, info, gateway.handle)   # see http_conn

Per request (RFC 3875): the route's module (compiled once) is instantiated,
``_start`` runs with the CGI meta-variables as its environment, the request
body streams on its stdin and its stdout becomes the response: the header
block is parsed (:mod:`.cgi`), and the response head
goes out as soon as the block is complete, then each later write as it
comes. A write waits while the client is slow to read, so a guest never
runs ahead of its client and a response of any size takes constant memory.
stderr goes to the log, a line at a time, tagged with the route and the
request id.

Rule (outcomes -> status): a trap, a non-zero exit, or malformed output
before the header block ends: 500; fuel exhausted: 503; the route's
timeout: 504; all instances busy and the queue full (or the wait past the
timeout): 503 with ``Retry-After``; no route: 404. Once the head is out, a
failure can only close the connection (the client sees a truncated body).

Strategy (speed): the WASI functions a module imports are bound once per
*slot*, a :class:`~asyncwasm.wasi.WasiContext` plus a Linker holding them;
each request takes a free slot, renews its context (fresh fds, stdio and
environment: nothing of the previous request survives) and instantiates
the module through it. Slots are made on demand, at most
``max_concurrency`` per route. The CGI variables a connection's requests
to one route share are made once (:class:`~.cgi.ConnEnviron`, kept in the
exchange's ``conn_cache``), and a run makes a header parser only when its
first write does not hold the whole header block, log lines only when it
writes to stderr.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import h11
import trio

from .._engine import Func
from .._errors import Exit, FuelExhausted, Interrupted, LinkError, Trap
from ..execution import Limits
from ..instance import OneShot
from ..wasi import WasiConfig
from ..wasi.context import WASI_MODULE, WasiContext
from .cgi import BadRequest, CGIError, ConnEnviron, ResponseParser, decode_path, split_head, split_target
from .http_conn import BodyTimeout, BodyTooLarge, Exchange
from .router import Route, Router, remove_dot_segments

__all__ = ["Gateway", "RouteRunner", "Outcome", "RunResult", "Overloaded"]

#: Local redirects (a ``Location: /path`` response) followed for one request.
MAX_LOCAL_REDIRECTS = 5
#: Seconds a client is told to wait after a 503 for a full queue.
RETRY_AFTER = 1
#: Most stderr bytes logged per request, and per line.
MAX_STDERR_BYTES = 64 * 1024
MAX_STDERR_LINE = 4096


class Overloaded(Exception):
    """Every instance of the route is busy and no place in the queue (503)."""


class Outcome(enum.Enum):
    """How a run ended, as the status it maps to: FAILED (a trap, a non-zero
    exit, output that is no CGI response, a module that cannot be
    instantiated) 500, FUEL 503, TIMEOUT 504."""

    OK = "ok"
    FAILED = "failed"
    FUEL = "fuel exhausted"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    detail: str = ""


_OK = RunResult(Outcome.OK)


class _Slot:
    """A WASI context with the module's imports bound to it, and the
    :class:`~asyncwasm.instance.OneShot` that runs instances with them."""

    def __init__(self, runner: "RouteRunner") -> None:
        self.ctx = WasiContext(runner.config)
        externs = []
        for imp in runner.module.imports:
            found = self.ctx.import_for(imp.name, imp.type)  # type: ignore[arg-type]
            if found is None:
                self.ctx.close()
                raise CGIError(f"the module imports {WASI_MODULE}.{imp.name} {imp.type}, "
                               "which WASI does not provide")
            externs.append(Func(*found))
        self.shot = OneShot(runner.module, externs, limits=runner.limits)


class RouteRunner:
    """One route's instances: admission (``max_concurrency``, the queue)
    and :meth:`run`, one fresh instance per call."""

    def __init__(self, route: Route, *, yield_interval: Optional[float] = None) -> None:
        self.route = route
        self.module = route.module
        limits = Limits(fuel=route.fuel, max_memory_pages=route.max_memory_pages)
        self.limits = limits if yield_interval is None else replace(limits, yield_interval=yield_interval)
        self.config = WasiConfig(argv=list(route.argv or [route.name]), env=list(route.env.items()),
                                 preopens=route.preopens)
        self.env = self.config.env_bytes()
        self._free: list[_Slot] = []
        self.slots: list[_Slot] = []  # every slot made (at most max_concurrency), free or in use
        self._waiters = trio.lowlevel.ParkingLot()
        self.admitted = 0  # requests holding one of the max_concurrency places
        self.running = 0   # instances alive now
        self.waiting = 0

    async def check(self) -> None:
        """Make one slot and instance now: raises what every request would
        (:class:`CGIError` for a WASI import that does not exist,
        :class:`~asyncwasm.LinkError` for memory above ``max_memory``,
        :class:`OSError` for a dirs entry that cannot be opened)."""
        slot = self._new_slot()
        try:
            slot.shot.check()
        finally:
            slot.ctx.close()
        self._free.append(slot)

    def _new_slot(self) -> _Slot:
        slot = _Slot(self)
        self.slots.append(slot)
        return slot

    def guest_totals(self) -> tuple[int, float, int]:
        """Fuel, seconds in the engine and host calls of every run so far."""
        fuel, seconds, calls = 0, 0.0, 0
        for slot in self.slots:
            stats = slot.shot.statistics()
            fuel += stats.fuel_used
            seconds += stats.guest_time
            calls += stats.host_calls
        return fuel, seconds, calls

    def admit_now(self) -> bool:
        """Take a place if one is free now (no waiting); pair a True with :meth:`leave`."""
        if self.admitted < self.route.max_concurrency:
            self.admitted += 1
            return True
        return False

    async def admit(self) -> None:
        """Wait for a free instance; :class:`Overloaded` when the queue is
        full or the wait lasts the route's timeout. Pair with :meth:`leave`."""
        if self.admit_now():
            return
        if self.waiting >= self.route.max_queue:
            raise Overloaded(f"{self.route.max_concurrency} instance(s) busy, {self.waiting} request(s) waiting")
        self.waiting += 1
        try:
            with trio.move_on_after(self.route.timeout):
                await self._waiters.park()  # leave() hands its place to us
                return
        finally:
            self.waiting -= 1
        raise Overloaded(f"no instance free within {self.route.timeout:g} s")

    def leave(self) -> None:
        if self._waiters:
            self._waiters.unpark()  # the place goes to the first waiter
        else:
            self.admitted -= 1

    async def run(self, env: list[bytes], stdin: Any, stdout: Any, stderr: Any) -> RunResult:
        """Run one instance to the end with this environment and stdio
        (WasiConfig's kinds); exceptions from the stdio callbacks propagate."""
        slot = self._free.pop() if self._free else self._new_slot()
        self.running += 1
        ctx = slot.ctx
        try:
            ctx.renew(env=env, stdin=stdin, stdout=stdout, stderr=stderr)
            try:
                await slot.shot.run(wasi=ctx, timeout=self.route.timeout)
            except Exit as exc:
                if exc.code != 0:
                    return RunResult(Outcome.FAILED, f"exited with status {exc.code}")
            except FuelExhausted:
                return RunResult(Outcome.FUEL, f"fuel exhausted ({self.route.fuel} units)")
            except Interrupted as exc:
                if exc.timeout is not None:
                    return RunResult(Outcome.TIMEOUT, f"ran past the route's timeout ({self.route.timeout:g} s)")
                return RunResult(Outcome.FAILED, str(exc).splitlines()[0])
            except Trap as exc:
                return RunResult(Outcome.FAILED, f"trapped: {str(exc).splitlines()[0]}")
            except LinkError as exc:
                return RunResult(Outcome.FAILED, f"cannot instantiate: {exc}")
            return _OK
        finally:
            self.running -= 1
            ctx.close()
            self._free.append(slot)


# A guest's stderr cannot move the terminal's cursor or forge log lines.
_CONTROLS = {c: "?" for c in [*range(0x20), 0x7F] if c != 0x09}


class _StderrLines:
    """A guest's stderr as log lines: ``[id] /route: text``."""

    def __init__(self, log: Callable[[str], None], exchange: Exchange, route: Route) -> None:
        self.log = log
        self.exchange = exchange
        self.route = route
        self.partial = b""
        self.total = 0

    @property
    def tag(self) -> str:
        return _tag(self.exchange, self.route)

    def __call__(self, data: bytes) -> None:
        if self.total >= MAX_STDERR_BYTES:
            return
        self.total += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()[:MAX_STDERR_LINE]
        for line in lines:
            self._emit(line)
        if self.total >= MAX_STDERR_BYTES:
            self.flush()
            self.log(f"{self.tag}: (stderr past {MAX_STDERR_BYTES} bytes; the rest is not logged)")

    def _emit(self, line: bytes) -> None:
        text = line[:MAX_STDERR_LINE].rstrip(b"\r").decode("utf-8", "replace")
        self.log(f"{self.tag}: {text.translate(_CONTROLS)}")

    def flush(self) -> None:
        if self.partial:
            self._emit(self.partial)
            self.partial = b""


class _Request:
    """One run's stdio sides: :meth:`write` (stdout: the CGI header block,
    then the body, to the exchange) and :meth:`error` (stderr: log lines).

    Strategy (speed): one object per run; the parser is made only when the
    first write does not hold the whole header block, the log lines only
    when the handler writes to stderr."""

    __slots__ = ("exchange", "route", "log", "max_head_bytes", "parser", "head_seen", "redirect", "stderr")

    def __init__(self, exchange: Exchange, route: Route, log: Callable[[str], None], max_head_bytes: int) -> None:
        self.exchange = exchange
        self.route = route
        self.log = log
        self.max_head_bytes = max_head_bytes
        self.parser: Optional[ResponseParser] = None
        self.head_seen = False
        self.redirect: Optional[bytes] = None
        self.stderr: Optional[_StderrLines] = None

    def write(self, data: bytes) -> Any:
        exchange = self.exchange
        if exchange.head_sent:
            return exchange.send_body_now(data)
        if self.head_seen:
            return None  # a local redirect's body is not sent
        parser = self.parser
        whole = split_head(data, self.max_head_bytes) if parser is None else None
        if whole is None:
            if parser is None:
                parser = self.parser = ResponseParser(self.max_head_bytes)
            body = parser.feed(data)
            head = parser.head
            if head is None:
                return None
        else:
            head, body = whole
        self.head_seen = True
        if head.local_redirect is not None:
            self.redirect = head.local_redirect
            return None
        return exchange.send_head_now(head.status, head.reason, head.headers, body)

    def finish(self) -> None:
        """The handler is done and no head came: :class:`CGIError` saying why."""
        (self.parser or ResponseParser(self.max_head_bytes)).finish()

    def error(self, data: bytes) -> None:
        if self.stderr is None:
            self.stderr = _StderrLines(self.log, self.exchange, self.route)
        self.stderr(data)


def _tag(exchange: Exchange, route: Route) -> str:
    """How log lines name a request: ``[17] /api/...``."""
    return f"[{exchange.id}] {route.path}"


class Gateway:
    """Answers requests with the router's handlers (see the module docstring).

    ``log`` receives handler stderr lines and failures, one line each."""

    def __init__(self, router: Router, *, log: Callable[[str], None] = lambda line: None,
                 yield_interval: Optional[float] = None, max_head_bytes: int = 64 * 1024) -> None:
        self.router = router
        self.log = log
        self.max_head_bytes = max_head_bytes
        self.runners = {route.path: RouteRunner(route, yield_interval=yield_interval) for route in router}

    async def check(self) -> None:
        """Raise for a route no request could run (see :meth:`RouteRunner.check`)."""
        for runner in self.runners.values():
            await runner.check()

    @property
    def instances_running(self) -> int:
        return sum(r.running for r in self.runners.values())

    @property
    def max_instances(self) -> int:
        """Instances that may run at once, over all routes."""
        return sum(r.route.max_concurrency for r in self.runners.values())

    def guest_totals(self) -> tuple[int, float, int]:
        """Fuel, seconds in the engine and host calls of every request so far."""
        totals = [runner.guest_totals() for runner in self.runners.values()]
        return sum(t[0] for t in totals), sum(t[1] for t in totals), sum(t[2] for t in totals)

    @property
    def requests_waiting(self) -> int:
        return sum(r.waiting for r in self.runners.values())

    async def handle(self, exchange: Exchange) -> None:
        """Answer one request (the ``handle`` of :func:`~.http_conn.serve_connection`)."""
        request = exchange.request
        method, target, headers, chunked = request.method, request.target, exchange.headers, exchange.chunked
        for hop in range(MAX_LOCAL_REDIRECTS + 1):
            path, _, query = target.partition(b"?")
            if path[:1] != b"/" or b"%" in path or b"." in path or b"\0" in path:  # else all three are no-ops
                try:
                    path, query = split_target(target)
                    path = remove_dot_segments(decode_path(path))
                except BadRequest as exc:
                    await exchange.respond_error(400, str(exc), close=True)
                    return
            match = self.router.match(path)
            if match is None:
                await exchange.respond_error(404)
                return
            runner = self.runners[match.route.path]
            try:
                if not runner.admit_now():
                    await runner.admit()
            except Overloaded as exc:
                self.log(f"[{exchange.id}] {match.route.path}: 503: {exc}")
                await exchange.respond_error(503, "busy, try again", headers=[(b"Retry-After", b"%d" % RETRY_AFTER)])
                return
            try:
                base = exchange.conn_cache.get(runner)  # the variables every request of this connection and route shares
                if base is None or base.script_name != match.script_name:
                    base = exchange.conn_cache[runner] = ConnEnviron(exchange.info, match.script_name, runner.env)
                env = base.environ(method, target, headers, request.http_version, chunked, match.path_info, query)
                redirect = await self._run(exchange, runner, env, with_body=hop == 0)
            finally:
                runner.leave()
            if redirect is None:
                return
            # RFC 3875 6.2.2: answer as if the client had asked for that URL.
            method, target, chunked = b"GET", redirect, False
            headers = [(n, v) for n, v in headers if n not in (b"content-length", b"content-type", b"transfer-encoding")]
        await exchange.respond_error(500, "too many local redirects")

    async def _run(self, exchange: Exchange, runner: RouteRunner, env: list[bytes], *, with_body: bool) -> Optional[bytes]:
        route = runner.route
        run = _Request(exchange, route, self.log, self.max_head_bytes)
        if with_body:  # the handler is chosen and may start: let an Expect: 100-continue client send
            stdin: Any = exchange.receive_body
            go_on = exchange.send_continue()
            if go_on is not None:
                await go_on
        else:
            stdin = b""
        try:
            result = await runner.run(env, stdin, run.write, run.error)
        except CGIError as exc:
            result = RunResult(Outcome.FAILED, f"bad CGI response: {exc}")
        except BodyTooLarge as exc:
            await self._fail(exchange, _tag(exchange, route), 413, str(exc))
            return None
        except BodyTimeout as exc:
            await self._fail(exchange, _tag(exchange, route), 408, str(exc))
            return None
        except h11.LocalProtocolError as exc:  # more body than its Content-Length
            self.log(f"{_tag(exchange, route)}: {exc} (the handler's Content-Length): closing the connection")
            raise
        finally:
            if run.stderr is not None and run.stderr.partial:
                run.stderr.flush()
        if exchange.head_sent:
            if result.outcome is Outcome.OK:
                try:
                    rest = exchange.end_now()
                    if rest is not None:
                        await rest
                except h11.LocalProtocolError as exc:  # less body than its Content-Length
                    self.log(f"{_tag(exchange, route)}: {exc} (the handler's Content-Length): closing the connection")
                    raise
            else:
                self.log(f"{_tag(exchange, route)}: {result.detail} after the response began: closing the connection")
            return None
        if result.outcome is Outcome.OK:
            if run.redirect is not None:
                return run.redirect
            try:
                run.finish()
            except CGIError as exc:
                result = RunResult(Outcome.FAILED, f"bad CGI response: {exc}")
        status = {Outcome.FUEL: 503, Outcome.TIMEOUT: 504}.get(result.outcome, 500)
        await self._fail(exchange, _tag(exchange, route), status, result.detail)
        return None

    async def _fail(self, exchange: Exchange, tag: str, status: int, why: str) -> None:
        self.log(f"{tag}: {status}: {why}")
        if exchange.head_sent:
            return
        # The reason is logged; only the client's own faults are explained to it.
        client_fault = status in (408, 413)
        await exchange.respond_error(status, why if client_fault else "", close=client_fault)


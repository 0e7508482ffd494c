"""``asyncwasm serve --workers N``: one supervisor process, N worker
processes serving on the same listening sockets.

    asyncwasm serve --workers auto --listen 0.0.0.0:8080 --metrics 127.0.0.1:9090

The supervisor binds the listening sockets (and the metrics port) once,
checks everything a worker would (the module compiles, the TLS pair loads),
then starts each worker as a direct child: ``python -m asyncwasm serve
--worker-control FD``, with the listening sockets and one end of a control
socket inherited. A worker runs ``--instances`` instances exactly as a
single-process server does (its own trio loop, handoff and supervisor) and
accepts from the shared sockets only while one of its instances waits, so an
idle worker takes the next connection and a busy one leaves it in the
kernel's queue for the others.

Why inherited sockets and not SO_REUSEPORT: one accept queue shared by
every worker, so a connection waits for whichever worker is free (the
kernel's SO_REUSEPORT hash picks a worker whatever its load, and the
connections queued on a worker that dies are reset); a port chosen by the
kernel (``:0``) is the same for all; and the supervisor can stop the
listening for everyone at once (see RATIONALE.md).

Rules:

- A worker that dies (a crash, ``kill -9``, the OOM killer) is logged and
  started again with the instances' back-off (``--restart-delay``, doubling
  per consecutive failure up to 30 s, reset after 10 s of healthy life);
  only the connections it held are lost: the ones still queued are taken by
  the other workers.
- SIGTERM/SIGINT: the supervisor shuts the listening sockets down (new
  connections are refused everywhere), sends SIGTERM to every worker, which
  drains its in-flight connections within ``--grace``; a second signal is
  passed on, and workers stop at once. Workers that outlive the grace period
  by 10 s are killed. SIGHUP is passed on (each worker reloads TLS).
- Workers run in their own session, so a terminal's Ctrl-C reaches the
  supervisor only; a worker whose supervisor is gone (its control socket
  closed) shuts down gracefully by itself.
- Control messages are JSON lines: the supervisor sends the parsed command
  line and the module version to serve first, then ``{"id": N, "op":
  "stats"|"health"}``; a worker answers ``{"ready": PID}`` once its
  instances are up, ``{"id": N, "reply": ...}``, and ``{"final":
  SNAPSHOT}`` when it stops. ``/metrics`` asks every worker and sums (see
  :mod:`.metrics`).
- Module delivery: the supervisor alone fetches, verifies (signatures) and
  checks the module, at start and on every reload (its watch or poll
  schedule, SIGHUP, ``POST /reload``), and writes the version to a private
  directory (mode 0700) that the workers read. A reload is two-phase, so
  the workers never serve different versions for long and never a
  half-swapped state: ``{"op": "prepare", "version": ...}`` to every
  worker (each builds the next generation, every instance waiting in
  ``sock_accept``), then ``commit`` to all if every one is ready, else
  ``abort`` to all (rollback). Each worker logs the version it serves. A
  worker started later (one that died) gets the version serving then, and
  is brought up to date if a swap happened while it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any, Awaitable, Callable, Optional, TextIO

import trio

from ..hostnet import format_address, open_listener, parse_address
from .metrics import (MetricsEndpoint, Supervision, add_counters, empty_snapshot, local_health, reload_answer,
                      render, snapshot)
from .source import Refused, Version
from .supervisor import Backoff

__all__ = ["supervise", "worker_main", "Control", "SupervisorLink", "ServeSetup"]

Log = Callable[[str], None]
_REQUEST_TIMEOUT = 2.0
_COMPILE_ALLOWANCE = 120.0  # a prepare's answer waits --start-timeout plus this (reading, compiling)
_KILL_AFTER_GRACE = 10.0
_MAX_MESSAGE = 1 << 20


class Control:
    """One end of a control channel: JSON objects, one per line."""

    def __init__(self, sock: socket.socket) -> None:
        self.stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self._buffer = b""
        self._send_lock = trio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.stream.send_all(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def receive(self) -> Optional[dict[str, Any]]:
        """The next message; None once the other end is gone."""
        while b"\n" not in self._buffer:
            if len(self._buffer) > _MAX_MESSAGE:
                raise ValueError("control message too long")
            try:
                chunk = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self.stream.aclose()


def _jsonable(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed command line, without what JSON cannot carry (handlers)."""
    out = {}
    for key, value in vars(args).items():
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


# -- the supervisor --------------------------------------------------------------------------


class ServeSetup:
    """What ``serve`` loaded and checked from its flags before listening, in
    either mode (socket mode's ``cli.Setup``, ``handler_cli.HandlerSetup``):
    what the supervisor needs of it."""

    def __init__(self, args: argparse.Namespace, tls: Any) -> None:
        self.args = args
        self.tls = tls
        self.fd_limit_raised: Optional[tuple[int, int]] = None  # (before, after), said once serving

    #: The workers serve a module version the supervisor checks and hands
    #: them (socket mode's module delivery), else they load what they serve.
    delivered = False

    @property
    def name(self) -> str:
        """What is served (for the log)."""
        raise NotImplementedError

    @property
    def per_worker(self) -> str:
        """What one worker process runs (for the log)."""
        raise NotImplementedError

    @property
    def addresses(self) -> list[str]:
        from .cli import DEFAULT_LISTEN

        return self.args.listen or [DEFAULT_LISTEN]

    def log_fd_limit(self, log: Log) -> None:
        if self.fd_limit_raised is not None:
            before, after = self.fd_limit_raised
            log(f"open-file limit raised from {before} to {after} (the hard limit)")


class _Worker:
    """The supervisor's view of one running worker process."""

    def __init__(self, index: int, process: trio.Process, control: Control) -> None:
        self.index = index
        self.process = process
        self.control = control
        self.ready = trio.Event()
        self.last = empty_snapshot()  # its latest counters
        self.serves: Optional[str] = None  # the sha256 of the version it serves
        self._replies: dict[int, Any] = {}
        self._replied = trio.lowlevel.ParkingLot()
        self._next = 0

    async def read(self) -> None:
        """Handle the worker's messages until its control socket closes."""
        while True:
            try:
                message = await self.control.receive()
            except (ValueError, json.JSONDecodeError):
                message = None
            if message is None:
                return
            if "ready" in message:
                self.serves = message.get("serves")
                self.ready.set()
            elif "final" in message:
                self.last = message["final"]
            elif "id" in message:
                self._replies[message["id"]] = message.get("reply")
                self._replied.unpark_all()

    async def request(self, op: str, timeout: float = _REQUEST_TIMEOUT, **fields: Any) -> Any:
        """The worker's answer to ``op``, or None when it does not answer in time."""
        self._next += 1
        ident = self._next
        try:
            await self.control.send({"id": ident, "op": op, **fields})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        with trio.move_on_after(timeout):
            while ident not in self._replies:
                await self._replied.park()
        return self._replies.pop(ident, None)

    def signal(self, signum: int) -> None:
        if self.process.returncode is None:
            try:
                self.process.send_signal(signum)
            except ProcessLookupError:
                pass


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class WorkerPool:
    """Runs ``count`` workers of ``setup`` (see the module docstring)."""

    def __init__(self, setup: ServeSetup, count: int, log: Log) -> None:
        self.setup = setup
        self.args = setup.args
        self.count = count
        self.log = log
        self.listeners: list[socket.socket] = []
        self.endpoint: Optional[MetricsEndpoint] = None
        self.workers: list[Optional[_Worker]] = [None] * count
        self.worker_restarts = 0
        self.retired = empty_snapshot()  # counters of workers that are gone
        self.backoff = Backoff(initial=self.args.restart_delay, maximum=max(30.0, self.args.restart_delay))
        self.stopping = False
        self._first_ready = 0
        self._all_ready = trio.Event()
        self.reloader: Any = None  # a Reloader, when the module comes from a source
        self.version: Optional[Version] = None  # the version every worker serves (or is brought to)
        self._files = tempfile.mkdtemp(prefix="asyncwasm-modules-")  # mode 0700: ours only
        self._deploy_lock = trio.Lock()
        self._nursery: Optional[trio.Nursery] = None

    # -- the metrics source ------------------------------------------------------------------
    def _live(self) -> list[_Worker]:
        """Workers whose counters are in the sums: ready, and not yet
        retired (one that just died stays until its counters move to
        ``retired``, in one step, so no sum ever dips)."""
        return [w for w in self.workers if w is not None and w.ready.is_set()]

    def _running(self) -> int:
        return sum(1 for w in self._live() if w.process.returncode is None)

    async def _ask_all(self, op: str, timeout: float = _REQUEST_TIMEOUT, **fields: Any
                       ) -> list[tuple[_Worker, Any]]:
        workers = self._live()
        answers: list[Any] = [None] * len(workers)

        async def ask(i: int, worker: _Worker) -> None:
            answers[i] = await worker.request(op, timeout, **fields)

        async with trio.open_nursery() as nursery:
            for i, worker in enumerate(workers):
                nursery.start_soon(ask, i, worker)
        return list(zip(workers, answers))

    async def metrics(self) -> bytes:
        samples = []
        for worker, answer in await self._ask_all("stats"):
            if answer is not None:
                worker.last = answer
            samples.append(worker.last)  # a worker that did not answer: its latest known counters
        reloads = dict(self.reloader.counts) if self.reloader is not None else {}
        return render(samples, Supervision(workers=self.count, workers_running=self._running(),
                                           worker_restarts=self.worker_restarts, retired=self.retired,
                                           reloads=reloads))

    async def reload(self) -> tuple[int, str]:
        return await reload_answer(self.reloader)

    # -- module delivery (a reload Target) ------------------------------------------------------
    def _publish(self, version: Version) -> dict[str, Any]:
        """Write ``version`` where the workers read it; what they are told of it."""
        path = os.path.join(self._files, f"{version.sha256}.wasm")
        if not os.path.exists(path):  # the serving version's file stays; its bytes are not kept here
            with open(path + ".tmp", "wb") as f:
                f.write(version.data)
            os.replace(path + ".tmp", path)
        return {"path": path, "origin": version.origin, "signer": version.signer, "sha256": version.sha256}

    def _forget_files(self) -> None:
        """Remove the versions no worker will read again (all but the serving one)."""
        keep = f"{self.version.sha256}.wasm" if self.version is not None else None
        for name in os.listdir(self._files):
            if name != keep:
                try:
                    os.unlink(os.path.join(self._files, name))
                except OSError:
                    pass

    async def admit(self, version: Version) -> Any:
        from .server import compile_version

        return await compile_version(version)

    async def deploy(self, version: Version) -> str:
        """Prepare ``version`` in every worker, then commit everywhere, or
        abort everywhere when one could not (see the module docstring)."""
        async with self._deploy_lock:
            info = self._publish(version)
            timeout = self.args.start_timeout + _COMPILE_ALLOWANCE
            answers = await self._ask_all("prepare", timeout, version=info)
            refused = [(worker, answer) for worker, answer in answers if not (answer and answer.get("ok"))]
            if refused or not answers:
                await self._ask_all("abort", timeout)
                self._forget_files()
                if not answers:
                    raise Refused("rolled_back", "no worker is running", version)
                worker, answer = refused[0]
                if answer is None:
                    raise Refused("rolled_back", f"worker {worker.index} did not prepare in time", version)
                raise Refused(answer["outcome"], f"worker {worker.index}: {answer['reason']}", version)
            self.version = version.without_data()
            for worker, answer in await self._ask_all("commit", timeout):
                if answer and answer.get("ok"):
                    worker.serves = version.sha256
            self._forget_files()
            for worker in self._live():  # one that became ready during the prepare: on the old version
                if worker.serves != version.sha256:
                    self._update_later(worker)
            return f"{len(answers)} workers"

    def _update_later(self, worker: _Worker) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._bring_up_to_date, worker)

    async def _bring_up_to_date(self, worker: _Worker) -> None:
        """A worker started with a version replaced meanwhile: swap it too."""
        async with self._deploy_lock:
            version = self.version
            if version is None or worker.serves == version.sha256 or worker.process.returncode is not None:
                return
            timeout = self.args.start_timeout + _COMPILE_ALLOWANCE
            try:
                info = self._publish(version)
            except OSError as exc:
                self.log(f"worker {worker.index}: cannot hand it {version.short}: {exc.strerror or exc}")
                return
            answer = await worker.request("prepare", timeout, version=info)
            if answer and answer.get("ok"):
                answer = await worker.request("commit", timeout)
                worker.serves = version.sha256
            else:
                await worker.request("abort", timeout)
                self.log(f"worker {worker.index}: could not take sha256 {version.short}: "
                         f"{answer['reason'] if answer else 'no answer'}")

    async def health(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "shutting down"
        answers = {worker.index: answer for worker, answer in await self._ask_all("health")}
        running = 0
        for index in range(self.count):
            answer = answers.get(index)
            if answer is None:
                worker = self.workers[index]
                state = "not running" if worker is None else "starting" if not worker.ready.is_set() \
                    else "not answering"
                return False, f"worker {index} is {state}"
            if not answer["healthy"]:
                return False, f"worker {index}: {answer['why']}"
            running += answer["running"]
        return True, f"ok: {self.count} workers, {running} instances running"

    # -- running --------------------------------------------------------------------------------
    def bind(self) -> Optional[tuple[str, int]]:
        """Open the listening sockets and the metrics port; the problem and
        the exit status, if any."""
        args = self.args
        addresses = self.setup.addresses
        try:
            for text in addresses:
                self.listeners.append(open_listener(*parse_address(text), backlog=args.backlog))
        except OSError as exc:
            self.close_listeners()
            return f"cannot listen on {', '.join(addresses)}: {exc.strerror or exc}", 1
        if args.metrics is not None:
            try:
                self.endpoint = MetricsEndpoint.bind(args.metrics, self, self.log)
            except OSError as exc:
                self.close_listeners()
                return f"--metrics {args.metrics}: {exc.strerror or exc}", 2
        return None

    def close_listeners(self) -> None:
        """Stop listening in every process (shutdown(2) acts on the shared
        socket, which the workers hold too), then close ours."""
        for sock in self.listeners:
            if sock.fileno() >= 0:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    async def run(self) -> int:
        scheme = "https" if self.setup.tls is not None else "http"
        version = self.version
        what = f"{version.origin} ({version.describe()})" if version is not None else self.setup.name
        self.log(f"serving {what} with {self.count} worker processes of {self.setup.per_worker}"
                 + (f"; TLS: {self.setup.tls.describe()}" if self.setup.tls else ""))
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._signals, nursery.cancel_scope)
                if self.reloader is not None:
                    nursery.start_soon(self.reloader.run)
                if self.endpoint is not None:
                    await nursery.start(self.endpoint.serve)
                    self.log(f"metrics on http://{self.endpoint.address}/metrics, health on /healthz")
                slots = trio.CancelScope()

                async def run_slots() -> None:
                    with slots:
                        async with trio.open_nursery() as inner:
                            for index in range(self.count):
                                inner.start_soon(self._slot, index)
                    nursery.cancel_scope.cancel()  # every worker is gone: nothing left to do

                nursery.start_soon(run_slots)
                await self._all_ready.wait()
                for sock in self.listeners:
                    self.log(f"listening on {scheme}://{format_address(sock.getsockname())}/ "
                             f"({self.count} workers x {self.setup.per_worker})")
        finally:
            self.close_listeners()
            for worker in self.workers:
                if worker is not None:
                    worker.signal(signal.SIGKILL)
            shutil.rmtree(self._files, ignore_errors=True)
        self.log("stopped")
        return 0

    def _ready_once(self) -> None:
        self._first_ready += 1
        if self._first_ready == self.count:
            self._all_ready.set()

    async def _spawn(self, index: int) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            fds = [sock.fileno() for sock in self.listeners]
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "asyncwasm", "serve", "--worker-control", str(theirs.fileno())],
                pass_fds=[theirs.fileno(), *fds], start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker = _Worker(index, process, Control(ours))
        await worker.control.send({"args": _jsonable(self.args), "index": index, "listen_fds": fds,
                                   "workers": self.count,
                                   "version": self._publish(self.version) if self.version is not None else None})
        return worker

    async def _slot(self, index: int) -> None:
        failures = 0
        first = True
        while not self.stopping:
            began = trio.current_time()
            try:
                worker = await self._spawn(index)
            except OSError as exc:
                self.log(f"worker {index}: cannot start: {exc.strerror or exc}")
                code: Optional[int] = None
            else:
                self.workers[index] = worker
                self.log(f"worker {index}: started (pid {worker.process.pid})")
                async with trio.open_nursery() as nursery:
                    read_all = trio.Event()

                    async def read() -> None:
                        await worker.read()
                        read_all.set()

                    nursery.start_soon(read)
                    await self._until_ready(worker, first)
                    first = False
                    code = await worker.process.wait()
                    with trio.move_on_after(1.0):  # its last words (final counters) precede the end of file
                        await read_all.wait()
                    nursery.cancel_scope.cancel()
                add_counters(self.retired, worker.last)  # and out of the live sums, with no await between
                self.workers[index] = None
                await worker.control.aclose()
            if first:
                first = False
                self._ready_once()
            if self.stopping:
                self.log(f"worker {index}: {_describe_exit(code) if code is not None else 'not started'}")
                return
            lasted = trio.current_time() - began
            failures = 1 if lasted >= self.backoff.reset_after else failures + 1
            delay = self.backoff.delay(failures)
            what = _describe_exit(code) if code is not None else "failed to start"
            self.log(f"worker {index}: {what}; restarting in {delay:.3g} s")
            self.worker_restarts += 1
            await trio.sleep(delay)

    async def _until_ready(self, worker: _Worker, first: bool) -> None:
        async with trio.open_nursery() as nursery:
            async def exited() -> None:
                await worker.process.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(exited)
            await worker.ready.wait()
            self.log(f"worker {worker.index}: ready")
            nursery.cancel_scope.cancel()
        if first:
            self._ready_once()
        if self.version is not None and worker.ready.is_set() and worker.serves != self.version.sha256:
            self._update_later(worker)

    async def _signals(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                live = [w for w in self.workers if w is not None]
                if signum == signal.SIGHUP:
                    if self.setup.tls is not None:
                        self.log(f"SIGHUP: passed on to {len(live)} worker(s) (TLS)")
                        for worker in live:
                            worker.signal(signal.SIGHUP)
                    if self.reloader is not None:
                        self.reloader.request("SIGHUP")
                elif not self.stopping:
                    self.stopping = True
                    self.log(f"{name}: shutting down gracefully (again to stop at once): "
                             f"stopped listening, draining {len(live)} worker(s)")
                    self.close_listeners()
                    for worker in live:
                        worker.signal(signal.SIGTERM)
                    trio.lowlevel.spawn_system_task(self._kill_late, self.args.grace + _KILL_AFTER_GRACE)
                else:
                    self.log(f"{name} again: stopping the workers now")
                    for worker in live:
                        worker.signal(signal.SIGTERM)
                    trio.lowlevel.spawn_system_task(self._kill_late, 2.0)

    async def _kill_late(self, seconds: float) -> None:
        await trio.sleep(seconds)
        for worker in self.workers:
            if worker is not None and worker.process.returncode is None:
                self.log(f"worker {worker.index}: still running after {seconds:g} s: killed")
                worker.signal(signal.SIGKILL)


async def supervise(setup: ServeSetup, count: int, log: Log) -> int:
    """Serve with ``count`` worker processes until a signal (from
    :func:`asyncwasm.serve.cli.serve`); the exit status."""
    pool = WorkerPool(setup, count, log)
    try:
        problem = pool.bind()
        if problem is not None:
            message, status = problem
            log(f"error: {message}")
            return status
        refusal = await _load(pool, setup, log) if setup.delivered else None
        if refusal is not None:
            pool.close_listeners()
            if pool.endpoint is not None:
                pool.endpoint.sock.close()
            log(f"error: {refusal}")
            return 1
        setup.log_fd_limit(log)
        return await pool.run()
    finally:
        shutil.rmtree(pool._files, ignore_errors=True)


async def _load(pool: WorkerPool, setup: Any, log: Log) -> Optional[str]:
    """The first version, checked here once (it compiles and instantiates),
    so a module that cannot serve fails or falls back before any worker
    starts; the problem, if none can serve."""
    from .._errors import LinkError, Trap
    from .generation import Settings, check_instantiable
    from .reload import Reloader
    from .server import server_limits

    checks = Settings(limits=server_limits(setup.limits), env=dict(setup.args.env), net_policy=setup.policy)

    async def check(module: Any) -> None:
        await check_instantiable(module, checks)

    try:
        if setup.source is None:
            assert setup.version is not None
            module = await pool.admit(setup.version)
            try:
                await check(module)
            except (LinkError, Trap, OSError) as exc:
                return f"cannot instantiate {setup.name}: {exc}"
            version = setup.version
        else:
            pool.reloader = Reloader(setup.source, pool, log)
            version, _ = await pool.reloader.initial(check)
        pool._publish(version)  # the workers read it from there; only the file keeps the bytes
        pool.version = version.without_data()
    except Refused as exc:
        return f"cannot serve {setup.name}: refused ({exc.outcome}): {exc}"
    return None


# -- a worker ---------------------------------------------------------------------------------


class SupervisorLink:
    """A worker's side of its control socket, whatever it serves: once the
    server is up, :meth:`answer` says ``ready`` (with the ``ready`` fields)
    and answers ``stats`` and ``health`` with ``snapshot(server)`` and
    ``health(server)`` (healthy, why, instances running), and any other op
    in ``ops`` with ``await ops[op](server, message)``, each in its own task
    (a reload's prepare takes long: stats and health go on meanwhile);
    :meth:`finish` sends the final counters."""

    def __init__(self, control: Control, log: Log, snapshot: Callable[[Any], dict[str, Any]],
                 health: Callable[[Any], tuple[bool, str, int]],
                 ops: Optional[dict[str, Callable[[Any, dict[str, Any]], Awaitable[Any]]]] = None,
                 ready: Optional[dict[str, Any]] = None) -> None:
        self.control = control
        self.log = log
        self.snapshot = snapshot
        self.health = health
        self.ops = ops or {}
        self.ready = ready or {}
        self.final: dict[str, Any] = {}

    async def answer(self, server: Any) -> None:
        await self.control.send({"ready": os.getpid(), **self.ready})
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    message = await self.control.receive()
                    if message is None:  # the supervisor is gone: stop too
                        self.log("the supervisor is gone: shutting down")
                        server.shutdown()
                        return
                    nursery.start_soon(self._handle, server, message)
        finally:
            self.final.update(self.snapshot(server))

    async def _handle(self, server: Any, message: dict[str, Any]) -> None:
        op = message.get("op")
        reply: Any = None
        if op == "stats":
            reply = self.snapshot(server)
        elif op == "health":
            healthy, why, running = self.health(server)
            reply = {"healthy": healthy, "why": why, "running": running}
        elif op in self.ops:
            reply = await self.ops[op](server, message)
        try:
            await self.control.send({"id": message.get("id"), "reply": reply})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def finish(self, status: int) -> int:
        if self.final:
            try:
                await self.control.send({"final": self.final})
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await self.control.aclose()
        return status


async def worker_main(args: argparse.Namespace, err: TextIO) -> int:
    """A worker process: read the command line from the control socket,
    serve on the inherited listeners, answer the supervisor."""
    from . import handler_cli
    from .cli import _logger, _Refused, load_setup, serve_one
    from .handoff import Handoff
    from .server import SwapFailed, compile_version

    control = Control(socket.socket(fileno=args.worker_control))
    config = await control.receive()
    if config is None:
        return 1
    index = config["index"]
    log = _logger(err, prefix=f"worker {index}: ")
    worker_args = argparse.Namespace(**config["args"])
    worker_args.env = [tuple(pair) for pair in worker_args.env]
    worker_args.worker_control = None
    listeners = [socket.socket(fileno=fd) for fd in config["listen_fds"]]
    if handler_cli.wanted(worker_args):
        return await handler_cli.serve_worker(worker_args, listeners, control, log)
    try:
        setup = load_setup(worker_args, source=False)
        setup.version = _read_version(config["version"])
    except _Refused as exc:
        log(f"error: {exc}")
        return exc.status
    except ValueError as exc:
        log(f"error: {exc}")
        return 1
    handoff = Handoff(listeners, tls=setup.tls, log=log)
    prepared: list[Any] = []  # the generation prepared for a reload, until commit or abort

    async def prepare(server: Any, message: dict[str, Any]) -> dict[str, Any]:
        try:
            version = await trio.to_thread.run_sync(_read_version, message.get("version") or {})
            module = await compile_version(version)
            prepared.append(await server.prepare(module, version))
        except ValueError as exc:
            return {"ok": False, "outcome": "fetch_failed", "reason": str(exc)}
        except Refused as exc:
            return {"ok": False, "outcome": exc.outcome, "reason": str(exc)}
        except SwapFailed as exc:
            return {"ok": False, "outcome": "rolled_back", "reason": str(exc)}
        return {"ok": True, "generation": prepared[-1].number}

    async def commit(server: Any, message: dict[str, Any]) -> dict[str, Any]:
        if not prepared:
            return {"ok": False, "reason": "nothing prepared"}
        generation = prepared.pop()
        server.commit(generation)
        version = generation.version
        log(f"serving {version.origin} ({version.describe()}) in generation {generation.number}")
        return {"ok": True, "generation": generation.number}

    async def abort(server: Any, message: dict[str, Any]) -> dict[str, Any]:
        if not prepared:
            return {"ok": False, "reason": "nothing prepared"}
        await server.abort(prepared.pop())
        return {"ok": True}

    def health(server: Any) -> tuple[bool, str, int]:
        return (*local_health(server), server.running)

    link = SupervisorLink(control, log, snapshot, health, ops={"prepare": prepare, "commit": commit, "abort": abort},
                          ready={"serves": setup.version.sha256 if setup.version else None})
    return await link.finish(await serve_one(setup, handoff, log, companion=link.answer))


def _read_version(info: dict[str, Any]) -> Version:
    """The version the supervisor wrote for the workers; ValueError when
    the file is gone or is not what it said."""
    try:
        with open(info["path"], "rb") as f:
            data = f.read()
    except (KeyError, OSError) as exc:
        raise ValueError(f"cannot read the module from the supervisor: {exc}") from None
    version = Version(data, info["origin"], info.get("signer"))
    if version.sha256 != info.get("sha256"):
        raise ValueError(f"the module from the supervisor is not sha256 {str(info.get('sha256'))[:12]}")
    return version

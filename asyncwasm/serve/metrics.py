"""Metrics and health of ``asyncwasm serve``: Prometheus text at ``/metrics``
and a health check at ``/healthz``.

    >>> sample = snapshot(server)                       # one process's counters, a plain dict
    >>> text = render([sample], Supervision(workers=1))  # Prometheus text format
    >>> endpoint = MetricsEndpoint.bind("127.0.0.1:9090", source)
    >>> nursery.start_soon(endpoint.serve)

Strategy: every worker process (or the only one) reduces its state to a
:func:`snapshot` (socket mode) or a :func:`handler_snapshot` (handler
mode), a dict of numbers that crosses process boundaries as JSON. :func:`render` sums the snapshots of all workers, adds what the
supervisor counts itself (worker restarts, and the counters of workers
that died, so every sum stays monotonic), and writes the result with
``prometheus_client``'s exposition code. Names start with ``asyncwasm_``;
labels are small, fixed sets (a reason, a status class), never per
connection, path or route. Handler mode adds its own families (requests by
status class, requests in flight and waiting, a request duration
histogram with fixed buckets) to the common ones.

The endpoint is a tiny HTTP/1.1 server (trio + h11) in the serving process
or the workers' supervisor: ``GET /metrics``, ``GET /healthz`` (200 while
every worker has live instances, else 503 with the reason), ``POST
/reload`` (check the module source now; see :func:`reload_status`),
anything else 404. Reading a request and writing the answer have a 10 s
budget each; a reload's answer waits for it up to 60 s (then 202: still
under way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Protocol

import h11
import trio
from prometheus_client.core import (CollectorRegistry, CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..hostnet import format_address, open_listener, parse_address
from .http_conn import DURATION_BUCKETS
from .source import OUTCOMES
from .supervisor import REASONS
from .tls_connection import HANDSHAKE_FAILURES

__all__ = ["snapshot", "handler_snapshot", "empty_snapshot", "add_counters", "render", "Supervision",
           "MetricsSource", "MetricsEndpoint", "LocalSource", "local_health", "handler_health", "reload_status",
           "reload_answer"]

# Counters of a snapshot (summed over workers, kept for dead ones); the rest are gauges.
_COUNTERS = ("connections_accepted", "tls_handshakes_ok", "fuel", "guest_seconds", "host_calls",
             "received_bytes", "sent_bytes", "http_duration_sum")
_COUNTER_GROUPS = ("tls_handshake_failures", "instance_restarts", "module_reloads", "http_requests")
_GAUGES = ("connections_active", "instances_running", "http_requests_active", "http_requests_waiting")
#: Handler mode's ``code`` label: the status class of a response.
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def empty_snapshot() -> dict[str, Any]:
    """A snapshot of nothing (every counter 0)."""
    return {"connections_accepted": 0, "connections_active": 0, "tls_handshakes_ok": 0,
            "tls_handshake_failures": dict.fromkeys(HANDSHAKE_FAILURES, 0), "instances": 0,
            "instances_running": 0, "instance_restarts": dict.fromkeys(REASONS, 0), "fuel": 0,
            "guest_seconds": 0.0, "host_calls": 0, "received_bytes": 0, "sent_bytes": 0,
            "module_reloads": dict.fromkeys(OUTCOMES, 0), "module": None}


def module_info(version: Any) -> Any:
    """What ``asyncwasm_module_info`` says of a :class:`~asyncwasm.serve.source.Version` (None: nothing)."""
    if version is None:
        return None
    return {"sha256": version.sha256, "source": version.origin, "signer": version.signer or ""}


def snapshot(server: Any) -> dict[str, Any]:
    """The counters of one :class:`~asyncwasm.serve.Server` (and its handoff)."""
    connections = server.handoff.statistics()
    fuel, seconds, calls = server.guest_totals()
    reloader = server.reloader
    return {"connections_accepted": connections["accepted"], "connections_active": connections["active"],
            "tls_handshakes_ok": connections["handshakes_ok"],
            "tls_handshake_failures": connections["handshakes_failed"], "instances": server.instances,
            "instances_running": server.running, "instance_restarts": server.restarts_by_reason(),
            "fuel": fuel, "guest_seconds": seconds, "host_calls": calls,
            "received_bytes": connections["received"], "sent_bytes": connections["sent"],
            "module_reloads": dict(reloader.counts) if reloader is not None else {},
            "module": module_info(server.version)}


def handler_snapshot(server: Any) -> dict[str, Any]:
    """The counters of one :class:`~asyncwasm.serve.HandlerServer`: the
    common ones (connections, TLS, instances, guest work, bytes: HTTP bytes,
    plaintext under TLS) and handler mode's (``http_*``)."""
    stats = server.statistics()
    counters = server.counters
    gateway = server.gateway
    classes = dict.fromkeys(STATUS_CLASSES, 0)
    for status, count in stats.responses.items():
        key = f"{status // 100}xx"
        if key in classes:
            classes[key] += count
    fuel, seconds, calls = gateway.guest_totals()
    return {"connections_accepted": stats.accepted, "connections_active": stats.connections_active,
            "tls_handshakes_ok": stats.tls_handshakes,
            "tls_handshake_failures": dict(dict.fromkeys(HANDSHAKE_FAILURES, 0), **stats.tls_handshake_failures),
            "instances": gateway.max_instances, "instances_running": stats.instances_running,
            "instance_restarts": dict.fromkeys(REASONS, 0), "fuel": fuel, "guest_seconds": seconds,
            "host_calls": calls, "received_bytes": counters.bytes_received, "sent_bytes": counters.bytes_sent,
            "http_requests": classes, "http_requests_active": stats.requests_active,
            "http_requests_waiting": stats.requests_waiting, "http_duration_buckets": list(counters.durations),
            "http_duration_sum": counters.duration_sum}


def add_counters(total: dict[str, Any], sample: dict[str, Any]) -> None:
    """Add the counters (not the gauges) of ``sample`` to ``total``."""
    for name in _COUNTERS:
        total[name] = total.get(name, 0) + sample.get(name, 0)
    for group in _COUNTER_GROUPS:
        for key, value in sample.get(group, {}).items():
            counts = total.setdefault(group, {})
            counts[key] = counts.get(key, 0) + value
    buckets = sample.get("http_duration_buckets")
    if buckets is not None:
        into = total.setdefault("http_duration_buckets", [0] * len(buckets))
        for index, count in enumerate(buckets):
            into[index] += count


@dataclass
class Supervision:
    """What the process that serves the metrics knows beyond the samples:
    how many workers should run and do, their restarts, and the summed
    counters of workers that are gone."""

    workers: int = 1
    workers_running: int = 1
    worker_restarts: int = 0
    retired: dict[str, Any] = field(default_factory=empty_snapshot)
    reloads: dict[str, int] = field(default_factory=dict)  # the supervisor's reload attempts, by outcome


class _Samples:
    """A prometheus_client collector over fixed values."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def _families(total: dict[str, Any], supervision: Supervision) -> list[Metric]:
    def counter(name: str, doc: str, value: float) -> Metric:
        family = CounterMetricFamily(f"asyncwasm_{name}", doc)
        family.add_metric([], value)
        return family

    def gauge(name: str, doc: str, value: float) -> Metric:
        return GaugeMetricFamily(f"asyncwasm_{name}", doc, value=value)

    def by(name: str, doc: str, label: str, values: dict[str, int]) -> Metric:
        family = CounterMetricFamily(f"asyncwasm_{name}", doc, labels=[label])
        for key in sorted(values):
            family.add_metric([key], values[key])
        return family

    return [
        counter("connections_accepted", "TCP connections accepted.", total["connections_accepted"]),
        gauge("connections_active", "Connections open now (waiting for or held by an instance).",
              total["connections_active"]),
        counter("tls_handshakes", "TLS handshakes completed.", total["tls_handshakes_ok"]),
        by("tls_handshake_failures", "TLS handshakes that failed, by reason.", "reason",
           total["tls_handshake_failures"]),
        gauge("instances", "Instances configured (all workers).", total["instances"]),
        gauge("instances_running", "Instances running now.", total["instances_running"]),
        by("instance_restarts", "Instance restarts, by how the previous life ended.", "reason",
           total["instance_restarts"]),
        gauge("workers", "Worker processes configured.", supervision.workers),
        gauge("workers_running", "Worker processes running now.", supervision.workers_running),
        counter("worker_restarts", "Worker processes restarted after they died.", supervision.worker_restarts),
        counter("fuel_consumed", "Fuel consumed by guests (about one unit per instruction).", total["fuel"]),
        counter("guest_cpu_seconds", "Seconds spent running guest code in the engine.", total["guest_seconds"]),
        counter("host_calls", "Host functions (WASI) called by guests.", total["host_calls"]),
        counter("received_bytes", "Bytes received on connections (TLS records included).",
                total["received_bytes"]),
        counter("sent_bytes", "Bytes sent on connections (TLS records included).", total["sent_bytes"]),
        # handler mode has no module delivery: its own families instead
        *(_handler_families(total, counter, gauge, by) if "http_requests" in total else [
            by("module_reloads", "Module reload attempts, by outcome.", "outcome", total["module_reloads"]),
            _module_info(total["modules"])]),
    ]


def _handler_families(total: dict[str, Any], counter: Any, gauge: Any, by: Any) -> list[Metric]:
    requests = dict(dict.fromkeys(STATUS_CLASSES, 0), **total["http_requests"])
    buckets = total.get("http_duration_buckets") or [0] * (len(DURATION_BUCKETS) + 1)
    cumulative, running = [], 0
    for bound, count in zip([*(f"{b:g}" for b in DURATION_BUCKETS), "+Inf"], buckets):
        running += count
        cumulative.append((bound, running))
    duration = HistogramMetricFamily(
        "asyncwasm_http_request_duration_seconds",
        "Seconds from a request's head to the end of its response (handler mode).",
        buckets=cumulative, sum_value=total.get("http_duration_sum", 0.0))
    return [
        by("http_requests", "Requests answered (handler mode), by status class.", "code", requests),
        gauge("http_requests_active", "Requests in progress now (handler mode).",
              total.get("http_requests_active", 0)),
        gauge("http_requests_waiting", "Requests waiting for a free instance of their route (handler mode).",
              total.get("http_requests_waiting", 0)),
        duration,
    ]


def _module_info(modules: dict[tuple[str, str, str], int]) -> Metric:
    family = GaugeMetricFamily("asyncwasm_module_info", "The module version served (sha256, where it came "
                               "from, the id of its signing key); the value is how many processes serve it.",
                               labels=["sha256", "source", "signer"])
    for labels in sorted(modules):
        family.add_metric(list(labels), modules[labels])
    return family


def render(samples: list[dict[str, Any]], supervision: Supervision) -> bytes:
    """Prometheus text for the live workers' ``samples`` plus what
    ``supervision`` adds: counters summed with the dead workers', gauges
    over the live ones."""
    total = empty_snapshot()
    add_counters(total, supervision.retired)
    add_counters(total, {"module_reloads": supervision.reloads})
    modules: dict[tuple[str, str, str], int] = {}
    for sample in samples:
        add_counters(total, sample)
        for name in _GAUGES:
            total[name] = total.get(name, 0) + sample.get(name, 0)
        info = sample.get("module")
        if info:
            labels = (info["sha256"], info["source"], info["signer"])
            modules[labels] = modules.get(labels, 0) + 1
    total["modules"] = modules
    total["instances"] = sum(sample.get("instances", 0) for sample in samples)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Samples(_families(total, supervision)))  # type: ignore[arg-type]
    return generate_latest(registry)


class MetricsSource(Protocol):
    """What the endpoint serves: ``metrics()`` (Prometheus text),
    ``health()`` (healthy?, one line) and ``reload()`` (HTTP status, one
    line: see :func:`reload_answer`)."""

    async def metrics(self) -> bytes: ...

    async def health(self) -> tuple[bool, str]: ...

    async def reload(self) -> tuple[int, str]: ...


_REQUEST_TIMEOUT = 10.0
_RELOAD_WAIT = 60.0
_MAX_REQUEST = 16384


def reload_status(outcome: str) -> int:
    """The ``POST /reload`` status of a reload outcome: 200 when the
    newest version serves (``swapped``, ``unchanged``), 502 when the source
    could not be fetched, 422 when the version was refused (``signature``,
    ``invalid``, ``rolled_back``)."""
    if outcome in ("swapped", "unchanged"):
        return 200
    return 502 if outcome == "fetch_failed" else 422


async def reload_answer(reloader: Any) -> tuple[int, str]:
    """``POST /reload`` on a :class:`~asyncwasm.serve.reload.Reloader` (None: no source: 404)."""
    if reloader is None:
        await trio.lowlevel.checkpoint()
        return 404, "no module source to reload (the embedded module, or handler mode)"
    attempt = await reloader.check_now("POST /reload")
    return reload_status(attempt.outcome), attempt.line


class MetricsEndpoint:
    """``/metrics`` and ``/healthz`` over HTTP/1.1 on a listening socket it owns."""

    def __init__(self, sock: Any, source: MetricsSource, log: Callable[[str], None] = lambda line: None) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.source = source
        self.log = log
        self.requests = 0

    @classmethod
    def bind(cls, address: str, source: MetricsSource, log: Callable[[str], None] = lambda line: None
             ) -> "MetricsEndpoint":
        """Listen on ``"HOST:PORT"``; OSError when it cannot be bound (in use)."""
        return cls(open_listener(*parse_address(address), backlog=64), source, log)

    @property
    def address(self) -> str:
        return format_address(self.sock.getsockname())

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Answer requests until cancelled (then the socket is closed)."""
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(self.sock))
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                await trio.serve_listeners(self._connection, [listener], handler_nursery=nursery)
        finally:
            await listener.aclose()

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(_REQUEST_TIMEOUT):
                request = await self._read_request(stream)
            if request is not None:
                conn, event = request
                status, body, kind = await self._respond(event)
                with trio.move_on_after(_REQUEST_TIMEOUT):
                    await self._send(stream, conn, event, status, body, kind)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass
        await stream.aclose()

    async def _read_request(self, stream: trio.SocketStream) -> Optional[tuple[h11.Connection, h11.Request]]:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(_MAX_REQUEST)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.DONE:
                    return None
                continue
            if isinstance(event, h11.Request):
                return conn, event
            return None

    async def _respond(self, event: h11.Request) -> tuple[int, bytes, bytes]:
        self.requests += 1
        target = event.target.split(b"?", 1)[0]
        if target == b"/reload":
            if event.method != b"POST":
                return 405, b"POST /reload\n", b"text/plain"
            with trio.move_on_after(_RELOAD_WAIT):
                status, line = await self.source.reload()
                return status, line.encode() + b"\n", b"text/plain"
            return 202, b"reload under way (see the log)\n", b"text/plain"
        if event.method not in (b"GET", b"HEAD"):
            return 405, b"only GET\n", b"text/plain"
        if target == b"/metrics":
            return 200, await self.source.metrics(), CONTENT_TYPE_LATEST.encode()
        if target == b"/healthz":
            healthy, why = await self.source.health()
            return (200 if healthy else 503), why.encode() + b"\n", b"text/plain"
        return 404, b"try /metrics or /healthz\n", b"text/plain"

    async def _send(self, stream: trio.SocketStream, conn: h11.Connection, event: h11.Request, status: int,
                    body: bytes, kind: bytes) -> None:
        headers = [(b"Content-Type", kind), (b"Content-Length", b"%d" % len(body)), (b"Connection", b"close")]
        data = conn.send(h11.Response(status_code=status, headers=headers))
        if event.method != b"HEAD":
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)


def handler_health(server: Any) -> tuple[bool, str]:
    """Healthy while a handler-mode server serves (an instance is made per
    request: there are none to watch between requests)."""
    if server.closing:
        return False, "shutting down"
    gateway = server.gateway
    return True, f"ok: {len(gateway.runners)} route(s), {gateway.instances_running} instance(s) running"


def local_health(server: Any) -> tuple[bool, str]:
    """Healthy while the server runs instances and is not shutting down."""
    if server.shutting_down:
        return False, "shutting down"
    running = server.current.supervisor.running if server.current is not None else 0
    if running == 0:
        return False, "no instance running"
    return True, f"ok: {running} of {server.instances} instances running"


class LocalSource:
    """The metrics of a server in this process (``--workers 1``): a socket
    mode :class:`~asyncwasm.serve.Server` by default, a handler-mode one
    with ``handler_snapshot, handler_health``."""

    def __init__(self, server: Any, snapshot: Callable[[Any], dict[str, Any]] = snapshot,
                 health: Callable[[Any], tuple[bool, str]] = local_health) -> None:
        self.server = server
        self._snapshot = snapshot
        self._health = health

    async def metrics(self) -> bytes:
        await trio.lowlevel.checkpoint()
        return render([self._snapshot(self.server)], Supervision())

    async def health(self) -> tuple[bool, str]:
        await trio.lowlevel.checkpoint()
        return self._health(self.server)

    async def reload(self) -> tuple[int, str]:
        return await reload_answer(getattr(self.server, "reloader", None))

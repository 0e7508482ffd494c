"""Host a Wasm HTTP server: N instances of one compiled module sharing a listener.

    asyncwasm serve                                  # the embedded http_server on 127.0.0.1:8080
    asyncwasm serve app.wasm --listen 0.0.0.0:80 --instances 16
    asyncwasm serve --listen 127.0.0.1:0             # a free port, printed in the log
    asyncwasm serve --listen 0.0.0.0:443 --tls-cert chain.pem --tls-key key.pem --workers auto \
                    --metrics 127.0.0.1:9090         # production: TLS, every core, Prometheus

SOURCE is a WASI command (``_start``) that serves connections by calling
``sock_accept`` on the pre-opened listener at fd 3 (netmods/http_server is
one; it is the default): a path or an http(s) URL, signed when --trust-key
is given, swapped for each new version without dropping a connection
(--watch, --poll, SIGHUP, POST /reload on the --metrics port). The module
is compiled once; each instance gets its own memory and WASI context. The
host accepts and hands each connection to an idle instance. An instance
that traps or exits is restarted after a back-off delay. SIGINT/SIGTERM:
stop accepting, let in-flight connections finish within --grace seconds,
then stop; a second signal stops at once. SIGHUP reloads the TLS
certificate and key, and checks SOURCE for a new version. Logs go to
stderr, one line per event. Exit status: 0 after a signal, 1 when the
module (with --no-fallback) or the listen address cannot be used, 2 for a
bad flag value (a certificate or key that cannot be read or does not
match, --workers 0, a metrics port in use).
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import signal
import sys
import time
from typing import Awaitable, Callable, Optional, TextIO, Union

import trio

from .._errors import LinkError, Trap
from ..execution import Limits
from ..module import Module
from ..wasi.netpolicy import NetPolicy
from ..cli import flag_type
from ..hostnet import fd_limit, open_fds, parse_address, raise_fd_limit, usable_cpus
from ..flagvalues import parse_count, parse_seconds, parse_size, size_to_pages
from . import delivery_cli, handler_cli
from .handoff import Handoff
from .metrics import LocalSource, MetricsEndpoint
from .server import Server, compile_version
from .source import ModuleSource, Refused, Version
from .supervisor import Backoff
from .tls import MIN_VERSIONS, TlsConfig, TlsConfigError
from .workers import ServeSetup

__all__ = ["add_arguments", "main", "serve", "serve_one", "load_setup", "load_tls", "parse_workers", "Setup",
           "make_server", "start_serving", "metrics_endpoint"]

PROG = "asyncwasm serve"
DEFAULT_LISTEN = "127.0.0.1:8080"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


# Flag values: the parsers of asyncwasm.flagvalues (as `asyncwasm run`), with serve's bounds.
_count = flag_type(functools.partial(parse_count, minimum=1), "count")
_seconds = flag_type(functools.partial(parse_seconds, allow_zero=True), "seconds")
_positive_seconds = flag_type(parse_seconds, "seconds")


def _address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _size_pages(text: str) -> int:
    try:
        return size_to_pages(parse_size(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` flags (``asyncwasm serve --help``)."""
    parser.add_argument("module", nargs="?", metavar="SOURCE",
                        help="the .wasm server to host: a path or an http(s) URL (default: the embedded "
                             "http_server)")
    parser.add_argument("--listen", action="append", type=_address, metavar="HOST:PORT",
                        help=f"address to listen on; repeatable, all feed the same instances "
                             f"(default {DEFAULT_LISTEN}; port 0 picks a free port)")
    parser.add_argument("--instances", "-n", type=_count, default=os.cpu_count() or 1, metavar="N",
                        help="instances of the module to run (default: the CPU count)")
    parser.add_argument("--grace", type=_seconds, default=5.0, metavar="SECONDS",
                        help="at shutdown, time in-flight connections get to finish (default 5)")
    parser.add_argument("--env", action="append", type=_env, default=[], metavar="KEY=VALUE",
                        help="environment variable for the guests (repeatable)")
    parser.add_argument("--fuel", type=_count, metavar="UNITS",
                        help="fuel budget per instance life (about one unit per instruction); "
                             "an instance that runs out is restarted")
    parser.add_argument("--max-memory", type=_size_pages, metavar="SIZE",
                        help="most linear memory per instance, e.g. 64MiB (as asyncwasm run)")
    parser.add_argument("--yield-interval", type=_positive_seconds, default=None, metavar="SECONDS",
                        help="longest a busy instance runs before letting the others run "
                             "(default: the runtime's, 0.005); larger: less switching, more latency")
    parser.add_argument("--allow-connect", action="append", default=[], metavar="RULE",
                        help="let guests connect to ADDR[/PREFIX][:PORT[-PORT]] (repeatable)")
    parser.add_argument("--allow-dns", action="store_true", help="let guests resolve host names")
    parser.add_argument("--backlog", type=_count, default=1024, metavar="N",
                        help="listen backlog (default 1024)")
    parser.add_argument("--restart-delay", type=_seconds, default=0.1, metavar="SECONDS",
                        help="first restart delay; doubles per consecutive failure up to 30 s (default 0.1)")
    _add_production_arguments(parser)
    delivery_cli.add_arguments(parser)
    # Handler mode (--routes / --handler): its own flags and entry point.
    handler_cli.add_arguments(parser)


def _add_production_arguments(parser: argparse.ArgumentParser) -> None:
    """TLS, worker processes and metrics (README: "Serving in production")."""
    production = parser.add_argument_group("production: TLS, worker processes, metrics")
    production.add_argument("--tls-cert", metavar="FILE",
                            help="serve TLS on every --listen address with this PEM certificate "
                                 "(the file may hold the chain, leaf first); needs --tls-key")
    production.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key")
    production.add_argument("--tls-min-version", choices=sorted(MIN_VERSIONS), default="1.2",
                            help="lowest TLS version accepted (default 1.2)")
    production.add_argument("--tls-handshake-timeout", type=_positive_seconds, default=10.0, metavar="SECONDS",
                            help="a client that has not completed the handshake by then is dropped (default 10)")
    production.add_argument("--workers", default="1", metavar="N|auto",
                            help="worker processes, each running --instances instances on the same "
                                 "listening sockets (default 1: this process; auto: one per CPU)")
    production.add_argument("--metrics", type=_address, metavar="HOST:PORT",
                            help="serve Prometheus metrics at /metrics and a health check at /healthz")
    production.add_argument("--worker-control", type=int, help=argparse.SUPPRESS)  # set in worker processes


def main(args: argparse.Namespace) -> int:
    """Run the server described by parsed ``args`` until a signal; the exit status."""
    if handler_cli.wanted(args):
        if delivery_cli.used_flags(args):
            _logger(sys.stderr)(f"error: {', '.join(delivery_cli.used_flags(args))}: module delivery serves a "
                                f"SOURCE in socket mode, not --handler/--routes")
            return EXIT_USAGE
        return handler_cli.main(args)
    return trio.run(serve, args, sys.stderr)


def _logger(err: TextIO, prefix: str = "") -> Callable[[str], None]:
    def log(line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        err.write(f"{stamp} {PROG}: {prefix}{line}\n")
        err.flush()

    return log


# fds the process needs beside its connections (listeners, trio, logs, imports).
_FD_RESERVE = 64


def _log_fd_budget(instances: int, log: Callable[[str], None]) -> None:
    """Say so when the open-file limit cannot give every instance a
    connection at once (each connection is one fd; idle instances hold none)."""
    limit, in_use = fd_limit(), open_fds()
    if in_use is None:
        return
    free = limit - in_use - _FD_RESERVE
    if free < instances:
        log(f"fd budget: the open-file limit is {limit} ({in_use} in use): about {max(free, 0)} "
            f"connections at once for {instances} instances; raise it (ulimit -n, systemd LimitNOFILE=) "
            f"or run fewer instances")


class Setup(ServeSetup):
    """What ``serve`` loaded and checked from its flags before listening:
    the module's ``source`` (None: the embedded module), or the ``version``
    to serve (the embedded one; a worker's, given by its supervisor)."""

    delivered = True

    def __init__(self, args: argparse.Namespace, source: Optional[ModuleSource], limits: Limits,
                 policy: NetPolicy, tls: Optional[TlsConfig]) -> None:
        super().__init__(args, tls)
        self.source = source
        self.version: Optional[Version] = None if source else delivery_cli.embedded_version()
        self.limits = limits
        self.policy = policy

    @property
    def name(self) -> str:
        return self.source.location if self.source else self.version.origin if self.version else "?"

    @property
    def per_worker(self) -> str:
        return f"{self.args.instances} instances"


class _Refused(Exception):
    """A problem found before serving: one log line, and the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def parse_workers(text: str) -> int:
    """``--workers``: a count >= 1, or ``auto`` (the CPUs this process may
    use, within its cgroup's quota: see :func:`~asyncwasm.hostnet.usable_cpus`)."""
    if text == "auto":
        return usable_cpus()
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"--workers {text}: use a number of processes (>= 1) or auto") from None
    if count < 1:
        raise ValueError(f"--workers {text}: at least one worker process is needed (or auto)")
    return count


def load_tls(args: argparse.Namespace) -> Optional[TlsConfig]:
    """The TLS configuration of ``--tls-*`` (socket and handler mode), or
    None (_Refused, exit 2, for a pair that cannot be used)."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise _Refused(f"--tls-{'key' if args.tls_key is None else 'cert'} is needed with "
                       f"--tls-{'cert' if args.tls_key is None else 'key'}", EXIT_USAGE)
    if args.tls_cert is None:
        return None
    try:
        return TlsConfig(args.tls_cert, args.tls_key, min_version=args.tls_min_version,
                         handshake_timeout=args.tls_handshake_timeout)
    except TlsConfigError as exc:
        raise _Refused(str(exc), EXIT_USAGE) from None


def load_setup(args: argparse.Namespace, *, source: bool = True) -> Setup:
    """Check every flag value the command line could not (_Refused: exit 2
    for a bad flag value); the module is loaded later (:meth:`Server.load`).
    ``source=False``: the module comes from elsewhere (a worker's supervisor)."""
    tls = load_tls(args)
    try:
        module_source = delivery_cli.make_source(args) if source else None
    except ValueError as exc:
        raise _Refused(str(exc), EXIT_USAGE) from None
    try:
        limits = Limits(fuel=args.fuel, max_memory_pages=args.max_memory,
                        **({} if args.yield_interval is None else {"yield_interval": args.yield_interval}))
        policy = NetPolicy(connect=args.allow_connect, dns=args.allow_dns)
    except (TypeError, ValueError) as exc:
        raise _Refused(str(exc), EXIT_FAILURE) from None
    return Setup(args, module_source, limits, policy, tls)


def make_server(setup: Setup, module: Union[Module, ModuleSource], handoff: Handoff, log: Callable[[str], None],
                version: Optional[Version] = None) -> Server:
    """The :class:`Server` the flags describe."""
    args = setup.args
    return Server(module, handoff, instances=args.instances, limits=setup.limits, env=dict(args.env),
                  net_policy=setup.policy, grace=args.grace, drain=args.drain, start_timeout=args.start_timeout,
                  backoff=Backoff(initial=args.restart_delay, maximum=max(30.0, args.restart_delay)), log=log,
                  version=version)


async def serve(args: argparse.Namespace, err: TextIO) -> int:
    """:func:`main` inside trio: ``err`` receives the log. With ``--workers``
    above 1 this process supervises worker processes (see :mod:`.workers`)."""
    if args.worker_control is not None:
        from .workers import worker_main

        return await worker_main(args, err)
    log = _logger(err)
    started = await start_serving(args, load_setup, log)
    if isinstance(started, int):
        return started
    setup = started
    assert isinstance(setup, Setup)
    try:
        handoff = Handoff.bind(setup.addresses, backlog=args.backlog, tls=setup.tls, log=log)
    except OSError as exc:
        log(f"error: cannot listen on {', '.join(setup.addresses)}: {exc.strerror or exc}")
        return EXIT_FAILURE
    try:
        endpoint = metrics_endpoint(args, log)
    except _Refused as exc:
        handoff.close()
        log(f"error: {exc}")
        return exc.status
    return await serve_one(setup, handoff, log, endpoint=endpoint)


async def start_serving(args: argparse.Namespace, load: Callable[[argparse.Namespace], ServeSetup],
                        log: Callable[[str], None]) -> Union[ServeSetup, int]:
    """What both modes do first: raise the open-file limit, check the flags
    (``load`` them), and with ``--workers`` above 1 supervise the workers
    until they stop. The setup to serve in this process, or an exit status."""
    before, after = raise_fd_limit()
    try:
        workers = parse_workers(args.workers)
        setup = load(args)
    except ValueError as exc:
        log(f"error: {exc}")
        return EXIT_USAGE
    except _Refused as exc:
        log(f"error: {exc}")
        return exc.status
    if after > before:
        setup.fd_limit_raised = (before, after)
    if workers > 1:
        from .workers import supervise

        return await supervise(setup, workers, log)
    return setup


def metrics_endpoint(args: argparse.Namespace, log: Callable[[str], None]) -> Optional[MetricsEndpoint]:
    """The ``--metrics`` endpoint, bound, saying "starting" until the server
    exists; None without the flag (_Refused, exit 2, when it cannot bind)."""
    if args.metrics is None:
        return None
    try:
        return MetricsEndpoint.bind(args.metrics, _NoSource(), log)
    except OSError as exc:
        raise _Refused(f"--metrics {args.metrics}: {exc.strerror or exc}", EXIT_USAGE) from None


class _NoSource:
    """The endpoint's source until the server exists."""

    async def metrics(self) -> bytes:
        await trio.lowlevel.checkpoint()
        return b""

    async def health(self) -> tuple[bool, str]:
        await trio.lowlevel.checkpoint()
        return False, "starting"

    async def reload(self) -> tuple[int, str]:
        await trio.lowlevel.checkpoint()
        return 503, "starting"


async def serve_one(setup: Setup, handoff: Handoff, log: Callable[[str], None], *,
                    endpoint: Optional[MetricsEndpoint] = None,
                    companion: Optional[Callable[[Server], Awaitable[None]]] = None) -> int:
    """Run one server in this process until a signal (the only process, or
    one worker); ``endpoint`` serves its metrics, ``companion(server)`` runs
    beside it once every instance is up (cancelled when it stops)."""
    args = setup.args
    version = setup.version
    try:
        if version is not None:
            server = make_server(setup, await compile_version(version), handoff, log, version)
            await server.check()
        else:
            assert setup.source is not None
            server = make_server(setup, setup.source, handoff, log)
            await server.load()
            version = server.version
    except (LinkError, Trap, OSError, Refused) as exc:
        handoff.close()
        if endpoint is not None:
            endpoint.sock.close()
        if isinstance(exc, Refused):
            log(f"error: cannot serve {setup.name}: refused ({exc.outcome}): {exc}")
        else:
            log(f"error: cannot instantiate {setup.name}: {exc}")
        return EXIT_FAILURE
    assert version is not None
    setup.version = version = version.without_data()
    log(f"serving {version.origin} ({version.describe()}, compiled once)"
        + (f"; TLS: {setup.tls.describe()}" if setup.tls else ""))
    setup.log_fd_limit(log)
    _log_fd_budget(args.instances, log)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_signals, server, setup.tls, nursery.cancel_scope, log)
        if endpoint is not None:
            endpoint.source = LocalSource(server)
            await nursery.start(endpoint.serve)
            log(f"metrics on http://{endpoint.address}/metrics, health on /healthz")
        # Starting thousands of instances allocates millions of objects that
        # live as long as the server: without the collector the start takes
        # half the time, and frozen they are never scanned again (no pauses
        # that grow with the instance count).
        gc.collect()  # what came before (the check's instance) goes first
        gc.disable()
        try:
            await nursery.start(server.run)
        finally:
            gc.enable()
            gc.freeze()
        if companion is not None:
            nursery.start_soon(companion, server)
        await server.stopped.wait()
        nursery.cancel_scope.cancel()
    return EXIT_OK


def reload_tls(tls: Optional[TlsConfig], log: Callable[[str], None]) -> None:
    """SIGHUP: read the certificate and key again (new connections only)."""
    if tls is None:
        return
    problem = tls.reload()
    if problem is None:
        log(f"SIGHUP: TLS reloaded: {tls.describe()}")
    else:
        log(f"SIGHUP: TLS reload failed, keeping the previous certificate: {problem}")


async def _signals(server: Server, tls: Optional[TlsConfig], scope: trio.CancelScope,
                   log: Callable[[str], None]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        first: Optional[int] = None
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                reload_tls(tls, log)
                reload = getattr(server, "reload", None)  # a HandlerServer has no module source
                if not (reload is not None and reload("SIGHUP")) and tls is None:
                    log("SIGHUP: nothing to reload (no --tls-cert, no SOURCE)")
            elif first is None:
                first = signum
                log(f"{name}: shutting down gracefully (again to stop at once)")
                server.shutdown()
            else:
                log(f"{name} again: stopping now")
                scope.cancel()

"""``asyncwasm serve --routes ROUTES.toml`` / ``--handler MODULE``: handler mode.

    asyncwasm serve --handler app.wasm --listen 127.0.0.1:8080      # every path, one module
    asyncwasm serve --routes routes.toml --access-log - --access-log-format combined

Handler mode parses HTTP in the host (h11) and answers each request with a
fresh instance of a WASI command through CGI/1.1 (see
:mod:`asyncwasm.serve.handler`). These flags are added to ``asyncwasm
serve`` by :mod:`.cli`, which hands over to :func:`main` when ``--routes`` or
``--handler`` is given; ``--listen``, ``--env``, ``--fuel``, ``--max-memory``,
``--grace``, ``--backlog`` and ``--yield-interval`` keep their meaning (per
request where they are per instance in socket mode; with ``--routes`` the
file says the rest), and so do the production flags: ``--tls-*`` (TLS in
front of every route, ``HTTPS=on``, SIGHUP reloads the pair),
``--workers`` (worker processes on the same listening sockets, each
serving every route) and ``--metrics`` (handler mode's own families
besides the common ones, see :mod:`.metrics`).

Exit status: 0 after a signal, 1 when the server cannot start (a port in
use), 2 for a bad command line or routes file (one line naming the file,
the route and the key).
"""

from __future__ import annotations

import argparse
import functools
import gc
import socket
import sys
from typing import Any, Awaitable, Callable, Optional, TextIO

import trio

from .._errors import LinkError, Trap
from ..flagvalues import parse_count, parse_dir, parse_seconds, parse_size
from ..hostnet import format_address, open_listener, parse_address
from ..wasi.config import Preopen
from .access_log import FORMATS, AccessLog
from .cgi import CGIError
from .handler_server import HandlerServer
from .http_conn import HttpLimits
from .router import DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT, Route, RouteError, Router, load_routes
from .tls import TlsConfig
from .workers import ServeSetup

__all__ = ["add_arguments", "wanted", "main", "serve", "serve_handlers", "serve_worker", "HandlerSetup"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _flag(parse: Callable[[str], object], name: str) -> Callable[[str], object]:
    from ..cli import flag_type  # lazily: asyncwasm.cli imports this package's cli

    return flag_type(parse, name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The handler-mode flags (their own group in ``asyncwasm serve --help``)."""
    group = parser.add_argument_group("handler mode (CGI/1.1: a fresh instance of a WASI command per request)")
    modes = group.add_mutually_exclusive_group()
    modes.add_argument("--routes", metavar="ROUTES.toml",
                       help="serve the [[route]] tables of this TOML file (see the README)")
    modes.add_argument("--handler", metavar="MODULE", help="serve every path with this WASI command")
    size = _flag(lambda text: parse_count(str(parse_size(text)), minimum=1), "size")
    seconds = _flag(parse_seconds, "seconds")
    group.add_argument("--max-header-bytes", type=size, default=64 * 1024, metavar="SIZE",
                       help="largest request head, and handler header block (default 64KiB; then 431)")
    group.add_argument("--max-body-bytes", type=size, default=10 * 1024 * 1024, metavar="SIZE",
                       help="largest request body (default 10MiB; then 413)")
    group.add_argument("--read-timeout", type=seconds, default=10.0, metavar="SECONDS",
                       help="a request head must arrive within SECONDS of its first byte, and its body "
                            "keep coming (default 10; then 408)")
    group.add_argument("--idle-timeout", type=seconds, default=15.0, metavar="SECONDS",
                       help="close a keep-alive connection idle this long (default 15)")
    group.add_argument("--timeout", type=seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help=f"--handler: seconds per request (default {DEFAULT_TIMEOUT:g}; then 504)")
    group.add_argument("--max-concurrency", type=_flag(functools.partial(parse_count, minimum=1), "count"),
                       default=DEFAULT_MAX_CONCURRENCY, metavar="N",
                       help=f"--handler: instances at once (default {DEFAULT_MAX_CONCURRENCY}); "
                            "more requests wait, then 503")
    group.add_argument("--handler-dir", action="append", default=[], metavar="HOST[::GUEST]",
                       type=_flag(parse_dir, "directory"),
                       help="--handler: a directory the handler sees, read-only (repeatable)")
    group.add_argument("--access-log", metavar="FILE",
                       help="one line per request to FILE ('-': stderr)")
    group.add_argument("--access-log-format", choices=FORMATS, default="common",
                       help="common (default) or combined (adds referer and user agent)")


def wanted(args: argparse.Namespace) -> bool:
    """Whether the command line asks for handler mode."""
    return bool(getattr(args, "routes", None) or getattr(args, "handler", None))


def main(args: argparse.Namespace) -> int:
    """Run handler mode until a signal; the exit status."""
    return trio.run(serve, args, sys.stderr)


def _router(args: argparse.Namespace) -> Router:
    if args.routes:
        return load_routes(args.routes)
    env = dict(args.env)
    route = Route("/...", args.handler, env=env, dirs=[Preopen(h, g, True) for h, g in args.handler_dir],
                  fuel=args.fuel, timeout=args.timeout, max_concurrency=args.max_concurrency,
                  max_memory=None if args.max_memory is None else args.max_memory * 65536)
    try:
        return Router([route])
    except RouteError as exc:
        raise RouteError(f"--handler: {str(exc).split(': ', 1)[1]}") from None


class HandlerSetup(ServeSetup):
    """What handler mode loaded and checked from its flags before listening."""

    def __init__(self, args: argparse.Namespace, router: Router, tls: Optional[TlsConfig]) -> None:
        super().__init__(args, tls)
        self.router = router

    @property
    def name(self) -> str:
        return self.args.routes or self.args.handler

    @property
    def per_worker(self) -> str:
        return f"handler mode, {len(self.router)} route(s)"


def load_handler_setup(args: argparse.Namespace) -> HandlerSetup:
    """The routes and the TLS pair (``_Refused``: one line, exit 2)."""
    from .cli import _Refused, load_tls  # lazily, as in _flag

    if args.module:
        raise _Refused(f"{args.module}: handler mode takes its module from --handler or --routes, "
                       "not as MODULE", EXIT_USAGE)
    try:
        router = _router(args)
    except RouteError as exc:
        raise _Refused(str(exc), EXIT_USAGE) from None
    return HandlerSetup(args, router, load_tls(args))


def _open_access_log(args: argparse.Namespace, err: TextIO) -> tuple[Optional[AccessLog], Optional[TextIO]]:
    """The access log of ``--access-log`` and the file to close after; OSError."""
    if args.access_log == "-":
        return AccessLog(err, args.access_log_format), None
    if args.access_log:
        stream = open(args.access_log, "a", encoding="utf-8", buffering=1)
        return AccessLog(stream, args.access_log_format), stream
    return None, None


async def serve(args: argparse.Namespace, err: TextIO) -> int:
    """:func:`main` inside trio: ``err`` receives the log. With ``--workers``
    above 1 this process supervises worker processes (:mod:`.workers`),
    each serving every route on the same listening sockets."""
    from .cli import _logger, _Refused, metrics_endpoint, start_serving  # lazily, as in _flag

    log = _logger(err)
    setup = await start_serving(args, load_handler_setup, log)
    if isinstance(setup, int):
        return setup
    assert isinstance(setup, HandlerSetup)
    socks = []
    try:
        for text in setup.addresses:
            socks.append(open_listener(*parse_address(text), backlog=args.backlog))
        endpoint = metrics_endpoint(args, log)
    except (OSError, _Refused) as exc:
        for sock in socks:
            sock.close()
        if isinstance(exc, _Refused):
            log(f"error: {exc}")
            return exc.status
        log(f"error: cannot listen on {text}: {exc.strerror or exc}")
        return EXIT_FAILURE
    return await serve_handlers(setup, socks, log, err, endpoint=endpoint)


async def serve_handlers(setup: HandlerSetup, socks: list[socket.socket], log: Callable[[str], None],
                         err: TextIO, *, endpoint: Any = None,
                         companion: Optional[Callable[[HandlerServer], Awaitable[None]]] = None) -> int:
    """Serve the routes on the listening sockets ``socks`` in this process
    (the only one, or one worker) until a signal; ``endpoint`` serves the
    metrics, ``companion(server)`` runs beside it once it serves."""
    from .cli import _signals  # lazily, as in _flag
    from .metrics import LocalSource, handler_health, handler_snapshot

    args = setup.args

    def close_all() -> None:
        for sock in socks:
            sock.close()
        if endpoint is not None:
            endpoint.sock.close()

    try:
        access_log, access_stream = _open_access_log(args, err)
    except OSError as exc:
        close_all()
        log(f"error: --access-log {args.access_log}: {exc.strerror or exc}")
        return EXIT_FAILURE
    try:
        limits = HttpLimits(max_header_bytes=args.max_header_bytes, max_body_bytes=args.max_body_bytes,
                            read_timeout=args.read_timeout, idle_timeout=args.idle_timeout)
        server = HandlerServer(setup.router, limits=limits, access_log=access_log, log=log, grace=args.grace,
                               yield_interval=args.yield_interval, tls=setup.tls)
        try:
            await server.check()
        except (CGIError, LinkError, Trap, OSError) as exc:
            close_all()
            log(f"error: cannot run a handler: {exc}")
            return EXIT_FAILURE
        # What start-up made (modules, routes, bound imports) lives until the
        # end: keep the cyclic GC from scanning it again and again.
        gc.freeze()
        router = setup.router
        log(f"handler mode: {len(router)} route(s): "
            + ", ".join(f"{r.path} -> {(r.argv or [r.name])[0]}" for r in router) + " (compiled once)"
            + (f"; TLS: {setup.tls.describe()}" if setup.tls else ""))
        setup.log_fd_limit(log)
        scheme = "https" if setup.tls else "http"
        for sock in socks:
            log(f"listening on {scheme}://{format_address(sock.getsockname())}/")
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(sock)) for sock in socks]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_signals, server, setup.tls, nursery.cancel_scope, log)  # type: ignore[arg-type]  # needs .shutdown()
            if endpoint is not None:
                endpoint.source = LocalSource(server, handler_snapshot, handler_health)
                await nursery.start(endpoint.serve)
                log(f"metrics on http://{endpoint.address}/metrics, health on /healthz")
            await nursery.start(server.serve, listeners)
            if companion is not None:
                nursery.start_soon(companion, server)
            await server.stopped.wait()
            nursery.cancel_scope.cancel()
        log("stopped")
        return EXIT_OK
    finally:
        if access_stream is not None:
            access_stream.close()


async def serve_worker(args: argparse.Namespace, socks: list[socket.socket], control: Any,
                       log: Callable[[str], None]) -> int:
    """A worker process of handler mode (see :func:`.workers.worker_main`)."""
    from .cli import _Refused
    from .metrics import handler_health, handler_snapshot
    from .workers import SupervisorLink

    try:
        setup = load_handler_setup(args)
    except _Refused as exc:
        log(f"error: {exc}")
        return exc.status

    def health(server: HandlerServer) -> tuple[bool, str, int]:
        return (*handler_health(server), server.gateway.instances_running)

    link = SupervisorLink(control, log, handler_snapshot, health)
    return await link.finish(await serve_handlers(setup, socks, log, sys.stderr, companion=link.answer))

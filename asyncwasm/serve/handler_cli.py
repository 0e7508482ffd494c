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
file says the rest).

Exit status: 0 after a signal, 1 when the server cannot start (a port in
use), 2 for a bad command line or routes file (one line naming the file,
the route and the key).
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
from typing import Callable, Optional, TextIO

import trio

from .._errors import LinkError, Trap
from ..flagvalues import parse_count, parse_dir, parse_seconds, parse_size
from ..hostnet import parse_address
from ..wasi.config import Preopen
from .access_log import FORMATS, AccessLog
from .cgi import CGIError
from .handler_server import HandlerServer
from .http_conn import HttpLimits
from .router import DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT, Route, RouteError, Router, load_routes

__all__ = ["add_arguments", "wanted", "main", "serve"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_LISTEN = "127.0.0.1:8080"


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


async def serve(args: argparse.Namespace, err: TextIO) -> int:
    """:func:`main` inside trio: ``err`` receives the log."""
    from .cli import _logger, _signals  # lazily, as in _flag

    log = _logger(err)
    if args.module:
        log(f"error: {args.module}: handler mode takes its module from --handler or --routes, "
            "not as MODULE")
        return EXIT_USAGE
    try:
        router = _router(args)
    except RouteError as exc:
        log(f"error: {exc}")
        return EXIT_USAGE
    access_stream: Optional[TextIO] = None
    try:
        if args.access_log == "-":
            access_log: Optional[AccessLog] = AccessLog(err, args.access_log_format)
        elif args.access_log:
            access_stream = open(args.access_log, "a", encoding="utf-8", buffering=1)
            access_log = AccessLog(access_stream, args.access_log_format)
        else:
            access_log = None
    except OSError as exc:
        log(f"error: --access-log {args.access_log}: {exc.strerror or exc}")
        return EXIT_FAILURE
    try:
        limits = HttpLimits(max_header_bytes=args.max_header_bytes, max_body_bytes=args.max_body_bytes,
                            read_timeout=args.read_timeout, idle_timeout=args.idle_timeout)
        server = HandlerServer(router, limits=limits, access_log=access_log, log=log, grace=args.grace,
                               yield_interval=args.yield_interval)
        try:
            await server.check()
        except (CGIError, LinkError, Trap, OSError) as exc:
            log(f"error: cannot run a handler: {exc}")
            return EXIT_FAILURE
        # What start-up made (modules, routes, bound imports) lives until the
        # end: keep the cyclic GC, which every request's instance wakes,
        # from scanning it again and again.
        gc.freeze()
        listeners = []
        for text in args.listen or [DEFAULT_LISTEN]:
            host, port = parse_address(text)
            try:
                listeners += await trio.open_tcp_listeners(port, host=host, backlog=args.backlog)
            except OSError as exc:
                log(f"error: cannot listen on {text}: {exc.strerror or exc}")
                for listener in listeners:
                    await listener.aclose()
                return EXIT_FAILURE
        log(f"handler mode: {len(router)} route(s): "
            + ", ".join(f"{r.path} -> {(r.argv or [r.name])[0]}" for r in router) + " (compiled once)")
        for listener in listeners:
            host, port = listener.socket.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            log(f"listening on http://{shown}:{port}/")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_signals, server, None, nursery.cancel_scope, log)  # type: ignore[arg-type]  # needs .shutdown()
            await server.serve(listeners)
            nursery.cancel_scope.cancel()
        log("stopped")
        return EXIT_OK
    finally:
        if access_stream is not None:
            access_stream.close()

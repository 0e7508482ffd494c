"""Host a Wasm HTTP server: N instances of one compiled module sharing a listener.

    asyncwasm serve                                  # the embedded http_server on 127.0.0.1:8080
    asyncwasm serve app.wasm --listen 0.0.0.0:80 --instances 16
    asyncwasm serve --listen 127.0.0.1:0             # a free port, printed in the log

MODULE is a WASI command (``_start``) that serves connections by calling
``sock_accept`` on the pre-opened listener at fd 3 (netmods/http_server is
one; it is the default). The module is compiled once; each instance gets its
own memory and WASI context. The host accepts and hands each connection to
an idle instance. An instance that traps or exits is restarted after a
back-off delay. SIGINT/SIGTERM: stop accepting, let in-flight connections
finish within --grace seconds, then stop; a second signal stops at once.
Logs go to stderr, one line per event.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import signal
import sys
import time
from typing import Callable, Optional, TextIO

import trio

from .._errors import LinkError, ModuleError, Trap
from ..execution import Limits
from ..module import Module
from ..wasi.netpolicy import NetPolicy
from .embedded import embedded_module
from ..cli import flag_type
from ..hostnet import fd_limit, open_fds, parse_address, raise_fd_limit
from ..run import parse_count, parse_seconds, parse_size, size_to_pages
from .handoff import Handoff
from .server import Server
from .supervisor import Backoff

__all__ = ["add_arguments", "main", "serve"]

PROG = "asyncwasm serve"
DEFAULT_LISTEN = "127.0.0.1:8080"
EXIT_OK, EXIT_FAILURE = 0, 1


# Flag values: the parsers `asyncwasm run` uses, with serve's bounds.
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
    parser.add_argument("module", nargs="?", metavar="MODULE",
                        help="the .wasm server to host (default: the embedded http_server)")
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


def main(args: argparse.Namespace) -> int:
    """Run the server described by parsed ``args`` until a signal; the exit status."""
    return trio.run(serve, args, sys.stderr)


def _logger(err: TextIO) -> Callable[[str], None]:
    def log(line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        err.write(f"{stamp} {PROG}: {line}\n")
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


async def serve(args: argparse.Namespace, err: TextIO) -> int:
    """:func:`main` inside trio: ``err`` receives the log."""
    log = _logger(err)
    before, after = raise_fd_limit()
    if after > before:
        log(f"open-file limit raised from {before} to {after} (the hard limit)")
    try:
        module = Module.from_file(args.module) if args.module else embedded_module()
        limits = Limits(fuel=args.fuel, max_memory_pages=args.max_memory,
                        **({} if args.yield_interval is None else {"yield_interval": args.yield_interval}))
        policy = NetPolicy(connect=args.allow_connect, dns=args.allow_dns)
    except OSError as exc:
        log(f"error: {args.module}: {exc.strerror or exc}")
        return EXIT_FAILURE
    except ModuleError as exc:
        log(f"error: {args.module}: not a valid module: {exc}")
        return EXIT_FAILURE
    except (TypeError, ValueError) as exc:
        log(f"error: {exc}")
        return EXIT_FAILURE
    if "_start" not in {e.name for e in module.exports}:
        log(f"error: {args.module}: the module exports no _start (serve runs WASI commands)")
        return EXIT_FAILURE
    try:
        handoff = Handoff.bind(args.listen or [DEFAULT_LISTEN], backlog=args.backlog)
    except OSError as exc:
        log(f"error: cannot listen on {', '.join(args.listen or [DEFAULT_LISTEN])}: {exc.strerror or exc}")
        return EXIT_FAILURE
    server = Server(module, handoff, instances=args.instances, limits=limits, env=dict(args.env),
                    net_policy=policy, grace=args.grace, backoff=Backoff(initial=args.restart_delay,
                                                                         maximum=max(30.0, args.restart_delay)),
                    log=log)
    try:
        await server.check()
    except (LinkError, Trap, OSError) as exc:
        handoff.close()
        log(f"error: cannot instantiate {args.module or 'the embedded http_server'}: {exc}")
        return EXIT_FAILURE
    log(f"serving {args.module or 'the embedded http_server'} (compiled once)")
    _log_fd_budget(args.instances, log)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_signals, server, nursery.cancel_scope, log)
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
        await server.stopped.wait()
        nursery.cancel_scope.cancel()
    return EXIT_OK


async def _signals(server: Server, scope: trio.CancelScope, log: Callable[[str], None]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        first: Optional[int] = None
        async for signum in signals:
            name = signal.Signals(signum).name
            if first is None:
                first = signum
                log(f"{name}: shutting down gracefully (again to stop at once)")
                server.shutdown()
            else:
                log(f"{name} again: stopping now")
                scope.cancel()

"""``asyncwasm serve SOURCE``: where the module comes from and when it is
reloaded (the flags; the work is :mod:`.source`, :mod:`.reload` and
:meth:`asyncwasm.serve.Server.swap`).

    asyncwasm serve app.wasm --watch                          # swap in each new version of the file
    asyncwasm serve https://example.org/app.wasm --poll 60 --trust-key ops.pub.pem
    kill -HUP PID  /  curl -X POST http://127.0.0.1:9090/reload     # check now

These flags are added to ``asyncwasm serve`` by :mod:`.cli`, which calls
:func:`make_source` once the command line is parsed.
"""

from __future__ import annotations

import argparse
import functools
from typing import Callable, Optional

from ..flagvalues import parse_count, parse_seconds, parse_size
from .embedded import embedded_bytes
from .source import DEFAULT_MAX_SIZE, ModuleSource, Version

__all__ = ["add_arguments", "make_source", "used_flags", "embedded_version", "EMBEDDED_ORIGIN"]

#: What the log and ``asyncwasm_module_info{source}`` call the embedded module.
EMBEDDED_ORIGIN = "the embedded http_server"


def _flag(parse: Callable[[str], object], name: str) -> Callable[[str], object]:
    from ..cli import flag_type  # lazily: asyncwasm.cli imports this package's cli

    return flag_type(parse, name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The module-delivery flags (their own group in ``asyncwasm serve --help``)."""
    group = parser.add_argument_group("module delivery: sources, signatures, hot reload")
    seconds = _flag(parse_seconds, "seconds")
    group.add_argument("--watch", action="store_true",
                       help="swap in each new version of the SOURCE file (and its .sig): replaced by rename "
                            "or written in place, once it stopped changing for 0.2 s")
    group.add_argument("--poll", type=seconds, metavar="SECONDS",
                       help="check SOURCE every SECONDS (a URL: a conditional GET)")
    group.add_argument("--trust-key", action="append", default=[], metavar="FILE",
                       help="an Ed25519 public key (PEM) whose signature (SOURCE.sig) a module must carry; "
                            "repeatable; without it modules are not checked")
    group.add_argument("--ca-file", metavar="FILE",
                       help="https SOURCE: trust these CA certificates (PEM) instead of the system's")
    group.add_argument("--max-module-size", type=_flag(lambda text: parse_count(str(parse_size(text)), minimum=1),
                                                       "size"),
                       default=DEFAULT_MAX_SIZE, metavar="SIZE",
                       help="refuse a larger module (default 256MiB; a download stops there)")
    group.add_argument("--fetch-timeout", type=seconds, default=30.0, metavar="SECONDS",
                       help="a URL's connect, TLS handshake and each read must progress within SECONDS "
                            "(default 30; the whole download within 600)")
    group.add_argument("--no-fallback", action="store_true",
                       help="exit 1 when SOURCE cannot be served at start (default: serve the embedded "
                            "module and keep trying SOURCE)")
    group.add_argument("--drain", type=_flag(functools.partial(parse_seconds, allow_zero=True), "seconds"),
                       default=30.0, metavar="SECONDS",
                       help="after a swap, the old version's connections get SECONDS to finish (default 30)")
    group.add_argument("--start-timeout", type=seconds, default=30.0, metavar="SECONDS",
                       help="a new version whose instances are not all waiting for connections within "
                            "SECONDS is rolled back (default 30)")


def used_flags(args: argparse.Namespace) -> list[str]:
    """The flags given that only make sense with a SOURCE."""
    return [flag for flag, value in (("--watch", args.watch), ("--poll", args.poll),
                                      ("--trust-key", args.trust_key), ("--ca-file", args.ca_file),
                                      ("--no-fallback", args.no_fallback)) if value]


def make_source(args: argparse.Namespace) -> Optional[ModuleSource]:
    """The source the flags describe (None: the embedded module); ValueError
    (one line, a usage error) for flags that do not fit."""
    if args.module is None:
        used = used_flags(args)
        if used:
            raise ValueError(f"{', '.join(used)} need(s) a SOURCE (a path or an http(s) URL)")
        return None
    return ModuleSource(args.module, trust_keys=args.trust_key, watch=args.watch, poll=args.poll,
                        max_size=args.max_module_size, timeout=args.fetch_timeout, ca_file=args.ca_file,
                        fallback=None if args.no_fallback else embedded_bytes())


def embedded_version() -> Version:
    """The embedded module as a version (what serves without a SOURCE)."""
    return Version(embedded_bytes(), EMBEDDED_ORIGIN)

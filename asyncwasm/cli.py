"""The ``asyncwasm`` command (also ``python -m asyncwasm``).

    asyncwasm run [options] FILE [ARGS...]   run a WASI program (see asyncwasm.run)
    asyncwasm serve [MODULE] [options]       host a Wasm HTTP server (asyncwasm.serve.cli)
    asyncwasm inspect FILE                   kind, imports, exports and custom sections
    asyncwasm keygen PATH                    an Ed25519 key pair for signing modules
    asyncwasm sign --key PATH MODULE         write MODULE.sig (see asyncwasm.signing)

This module only parses flags: each subcommand is one
``_cmd_<name>(args, out, err) -> int`` function registered in
:func:`build_parser` that hands the parsed values to the module doing the
work. ``serve`` lives in ``asyncwasm/serve/cli.py`` (``add_arguments(parser)``
and ``main(args) -> int``) and is imported lazily, so a missing or broken
``serve`` package never breaks ``run`` or ``inspect``.

:func:`main` takes its argument list and output streams as parameters and
returns the exit status, so tests call it in-process:

    >>> import io
    >>> out = io.StringIO()
    >>> main(["inspect", "add.wasm"], stdout=out)
    0
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional, Sequence, TextIO

if TYPE_CHECKING:
    from .module import Module

PROG = "asyncwasm"

# Exit statuses: 0 success, 1 the command failed (bad module, missing file),
# 2 bad command line (argparse's convention).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class _Exit(Exception):
    """Raised by the parser instead of calling sys.exit, so main() returns."""

    def __init__(self, status: int) -> None:
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that writes to the given streams and never exits
    the process."""

    def __init__(self, *args: object, out: TextIO, err: TextIO, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._out = out
        self._err = err

    def _print_message(self, message: str, file: Optional[object] = None) -> None:
        # argparse prints help and --version to sys.stdout and everything
        # else to sys.stderr; send both to the streams main() was given.
        if message:
            (self._out if file is sys.stdout else self._err).write(message)

    def exit(self, status: int = 0, message: Optional[str] = None) -> NoReturn:
        if message:
            self._err.write(message)
        raise _Exit(status)

    def error(self, message: str) -> NoReturn:
        self.print_usage(self._err)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


Command = Callable[[argparse.Namespace, TextIO, TextIO], int]


def build_parser(out: TextIO, err: TextIO, *, serve: Any = None) -> argparse.ArgumentParser:
    """The full command line: one subparser per command, each with its
    handler in ``defaults(command=...)``. ``serve`` is the module from
    :func:`load_serve`, passed only when that is the command being run (its
    arguments are not needed, nor its import paid, otherwise)."""
    from . import __version__

    make = functools.partial(_Parser, out=out, err=err)
    parser = make(prog=PROG, description="A WebAssembly runtime for Python, driven by trio.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    # argparse calls parser_class(**kwargs): any factory works, not only a class.
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=make)  # type: ignore[call-overload]
    commands.required = True

    _add_run(commands)
    _add_serve(commands, serve)
    inspect = commands.add_parser(
        "inspect",
        help="show a module's kind, imports, exports and custom sections",
        description="Compile FILE and print its kind (command, reactor or library), its imports "
        "and exports with their types, and its custom sections. Exits 1 when FILE is not a "
        "valid module.",
    )
    inspect.add_argument("file", metavar="FILE", help="a .wasm file (binary format)")
    inspect.set_defaults(command=_cmd_inspect, parser=inspect)
    _add_signing(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the
    exit status instead of exiting."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    arguments = list(sys.argv[1:] if argv is None else argv)
    serve = None
    if _command_name(arguments) == "serve":
        serve, reason = load_serve()
        if serve is None:
            return _fail(err, f"the serve command is not available in this installation ({SERVE_MODULE}: {reason})")
    parser = build_parser(out, err, serve=serve)
    try:
        args, unknown = parser.parse_known_args(arguments)
        if unknown:
            # Reported by the subcommand's parser, so its usage line shows.
            getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    except _Exit as e:
        return e.status
    command: Command = args.command
    try:
        return command(args, out, err)
    except _Exit as e:  # a usage error found after parsing
        return e.status


def _command_name(arguments: Sequence[str]) -> Optional[str]:
    """The subcommand named on the command line (the first non-option word)."""
    return next((a for a in arguments if not a.startswith("-")), None)


def _fail(err: TextIO, message: str) -> int:
    err.write(f"{PROG}: error: {message}\n")
    return EXIT_FAILURE


# -- run -------------------------------------------------------------------

RUN_DESCRIPTION = """\
Run the WASI program FILE (a .wasm command module) with ARGS as its
arguments, or call one exported function with --invoke. The guest runs in a
sandbox: it sees only the directories given with --dir/--ro-dir, the
environment given with --env (nothing is inherited without --inherit-env),
the listening sockets given with --listen, and it may open connections or
listen by itself only where --allow-connect/--allow-listen say. Its stdin,
stdout and stderr are this process's.

exit status:
  the guest's proc_exit code (0-255; another code becomes 1), 0 when _start
  (or the --invoke function) returns, 1 when the module cannot be loaded or
  linked or the guest traps or runs out of fuel (one "asyncwasm: error:"
  line says why), 124 when --timeout expires, 2 for a bad command line.
"""

RUN_EPILOG = """\
examples:
  asyncwasm run hello.wasm
  asyncwasm run --dir ./data::/data --ro-dir /usr/share/dict::/dict grep.wasm -r word /data
  asyncwasm run --env LANG=C --env HOME --argv0 python python.wasm script.py
  asyncwasm run --fuel 100000000 --timeout 5 --max-memory 64MiB untrusted.wasm
  asyncwasm run --invoke add math.wasm 2 40          # prints 42
  asyncwasm run --listen 127.0.0.1:8080 netmods/http_server/http_server.wasm
  asyncwasm run --allow-connect '*:443' --allow-dns client.wasm https://example.org/
  asyncwasm run --stats compress.wasm < input > output

Directories are preopened in command-line order as fds 3, 4, ... (--dir and
--ro-dir interleaved as given), then the --listen sockets; a guest path
defaults to HOST as written. Network rules (CIDR[:PORTS]) take an address
or network, IPv6 in brackets, and a port, a range or '*': 127.0.0.1:8000-8099,
[::1]:*, 0.0.0.0/0:443, '*' for anything.
"""


class _PreopenAction(argparse.Action):
    """--dir and --ro-dir append to one list, so preopens keep their
    command-line order."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: Optional[str] = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((values, self.const))
        setattr(namespace, self.dest, items)


def flag_type(parse: Callable[[str], object], name: str) -> Callable[[str], object]:
    """An argparse ``type`` calling ``parse``; its ValueError message becomes
    the usage error (argparse would otherwise print only 'invalid value')."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def _net_rule(text: str) -> str:
    from .wasi.netpolicy import AddressRule

    AddressRule.parse(text)
    return text


def _add_run(commands: "argparse._SubParsersAction[Any]") -> None:
    from . import hostnet, run

    parser = commands.add_parser(
        "run",
        help="run a WASI program (or call one export with --invoke)",
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [options] FILE [ARGS...]",
    )
    files = parser.add_argument_group("files and environment")
    files.add_argument("--dir", dest="preopens", action=_PreopenAction, const=False, default=[],
                       metavar="HOST[::GUEST]", type=flag_type(run.parse_dir, "directory"),
                       help="give the guest read-write access to directory HOST, seen as GUEST (repeatable)")
    files.add_argument("--ro-dir", dest="preopens", action=_PreopenAction, const=True,
                       metavar="HOST[::GUEST]", type=flag_type(run.parse_dir, "directory"),
                       help="the same, read-only: no file in it can be created, written, renamed or removed")
    files.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                       type=flag_type(run.parse_env, "variable"),
                       help="set an environment variable; a bare NAME passes the host's value (repeatable)")
    files.add_argument("--inherit-env", action="store_true",
                       help="pass the whole host environment (--env entries override it)")
    files.add_argument("--argv0", metavar="NAME", help="the guest's argv[0] (default: FILE's base name)")
    files.add_argument("--invoke", metavar="FUNC",
                       help="call the exported function FUNC with ARGS (converted by its parameter types) "
                       "instead of _start, after _initialize if the module has one; print its results, "
                       "one per line")

    limits = parser.add_argument_group("limits")
    limits.add_argument("--fuel", type=flag_type(run.parse_count, "count"), metavar="N",
                        help="stop the guest (exit 1) after about N Wasm instructions")
    limits.add_argument("--timeout", type=flag_type(run.parse_seconds, "seconds"), metavar="SECONDS",
                        help="stop the guest (exit 124) after SECONDS of wall-clock time")
    limits.add_argument("--max-memory", type=flag_type(run.parse_size, "size"), metavar="SIZE",
                        help="cap each linear memory at SIZE (bytes, or with a unit: 64KiB, 16MiB, 1GiB), "
                        "rounded down to whole 64KiB pages; memory.grow beyond it fails")
    limits.add_argument("--stats", action="store_true",
                        help="print instructions executed (fuel used), host calls, suspensions and time "
                        "to stderr at the end")

    net = parser.add_argument_group("network (default: none)")
    net.add_argument("--listen", action="append", default=[], metavar="ADDR:PORT",
                     type=flag_type(hostnet.parse_address, "address"),
                     help="pre-open a TCP socket listening on ADDR:PORT for the guest, numbered after the "
                     "directories (repeatable; port 0 picks a free port; each address is announced on stderr)")
    net.add_argument("--allow-connect", action="append", default=[], metavar="CIDR[:PORTS]",
                     type=flag_type(_net_rule, "rule"),
                     help="let the guest connect to these addresses and ports (repeatable)")
    net.add_argument("--allow-listen", action="append", default=[], metavar="CIDR[:PORTS]",
                     type=flag_type(_net_rule, "rule"),
                     help="let the guest bind and listen on these addresses and ports (repeatable)")
    net.add_argument("--allow-dns", action="store_true", help="let the guest resolve host names")

    # nargs="?" so a missing FILE is reported alone (REMAINDER after it
    # would be named as "required" too); _cmd_run checks it.
    parser.add_argument("file", metavar="FILE", nargs="?", help="the .wasm module to run")
    parser.add_argument("args", metavar="ARGS", nargs=argparse.REMAINDER,
                        help="the guest's arguments (or FUNC's, with --invoke)")
    parser.set_defaults(command=_cmd_run, parser=parser)


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import hostnet
    from .hostnet import format_address, open_listener
    from .run import RunConfig, run_command, size_to_pages
    from .wasi.config import Preopen
    from .wasi.netpolicy import NetPolicy

    if args.file is None:
        args.parser.error("the following arguments are required: FILE")
    try:
        pages = None if args.max_memory is None else size_to_pages(args.max_memory)
    except ValueError as exc:  # a bad flag value: a usage error, like the parser's own
        args.parser.error(f"argument --max-memory: {exc}")
    config = RunConfig(
        path=args.file,
        args=args.args,
        argv0=args.argv0,
        preopens=[Preopen(host, guest, readonly) for (host, guest), readonly in args.preopens],
        env=[pair for pair in args.env if pair is not None],
        inherit_env=args.inherit_env,
        invoke=args.invoke,
        fuel=args.fuel,
        timeout=args.timeout,
        max_memory_pages=pages,
        net_policy=NetPolicy(listen=args.allow_listen, connect=args.allow_connect, dns=args.allow_dns),
        stats=args.stats,
    )
    _log_to(err)
    hostnet.raise_fd_limit()  # as Go does: the soft limit is for select() users
    listeners = []
    try:
        for host, port in args.listen:
            try:
                listeners.append(open_listener(host, port))
            except OSError as exc:
                return _fail(err, f"--listen {format_address((host, port))}: {exc.strerror or exc}")
        config.listeners = listeners
        return run_command(config, out=out, err=err)
    finally:
        for sock in listeners:
            sock.close()


def _log_to(err: TextIO) -> None:
    """Show the runtime's warnings (e.g. a connection the network policy
    denied) as ``asyncwasm: ...`` lines on ``err``, once per stream."""
    logger = logging.getLogger(PROG)
    if not any(getattr(h, "stream", None) is err for h in logger.handlers):
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


# -- serve -----------------------------------------------------------------

SERVE_MODULE = "asyncwasm.serve.cli"
SERVE_HELP = "host a Wasm HTTP server: N instances of MODULE sharing a listener"


def load_serve() -> tuple[Any, Optional[str]]:
    """The ``serve`` command's module, or ``(None, reason)`` when it cannot
    be imported or lacks ``add_arguments``/``main``."""
    try:
        serve = importlib.import_module(SERVE_MODULE)
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    missing = [name for name in ("add_arguments", "main") if not callable(getattr(serve, name, None))]
    if missing:
        return None, f"it does not define {' and '.join(missing)}()"
    return serve, None


def _add_serve(commands: "argparse._SubParsersAction[Any]", serve: Any) -> None:
    if serve is None:
        # Listed in --help, but not imported: the real parser is built only
        # when 'serve' is the command being run.
        commands.add_parser("serve", help=SERVE_HELP, add_help=False)
        return
    parser = commands.add_parser("serve", help=SERVE_HELP, description=(serve.__doc__ or "").strip() or None,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_arguments(parser)
    parser.set_defaults(command=lambda args, out, err: serve.main(args))


# -- keygen, sign ----------------------------------------------------------


def _add_signing(commands: "argparse._SubParsersAction[Any]") -> None:
    keygen = commands.add_parser(
        "keygen", help="make an Ed25519 key pair for signing modules",
        description="Write a new Ed25519 private key to PATH (PEM, mode 0600) and its public key to "
        "PATH.pub.pem (give that to `asyncwasm serve --trust-key`). Existing files are never "
        "overwritten. Exits 1 when a file exists or cannot be written.")
    keygen.add_argument("path", metavar="PATH", help="where to write the private key")
    keygen.set_defaults(command=_cmd_keygen, parser=keygen)
    sign = commands.add_parser(
        "sign", help="sign a module: write MODULE.sig",
        description="Write MODULE.sig: the Ed25519 signature of MODULE's exact bytes, one line of "
        "base64, made with the private key from `asyncwasm keygen`. Exits 1 when the key or the "
        "module cannot be read.")
    sign.add_argument("--key", required=True, metavar="PATH", help="the private key (PEM)")
    sign.add_argument("module", metavar="MODULE", help="the .wasm file to sign")
    sign.set_defaults(command=_cmd_sign, parser=sign)


def _cmd_keygen(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .signing import generate_key, load_public_key

    try:
        private, public = generate_key(args.path)
    except ValueError as exc:
        return _fail(err, str(exc))
    out.write(f"private key {private} (keep it secret), public key {public} "
              f"(key id {load_public_key(public).id})\n")
    return EXIT_OK


def _cmd_sign(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .signing import key_id, load_private_key, sign_file

    try:
        written = sign_file(args.key, args.module)
        signer = key_id(load_private_key(args.key))
    except ValueError as exc:
        return _fail(err, str(exc))
    out.write(f"{written} (key id {signer})\n")
    return EXIT_OK


# -- inspect ---------------------------------------------------------------


def _cmd_inspect(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .run import RunError, load_module

    try:
        module = load_module(args.file)
    except RunError as e:
        return _fail(err, str(e))
    out.write(format_module(module, args.file))
    return EXIT_OK


def format_module(module: "Module", label: str) -> str:
    """The text ``asyncwasm inspect`` prints for ``module``."""
    lines = [f"{label}: {module.kind} module" + (f" {module.name!r}" if module.name else "")]
    if module.start is not None:
        lines.append(f"start function: {module.start}")
    lines.append(f"imports ({len(module.imports)}):")
    lines += [f"  {imp}" for imp in module.imports]
    lines.append(f"exports ({len(module.exports)}):")
    lines += [f"  {exp}" for exp in module.exports]
    names = module.custom_section_names()
    sizes = [len(data) for data in module.custom_sections()]
    lines.append(f"custom sections ({len(names)}):")
    lines += [f"  {name}: {size} bytes" for name, size in zip(names, sizes)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

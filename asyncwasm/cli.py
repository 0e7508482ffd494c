"""The ``asyncwasm`` command (also ``python -m asyncwasm``).

    asyncwasm inspect FILE      kind, imports, exports and custom sections

``run`` and ``serve`` arrive with the WASI and hosting issues; each
subcommand is one ``_cmd_<name>(args, out, err) -> int`` function registered
in :func:`build_parser`.

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
import sys
from typing import TYPE_CHECKING, Callable, NoReturn, Optional, Sequence, TextIO

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

    def _print_message(self, message: str, file: Optional[TextIO] = None) -> None:
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


def build_parser(out: TextIO, err: TextIO) -> argparse.ArgumentParser:
    """The full command line: one subparser per command, each with its
    handler in ``defaults(command=...)``."""
    from . import __version__

    make = functools.partial(_Parser, out=out, err=err)
    parser = make(prog=PROG, description="A WebAssembly runtime for Python, driven by trio.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=make)
    commands.required = True

    inspect = commands.add_parser(
        "inspect",
        help="show a module's kind, imports, exports and custom sections",
        description="Compile FILE and print its kind (command, reactor or library), its imports "
        "and exports with their types, and its custom sections. Exits 1 when FILE is not a "
        "valid module.",
    )
    inspect.add_argument("file", metavar="FILE", help="a .wasm file (binary format)")
    inspect.set_defaults(command=_cmd_inspect)
    return parser


def main(argv: Optional[Sequence[str]] = None, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the
    exit status instead of exiting."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    parser = build_parser(out, err)
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except _Exit as e:
        return e.status
    command: Command = args.command
    return command(args, out, err)


def _fail(err: TextIO, message: str) -> int:
    err.write(f"{PROG}: error: {message}\n")
    return EXIT_FAILURE


# -- inspect ---------------------------------------------------------------


def _cmd_inspect(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .module import Module
    from ._errors import ModuleError

    try:
        module = Module.from_file(args.file)
    except OSError as e:
        return _fail(err, f"{args.file}: {e.strerror or e}")
    except ModuleError as e:
        return _fail(err, f"{args.file}: {e}")
    out.write(format_module(module, args.file))
    return EXIT_OK


def format_module(module: "Module", label: str) -> str:
    """The text ``asyncwasm inspect`` prints for ``module``."""
    lines = [f"{label}: {module.kind} module" + (f" {module.name!r}" if module.name else "")]
    if module.start is not None:
        lines.append(f"start function: {module.start}")
    lines.append(f"imports ({len(module.imports)}):")
    lines += [f"  {imp.module}.{imp.name}: {imp.type}" for imp in module.imports]
    lines.append(f"exports ({len(module.exports)}):")
    lines += [f"  {exp.name}: {exp.type}" for exp in module.exports]
    names = module.custom_section_names()
    sizes = [len(data) for data in module.custom_sections()]
    lines.append(f"custom sections ({len(names)}):")
    lines += [f"  {name}: {size} bytes" for name, size in zip(names, sizes)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

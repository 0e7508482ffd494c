"""Running a WASI program from start to exit: what ``asyncwasm run`` does.

    >>> from asyncwasm.run import RunConfig, run_command
    >>> config = RunConfig("hello.wasm", args=["--name", "world"])
    >>> config.preopen("data", "/data", readonly=True)
    >>> status = run_command(config)          # blocks; returns the exit status

Inside trio, ``await run_async(config)`` does the same without starting an
event loop. The guest runs with :meth:`asyncwasm.Linker.instantiate_async`
and ``call_async``, so its blocking WASI calls (stdin, sockets, poll_oneoff)
suspend its trio task instead of the thread.

Rule: the exit status says how the run ended, wasmtime-style --

- ``0``: ``_start`` (or the ``--invoke`` function) returned;
- the guest's ``proc_exit`` code (0-255; another code becomes 1, since the
  shell would truncate it and could turn a failure into a 0);
- ``1``: it could not run or trapped (bad module, missing file, link error,
  trap, fuel exhausted), with one ``asyncwasm: error: ...`` line on ``err``;
- ``124``: the ``timeout`` ran out (as ``timeout(1)`` does).

Rule: the sandbox is exactly the config. The guest sees only the preopened
directories (read-only ones without any write right), the pre-opened
listeners, the environment it is given (nothing inherited unless asked), and
it may open network connections only as ``net_policy`` allows (default:
none). Memory, fuel and wall-clock time are capped by ``max_memory_pages``,
``fuel`` and ``timeout``.
"""

from __future__ import annotations

import math
import os
import socket
import sys
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Optional, Sequence, TextIO, Union

import trio

from ._engine import Func
from ._errors import Exit, FuelExhausted, LinkError, ModuleError, Trap, WasmException
from ._types import FuncType, ValType
from .execution import Limits
# The flag-value parsers and parse_address/open_listener stay importable from
# here (run's API before flagvalues and hostnet existed).
from .flagvalues import (
    MAX_PAGES, PAGE_SIZE, parse_count, parse_dir, parse_env, parse_seconds, parse_size, size_to_pages,
)
from .hostnet import format_address, open_listener, parse_address
from .instance import Instance
from .linker import Extern, Linker
from .module import Module
from .wasi.config import Preopen, WasiConfig
from .wasi.netpolicy import NetPolicy

__all__ = [
    "RunConfig",
    "RunError",
    "run_command",
    "run_async",
    "parse_size",
    "parse_dir",
    "parse_address",
    "parse_env",
    "open_listener",
    "load_module",
    "parse_invoke_args",
    "format_result",
    "EXIT_FAILURE",
    "EXIT_TIMEOUT",
]

PROG = "asyncwasm"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_TIMEOUT = 124  # what timeout(1) returns
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention



@dataclass
class RunConfig:
    """Everything ``asyncwasm run`` needs; the CLI fills one from its flags.

    - ``path``: the ``.wasm`` file; ``args``: the guest's arguments (after
      ``argv0``, default the file name), or the ``invoke`` function's.
    - ``preopens``: :class:`~asyncwasm.wasi.Preopen` entries, fds 3, 4, ...
    - ``env``: ``(name, value)`` pairs; ``inherit_env`` adds the host's
      environment under them.
    - ``invoke``: call this export instead of ``_start`` (``_initialize``
      runs first when the module has one); its results are printed.
    - ``fuel``, ``timeout`` (seconds, whole run), ``max_memory_pages``.
    - ``listeners``: listening sockets (see :func:`open_listener`) or
      ``(host, port)`` pairs, pre-opened after the directories.
    - ``net_policy``: what the guest may connect to / listen on by itself.
    - ``stats``: print the run's statistics to ``err`` at the end.
    - ``stdin``/``stdout``/``stderr``: WasiConfig stdio values (default: the
      host process's own).
    """

    path: str
    args: Sequence[str] = ()
    argv0: Optional[str] = None
    preopens: list[Preopen] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)
    inherit_env: bool = False
    invoke: Optional[str] = None
    fuel: Optional[int] = None
    timeout: Optional[float] = None
    max_memory_pages: Optional[int] = None
    listeners: list[Any] = field(default_factory=list)
    net_policy: NetPolicy = field(default_factory=NetPolicy)
    stats: bool = False
    stdin: Any = "inherit"
    stdout: Any = "inherit"
    stderr: Any = "inherit"

    def preopen(self, host_path: str, guest_path: Optional[str] = None, *, readonly: bool = False) -> None:
        """Let the guest see ``host_path`` as ``guest_path`` (default: the same string)."""
        self.preopens.append(Preopen(os.fspath(host_path), host_path if guest_path is None else guest_path, readonly))

    def wasi_config(self) -> WasiConfig:
        """The :class:`WasiConfig` this run gives the guest."""
        argv0 = self.argv0 if self.argv0 is not None else os.path.basename(self.path)
        return WasiConfig(
            argv=[argv0, *self.args],
            env=list(self.env),
            inherit_env=self.inherit_env,
            preopens=list(self.preopens),
            listeners=list(self.listeners),
            net_policy=self.net_policy,
            stdin=self.stdin,
            stdout=self.stdout,
            stderr=self.stderr,
        )


class RunError(Exception):
    """A problem reported as one ``asyncwasm: error:`` line, exit status 1."""


# -- --invoke ----------------------------------------------------------------------


def _parse_int(text: str, bits: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise ValueError(f"{text!r} does not fit in i{bits}")
    # Unsigned spellings above the signed range wrap to the same bits.
    return value - (1 << bits) if value >= (1 << (bits - 1)) else value


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def parse_invoke_args(name: str, functype: FuncType, texts: Sequence[str]) -> list[Union[int, float]]:
    """The ``--invoke`` arguments as Python values, by the export's parameter
    types: integers (decimal, ``0x``, ``0o``, ``0b``, negative or unsigned),
    floats (also ``nan``, ``inf``). ValueError with the reason otherwise.

        >>> parse_invoke_args("add", FuncType([I32, F64], []), ["-1", "2.5"])
        [-1, 2.5]
    """
    if len(texts) != len(functype.params):
        raise ValueError(
            f"{name!r} takes {len(functype.params)} argument(s) ({functype}), {len(texts)} given")
    values: list[Union[int, float]] = []
    for index, (valtype, text) in enumerate(zip(functype.params, texts)):
        try:
            if valtype == ValType.I32:
                values.append(_parse_int(text, 32))
            elif valtype == ValType.I64:
                values.append(_parse_int(text, 64))
            elif valtype in (ValType.F32, ValType.F64):
                values.append(_parse_float(text))
            else:
                raise ValueError(f"a {valtype} parameter cannot be given on the command line")
        except ValueError as exc:
            raise ValueError(f"argument {index + 1} of {name!r} ({valtype}): {exc}") from None
    return values


def format_result(value: Any) -> str:
    """One result as ``--invoke`` prints it (floats in Python's shortest form)."""
    if isinstance(value, float):
        return repr(value) if not math.isnan(value) else "nan"
    if value is None:
        return "null"
    return str(value)


# -- running -----------------------------------------------------------------------


def load_module(path: str) -> Module:
    """Read and compile the ``.wasm`` file ``path`` (blocks); :class:`RunError`
    with a one-line reason when it is missing, a directory or not a valid
    module. ``asyncwasm run`` and ``asyncwasm inspect`` share it."""
    try:
        return Module.from_file(path)
    except IsADirectoryError:
        raise RunError(f"{path}: is a directory, not a .wasm file") from None
    except OSError as exc:
        raise RunError(f"{path}: {exc.strerror or exc}") from None
    except ModuleError as exc:
        raise RunError(f"{path}: not a valid module: {exc}") from None


def run_command(config: RunConfig, *, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Run ``config`` to the end in a new trio event loop; return the exit
    status (see the module docstring). Blocks. ``out`` receives ``--invoke``
    results, ``err`` the error line and statistics (defaults: sys.stdout,
    sys.stderr); the guest's own stdio is ``config.stdout``/``stderr``."""
    try:
        return trio.run(run_async, config, out, err)
    except KeyboardInterrupt:
        _write(sys.stderr if err is None else err, f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED


async def run_async(config: RunConfig, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """:func:`run_command` from inside trio: runs the guest in this task."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    run = _Run(config, out, err)
    try:
        return await run.main()
    except RunError as exc:
        _write(err, f"{PROG}: error: {exc}\n")
        return EXIT_FAILURE


def _write(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()


def _export_func(exports: Mapping[str, Extern], name: str) -> Func:
    """Export ``name``, which :meth:`_Run._entry` checked is a function."""
    func = exports[name]
    assert isinstance(func, Func), name
    return func


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class _Run:
    """One run: load, link, instantiate, call, report."""

    def __init__(self, config: RunConfig, out: TextIO, err: TextIO) -> None:
        self.config = config
        self.out = out
        self.err = err
        self.instance: Optional[Instance] = None
        self.started = 0.0

    async def main(self) -> int:
        config = self.config
        module = load_module(config.path)
        limits = self._limits()
        for preopen in config.preopens:
            if not os.path.isdir(preopen.host_path):
                raise RunError(f"{preopen.host_path}: not a directory (preopen for {preopen.guest_path!r})")
        self._announce_listeners()
        self.started = trio.current_time()
        status: Optional[int] = None
        with trio.move_on_after(math.inf if config.timeout is None else config.timeout) as scope:
            try:
                status = await self._run(module, limits)
            finally:
                if self.instance is not None:
                    self._report_stats(self.instance)
                    self.instance.close()
        if scope.cancelled_caught and status is None:
            unit = "second" if config.timeout == 1 else "seconds"
            _write(self.err, f"{PROG}: error: timed out after {config.timeout:g} {unit} (--timeout)\n")
            return EXIT_TIMEOUT
        assert status is not None
        return status

    def _limits(self) -> Limits:
        config = self.config
        if config.timeout is not None and not 0 < config.timeout < math.inf:
            raise RunError(f"timeout must be a positive number of seconds, not {config.timeout!r}")
        try:
            # The timeout is not a Limits field here: it covers the whole run
            # (instantiation, _initialize, the call), applied in main().
            return Limits(max_memory_pages=config.max_memory_pages, fuel=config.fuel)
        except (TypeError, ValueError) as exc:
            raise RunError(str(exc)) from None

    def _announce_listeners(self) -> None:
        # A port picked by the kernel (":0") is otherwise unknowable.
        for listener in self.config.listeners:
            if isinstance(listener, socket.socket):
                address = listener.getsockname()
                _write(self.err, f"{PROG}: listening on {format_address(address)}\n")

    async def _run(self, module: Module, limits: Limits) -> int:
        config = self.config
        linker = Linker()
        try:
            linker.define_wasi(config.wasi_config())
        except (TypeError, ValueError) as exc:
            raise RunError(str(exc)) from None
        entry = self._entry(module)
        try:
            invoke_args = [] if config.invoke is None else parse_invoke_args(config.invoke, entry, config.args)
        except ValueError as exc:
            raise RunError(str(exc)) from None
        try:
            self.instance = await linker.instantiate_async(module, limits=limits)
            exports = self.instance.exports
            if config.invoke is None:
                await _export_func(exports, "_start").call_async()
                return EXIT_OK
            if config.invoke != "_initialize" and isinstance(exports.get("_initialize"), Func):
                await _export_func(exports, "_initialize").call_async()
            results = await _export_func(exports, config.invoke).call_async(*invoke_args)
        except Exit as exc:
            return exc.code if 0 <= exc.code <= 255 else EXIT_FAILURE
        except FuelExhausted as exc:
            where = f" in {exc.frames[0]}" if exc.frames else ""
            raise RunError(f"fuel exhausted{where}: the guest used all {config.fuel} units of --fuel") from None
        except Trap as exc:
            raise RunError(f"guest trapped: {_one_line(exc)}") from None
        except WasmException as exc:
            raise RunError(_one_line(exc)) from None
        except LinkError as exc:
            raise RunError(f"{config.path}: cannot instantiate: {exc}") from None
        except OSError as exc:  # a preopen or listener the WASI context could not open
            raise RunError(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}") from None
        if results is None:
            results = ()
        elif not isinstance(results, tuple):
            results = (results,)
        _write(self.out, "".join(format_result(value) + "\n" for value in results))
        return EXIT_OK

    def _entry(self, module: Module) -> FuncType:
        """The type of the function to call; RunError if the module lacks it."""
        config = self.config
        funcs = {e.name: e.type for e in module.exports if isinstance(e.type, FuncType)}
        name = "_start" if config.invoke is None else config.invoke
        if name in funcs:
            return funcs[name]
        known = ", ".join(sorted(funcs)) or "none"
        if config.invoke is None:
            raise RunError(f"{config.path}: a {module.kind} module has no _start to run; "
                           f"call an export with --invoke FUNC (exported functions: {known})")
        raise RunError(f"{config.path}: no exported function {name!r} (exported functions: {known})")

    def _report_stats(self, instance: Instance) -> None:
        if not self.config.stats:
            return
        stats = instance.statistics()
        elapsed = trio.current_time() - self.started
        _write(self.err, (
            f"{PROG}: stats: instructions (fuel used) {stats.fuel_used}\n"
            f"{PROG}: stats: host calls {stats.host_calls}, suspensions {stats.suspensions}, "
            f"fuel slices {stats.slices}\n"
            f"{PROG}: stats: time {elapsed:.6f} s wall, {stats.guest_time:.6f} s in the engine\n"
        ))

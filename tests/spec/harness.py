"""The WebAssembly spec testsuite driver: one runner, thin entry points.

The suite lives outside the repository, as JSON command lists plus binary
modules (see its README.md): ``../shared/wasm-spec`` next to the repository
root, or wherever ``ASYNCWASM_SPEC_DIR`` points. Without it every spec test
skips, naming the path it looked at.

Entry points:

    python -m pytest tests/spec                      # one test per file and mode
    python -m pytest tests/spec -k "i32.wast"        # one file
    python -m tests.spec.harness i32                 # one file, report every failure
    python -m tests.spec.harness i32.wast:118        # one line, with details
    python -m tests.spec.harness --all               # counts per file and per command kind
    python -m tests.spec.harness --all --mode sliced # the same in tiny fuel slices

Modes (STYLE.md point 8):

- ``normal``: every invoke is ``Func.call_raw`` (one uninterrupted C call).
- ``sliced``: every invoke is an ``asyncwasm.lowlevel.Fiber`` run
  ``SLICE_FUEL`` units of fuel at a time (or the one charge that did not
  fit, when it is larger), resumed until it finishes. Results must be the
  same: this is the cheapest strong test of the stackless contract.

Rules applied (README of the suite):

- values are compared as bit patterns, ``nan:canonical`` / ``nan:arithmetic``
  by their definition; ``externref N`` is one opaque object per N per script,
  compared by identity;
- ``assert_trap`` / ``assert_exhaustion`` / ``assert_uninstantiable`` need an
  ``asyncwasm.Trap``; ``assert_invalid`` a ``ValidationError``; binary
  ``assert_malformed`` a ``MalformedError``; ``assert_unlinkable`` a
  ``LinkError``. Raising the wrong class fails. A message that does not
  start with the suite's text is recorded as a *message mismatch*, reported
  but not a failure.
- text-format ``assert_malformed`` (.wat) is skipped: asyncwasm has no text
  parser.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]

MODES = ("normal", "sliced")
#: Fuel per run in sliced mode (a run always gets at least the pending charge).
SLICE_FUEL = 3

TEXT_FORMAT_REASON = "text format (asyncwasm reads the binary format only)"
#: What the engine says when it refuses a module for a feature it lacks:
#: "<feature> is not supported yet" (a ValidationError).
UNSUPPORTED_MARK = " is not supported yet"

#: Known gaps, as data: "<suite>/<file>.wast" or "<suite>/<file>.wast:<line>"
#: -> reason. Keep it to tests that truly cannot apply to asyncwasm.
SKIPS: dict[str, str] = {}

# The engine implements Wasm 3.0, which made some modules the 2.0 suite
# rejects well-formed (or valid): the 3.0 suite checks the new rules.
_REVERSED_BY_3_0 = {
    "Wasm 3.0 limits are u64 (memory64's encoding): no longer too long or too large to decode": (
        "binary.wast:223 binary.wast:276 binary.wast:284 binary.wast:475 binary.wast:604 binary.wast:612 "
        "binary-leb128.wast:218 binary-leb128.wast:226 binary-leb128.wast:526 binary-leb128.wast:534 "
        "binary-leb128.wast:542 binary-leb128.wast:551"
    ),
    "Wasm 3.0 memory offsets are u64 (memory64's encoding): a memory32 refuses a large one as invalid": (
        "binary.wast:483 binary.wast:540 binary.wast:620 binary.wast:639 binary.wast:733 binary.wast:752 "
        "binary-leb128.wast:405 binary-leb128.wast:462 binary-leb128.wast:731 binary-leb128.wast:750 "
        "binary-leb128.wast:844 binary-leb128.wast:863"
    ),
    "Wasm 3.0 reads a memory index where 2.0 wanted a zero byte (multi-memory's encoding)": (
        "binary.wast:857 binary.wast:877 binary.wast:897 binary.wast:916 binary.wast:935 binary.wast:955 "
        "binary.wast:974 binary.wast:993 binary.wast:1011 binary.wast:1029"
    ),
    "Wasm 3.0 allows several memories (multi-memory)": (
        "imports.wast:483 imports.wast:487 imports.wast:491 memory.wast:10 memory.wast:11"
    ),
    "Wasm 3.0 constant expressions may read defined immutable globals": (
        "data.wast:85 data.wast:89 elem.wast:152 elem.wast:156 global.wast:352 global.wast:356"
    ),
}
SKIPS.update({f"2.0/{where}": why for why, places in _REVERSED_BY_3_0.items() for where in places.split()})

#: Command kinds in the order reports list them.
COMMAND_KINDS = (
    "module",
    "module_definition",
    "module_instance",
    "register",
    "action",
    "assert_return",
    "assert_trap",
    "assert_exception",
    "assert_exhaustion",
    "assert_invalid",
    "assert_malformed",
    "assert_unlinkable",
    "assert_uninstantiable",
)

PASS, FAIL, SKIP = "pass", "fail", "skip"


# -- locating the suites --------------------------------------------------------


@dataclass(frozen=True)
class Suite:
    """One converted testsuite: ``<root>/json/NAME.json`` command lists and
    their modules in ``<root>/<module_subdir>``. The 3.0 suite's
    ``scope.json`` gives each file a feature level."""

    name: str
    folder: str  # default root: ../shared/<folder> next to the repository
    env: str  # variable that overrides the root
    module_subdir: str

    def root(self) -> Path:
        override = os.environ.get(self.env)
        return Path(override) if override else REPO_ROOT.parent / "shared" / self.folder

    def json_dir(self) -> Path:
        return self.root() / "json"

    def module_path(self, filename: str) -> Path:
        return self.root() / self.module_subdir / filename

    def missing_reason(self) -> Optional[str]:
        """Why the suite cannot run (naming the path), or None when it can."""
        if self.json_dir().is_dir():
            return None
        return f"spec testsuite {self.name} not found at {self.json_dir()} (set {self.env} to its {self.folder} folder)"

    def script_names(self) -> list[str]:
        """Every script's name (``i32``, ``simd_lane``, ...), sorted; [] without the suite."""
        if self.missing_reason():
            return []
        return sorted(p.stem for p in self.json_dir().glob("*.json"))

    def level(self, script: str) -> Optional[str]:
        """The file's feature level from scope.json (``wasm2-nosimd``, ``wasm2``,
        ``nonGC3``, ``wasm3``), or None when the suite has no scope file."""
        return _scope(self.root()).get(script)


SUITES = {
    "2.0": Suite("2.0", "wasm-spec", "ASYNCWASM_SPEC_DIR", "json"),
    "3.0": Suite("3.0", "wasm-spec-3.0", "ASYNCWASM_SPEC3_DIR", "wasm"),
}
#: Files of this level must pass every command (no feature skips).
REQUIRED_LEVEL = "wasm2-nosimd"


@functools.lru_cache(maxsize=None)
def _scope(root: Path) -> dict[str, str]:
    try:
        with open(root / "scope.json", encoding="utf-8") as f:
            files = json.load(f)["files"]
    except FileNotFoundError:
        return {}
    return {name: entry["level"] for name, entry in files.items()}


def suite(name: str = "2.0") -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"unknown suite {name!r} (known: {', '.join(SUITES)})") from None


# The 2.0 suite's helpers, kept for callers that know only one suite.
def spec_dir() -> Path:
    """The 2.0 suite's root: $ASYNCWASM_SPEC_DIR, else ../shared/wasm-spec."""
    return SUITES["2.0"].root()


def json_dir() -> Path:
    return SUITES["2.0"].json_dir()


def missing_reason() -> Optional[str]:
    return SUITES["2.0"].missing_reason()


def script_names() -> list[str]:
    return SUITES["2.0"].script_names()


def load_commands(script: str, suite_name: str = "2.0") -> list[dict[str, Any]]:
    with open(suite(suite_name).json_dir() / f"{script}.json", encoding="utf-8") as f:
        return json.load(f)["commands"]


def valid_module_paths(suite_name: str = "2.0") -> list[Path]:
    """The .wasm file of every ``module`` command of every script:
    modules the suite says are valid (used by the robustness tests; in the
    3.0 suite, some need a feature the engine refuses as not supported yet)."""
    s = suite(suite_name)
    paths = []
    for script in s.script_names():
        paths += [s.module_path(_binary(c)) for c in load_commands(script, suite_name) if c["type"] == "module"]
    return paths


def skip_reason(script: str, line: Optional[int] = None, suite_name: str = "2.0") -> Optional[str]:
    """Why a whole script (or one line of it) is skipped, or None. The 3.0
    suite also skips, command by command, what the engine refuses as not
    supported yet (see Unsupported)."""
    reason = SKIPS.get(f"{suite_name}/{script}.wast")
    if reason is None and line is not None:
        reason = SKIPS.get(f"{suite_name}/{script}.wast:{line}")
    return reason


def unsupported_feature(message: str) -> Optional[str]:
    """``"memory64"`` for an error ``"memory64 is not supported yet: ..."``, else None."""
    head, mark, _ = message.partition(UNSUPPORTED_MARK)
    return head.rsplit(": ", 1)[-1] if mark else None


# -- values --------------------------------------------------------------------


class HostRef:
    """The opaque host reference ``ref.extern N`` (compared by identity)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"ref.extern {self.n}"


_LANE_BITS = {"i8": 8, "i16": 16, "i32": 32, "i64": 64, "f32": 32, "f64": 64}
_FLOAT_BITS = {"f32": 32, "f64": 64}


def is_canonical_nan(bits: int, width: int) -> bool:
    """Quiet NaN with zero payload, either sign."""
    frac = 23 if width == 32 else 52
    magnitude = bits & ((1 << (width - 1)) - 1)
    return magnitude == ((1 << (width - 1 - frac)) - 1) << frac | 1 << (frac - 1)


def is_arithmetic_nan(bits: int, width: int) -> bool:
    """NaN with the quiet bit set, any payload, either sign."""
    frac = 23 if width == 32 else 52
    exponent_all_ones = ((1 << (width - 1 - frac)) - 1) << frac
    quiet = 1 << (frac - 1)
    return bits & exponent_all_ones == exponent_all_ones and bits & quiet != 0


def _lane_matches(expected: str, bits: int, lane_type: str) -> bool:
    width = _LANE_BITS[lane_type]
    if expected == "nan:canonical":
        return lane_type in _FLOAT_BITS and is_canonical_nan(bits, width)
    if expected == "nan:arithmetic":
        return lane_type in _FLOAT_BITS and is_arithmetic_nan(bits, width)
    return bits == int(expected) & ((1 << width) - 1)  # 3.0 writes lanes signed, 2.0 unsigned


class Values:
    """Converts the suite's JSON values to engine raw values and checks
    results. One per script, so ``ref.extern N`` keeps its identity."""

    def __init__(self) -> None:
        self._refs: dict[int, HostRef] = {}

    def hostref(self, n: int) -> HostRef:
        ref = self._refs.get(n)
        if ref is None:
            ref = self._refs[n] = HostRef(n)
        return ref

    def to_raw(self, value: dict[str, Any]) -> Any:
        kind, text = value["type"], value.get("value")
        if kind in ("i32", "i64", "f32", "f64"):
            return int(text)
        if kind == "v128":
            width = _LANE_BITS[value["lane_type"]]
            mask = (1 << width) - 1
            return sum((int(lane) & mask) << (i * width) for i, lane in enumerate(text))
        if kind.endswith("ref"):
            if text == "null":
                return None
            if kind == "externref":
                return self.hostref(int(text))
            raise HarnessError(f"{kind} argument {text!r} cannot be expressed")
        raise HarnessError(f"unknown value type {kind!r}")

    def mismatch(self, expected: dict[str, Any], got: Any) -> Optional[str]:
        """None when ``got`` (a raw result) is ``expected``; else why not."""
        kind, text = expected["type"], expected.get("value")
        if kind in ("i32", "i64", "f32", "f64"):
            if not isinstance(got, int) or isinstance(got, bool):
                return f"expected {kind} bits, got {got!r}"
            width = int(kind[1:])
            if not 0 <= got < 1 << width:
                return f"{kind} result {got} is not a {width}-bit pattern"
            if text in ("nan:canonical", "nan:arithmetic"):
                ok = is_canonical_nan(got, width) if text == "nan:canonical" else is_arithmetic_nan(got, width)
                return None if ok else f"expected {text}, got {format_raw(kind, got)}"
            want = int(text) & ((1 << width) - 1)  # 3.0 writes integers signed, 2.0 unsigned
            return None if got == want else f"expected {format_raw(kind, want)}, got {format_raw(kind, got)}"
        if kind == "v128":
            if not isinstance(got, int) or not 0 <= got < 1 << 128:
                return f"expected v128 bits, got {got!r}"
            lane_type = expected["lane_type"]
            width = _LANE_BITS[lane_type]
            lanes = [(got >> (i * width)) & ((1 << width) - 1) for i in range(128 // width)]
            if len(text) == len(lanes) and all(_lane_matches(e, b, lane_type) for e, b in zip(text, lanes)):
                return None
            return f"expected v128 {lane_type} {text}, got {lanes}"
        if kind.endswith("ref") or kind == "refnull":
            return self._ref_mismatch(kind, text, got)
        return f"unknown expected type {kind!r}"

    def _ref_mismatch(self, kind: str, text: Optional[str], got: Any) -> Optional[str]:
        # 3.0 adds "refnull" (any null) and "nullfuncref", "nullexternref",
        # "nullexnref"... (the null of one hierarchy): all are Python's None.
        if text == "null" or kind.startswith("null") or kind == "refnull":
            return None if got is None else f"expected {kind} null, got {got!r}"
        if got is None:
            return f"expected a non-null {kind}, got null"
        if kind == "funcref":
            from asyncwasm import Func

            return None if isinstance(got, Func) else f"expected a Func, got {got!r}"
        if kind == "exnref":
            from asyncwasm import WasmException

            return None if isinstance(got, WasmException) else f"expected an exception, got {got!r}"
        if kind != "externref":
            return f"cannot check a {kind} result"
        if text is None:  # any non-null externref
            return None
        ref = self.hostref(int(text))
        return None if got is ref else f"expected ref.extern {text}, got {got!r}"


def format_raw(kind: str, bits: int) -> str:
    width = int(kind[1:])
    if kind[0] == "i":
        signed = bits - (1 << width) if bits >> (width - 1) else bits
        return f"{kind}:{bits:#x} ({signed})"
    import struct

    value = struct.unpack("<f" if width == 32 else "<d", bits.to_bytes(width // 8, "little"))[0]
    return f"{kind}:{bits:#x} ({value!r})"


# -- results -------------------------------------------------------------------


class HarnessError(Exception):
    """The harness cannot run a command (bad data, missing module)."""


@dataclass
class CommandResult:
    script: str
    line: int
    kind: str
    status: str  # PASS, FAIL or SKIP
    detail: str = ""
    message_mismatch: Optional[str] = None  # right error class, different text

    @property
    def where(self) -> str:
        return f"{self.script}.wast:{self.line} {self.kind}"

    def __str__(self) -> str:
        text = f"{self.where}: {self.status}"
        if self.detail:
            text += f": {self.detail}"
        if self.message_mismatch:
            text += f" [message: {self.message_mismatch}]"
        return text


@dataclass
class ScriptReport:
    script: str
    mode: str
    results: list[CommandResult] = field(default_factory=list)
    seconds: float = 0.0
    slices: SliceStats = field(default_factory=lambda: SliceStats())

    def counts(self) -> collections.Counter[tuple[str, str]]:
        return collections.Counter((r.kind, r.status) for r in self.results)

    @property
    def failures(self) -> list[CommandResult]:
        return [r for r in self.results if r.status == FAIL]

    @property
    def message_mismatches(self) -> list[CommandResult]:
        return [r for r in self.results if r.message_mismatch]

    def failure_text(self, limit: int = 60) -> str:
        lines = [str(r) for r in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"... and {len(self.failures) - limit} more failures")
        return "\n".join(lines)


# -- the runner ------------------------------------------------------------------


def _spectest_print(*args: Any) -> None:
    """spectest's print functions may do nothing (suite README)."""


def make_linker() -> Any:
    """A linker holding a fresh ``spectest`` module (suite README table)."""
    import struct

    from asyncwasm import F32, F64, FUNCREF, I32, I64, FuncType, Global, GlobalType, Linker, Memory, MemoryType, Table, TableType

    linker = Linker(allow_shadowing=True)
    prints = {
        "print": [],
        "print_i32": [I32],
        "print_i64": [I64],
        "print_f32": [F32],
        "print_f64": [F64],
        "print_i32_f32": [I32, F32],
        "print_f64_f64": [F64, F64],
    }
    for name, params in prints.items():
        linker.define_func("spectest", name, FuncType(params, []), _spectest_print)
    f32_666_6 = struct.unpack("<f", (0x4426A666).to_bytes(4, "little"))[0]
    f64_666_6 = struct.unpack("<d", (0x4084D4CCCCCCCCCD).to_bytes(8, "little"))[0]
    linker.define("spectest", "global_i32", Global(GlobalType(I32), 666))
    linker.define("spectest", "global_i64", Global(GlobalType(I64), 666))
    linker.define("spectest", "global_f32", Global(GlobalType(F32), f32_666_6))
    linker.define("spectest", "global_f64", Global(GlobalType(F64), f64_666_6))
    linker.define("spectest", "table", Table(TableType(FUNCREF, 10, 20)))
    linker.define("spectest", "table64", Table(TableType(FUNCREF, 10, 20, is_64=True)))
    linker.define("spectest", "memory", Memory(MemoryType(1, 2)))
    return linker


@dataclass
class SliceStats:
    """How much slicing a sliced run did (to show the mode is not vacuous)."""

    calls: int = 0
    runs: int = 0  # Fiber.run() calls; runs - calls = resumptions after OUT_OF_FUEL


def run_sliced(func: Any, args: tuple, slice_fuel: int = SLICE_FUEL, stats: Optional[SliceStats] = None) -> tuple:
    """Call ``func`` through a Fiber in slices of ``slice_fuel`` fuel (or the
    pending charge, when larger) until it finishes; raw values in and out."""
    from asyncwasm.lowlevel import Fiber, Outcome

    fiber = Fiber(func, args, raw=True)
    stats = SliceStats() if stats is None else stats
    stats.calls += 1
    stalled = 0
    while True:
        used_before = fiber.fuel_used
        stats.runs += 1
        outcome = fiber.run(max(slice_fuel, fiber.fuel_needed))
        if outcome == Outcome.DONE:
            return fiber.results
        if outcome == Outcome.TRAP:
            raise fiber.trap()
        if outcome == Outcome.EXCEPTION:
            raise fiber.exception()
        if outcome == Outcome.SUSPEND:
            raise HarnessError(f"unexpected suspension on {fiber.awaitable!r}")
        if outcome != Outcome.OUT_OF_FUEL:
            raise HarnessError(f"unknown run outcome {outcome!r}")
        # Each slice covers at least the charge that stopped the previous one,
        # so fuel_used must grow; two stalls in a row mean the fiber is stuck.
        stalled = stalled + 1 if fiber.fuel_used == used_before else 0
        if stalled >= 2:
            raise HarnessError(f"fiber made no progress (fuel_needed={fiber.fuel_needed})")


class Unsupported(Exception):
    """A command needs a module the engine refuses as not supported yet."""


def imported_module_names(data: bytes) -> Optional[set[str]]:
    """The module names a binary module imports from, read from its import
    section; None when it cannot tell (then assume any)."""

    def leb(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[pos]
            value |= (byte & 0x7F) << shift
            pos += 1
            if not byte & 0x80:
                return value, pos
            shift += 7

    try:
        pos = 8
        while pos < len(data):
            section, pos = data[pos], pos + 1
            size, pos = leb(pos)
            if section != 2:
                pos += size
                continue
            count, pos = leb(pos)
            names = set()
            for _ in range(count):
                length, pos = leb(pos)
                names.add(data[pos : pos + length].decode("utf-8"))
                pos += length
                length, pos = leb(pos)  # the field name
                pos += length
                # The descriptions are not needed: only the first entry's position
                # is certain after one, so read the names only while they parse.
                kind = data[pos]
                if kind not in (0x00, 0x03, 0x04):  # tables and memories: variable limits
                    return None
                pos += 1
                if kind == 0x03:  # global: a one-byte type, then mutability
                    if data[pos] in (0x63, 0x64):
                        return None
                    pos += 2
                else:  # func: type index; tag: attribute, type index
                    pos += kind == 0x04
                    _, pos = leb(pos)
            return names
        return set()
    except (IndexError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class Refused:
    """Stands for a module the engine refused as not supported (or an
    instance of one): commands that use it are skipped for that reason."""

    reason: str  # "<feature> is not supported yet"
    rule: str = ""  # the engine's whole message


class ScriptRunner:
    """Runs one script's commands in order against a fresh store."""

    def __init__(self, script: str, mode: str = "normal", suite_name: str = "2.0") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.script = script
        self.mode = mode
        self.suite = suite(suite_name)
        self.values = Values()
        self.linker = make_linker()
        self.current: Any = None  # the current Instance (or Refused), None after a failed module
        self.named: dict[str, Any] = {}
        self.definitions: dict[str, Any] = {}  # module_definition name -> Module or Refused
        self.refused_names: dict[str, str] = {}  # registered names of refused modules -> reason
        self.registered: dict[str, Any] = {}  # register name -> instance
        self.tainted: dict[int, str] = {}  # id(instance) -> why its state is unknown
        self._modules: dict[str, Any] = {}
        self.slices = SliceStats()

    # -- helpers --

    def _unsupported(self, error: Exception) -> Optional[str]:
        """The skip reason when ``error`` says a feature is not supported yet
        (3.0 suite only: the 2.0 suite's expectations predate those features)."""
        from asyncwasm import ModuleError

        if self.suite.name == "2.0" or not isinstance(error, ModuleError):
            return None
        feature = unsupported_feature(error.rule)
        return None if feature is None else feature + UNSUPPORTED_MARK

    def _module(self, filename: str) -> Any:
        """The compiled module; raises Unsupported when the engine refuses it
        for a missing feature (3.0 suite)."""
        from asyncwasm import Module, ModuleError

        module = self._modules.get(filename)
        if module is None:
            path = self.suite.module_path(filename)
            try:
                module = Module.from_file(path)
            except ModuleError as e:
                reason = self._unsupported(e)
                if reason is None:
                    raise
                module = Refused(reason, e.rule)
            self._modules[filename] = module
        if isinstance(module, Refused):
            raise Unsupported(module.reason)
        return module

    def _module_to_run(self, filename: str) -> Any:
        """_module, for a module that would be instantiated: a refused one
        might have written into the instances it imports from, had it run,
        so those are tainted and later commands on them skipped for the
        same reason."""
        try:
            return self._module(filename)
        except Unsupported as e:
            names = imported_module_names(self.suite.module_path(filename).read_bytes())
            for name, instance in self.registered.items():
                if names is None or name in names:
                    self.tainted.setdefault(id(instance), str(e))
            raise

    def _instantiate(self, module: Any) -> Any:
        for imp in module.imports:
            if imp.module in self.refused_names:
                raise Unsupported(self.refused_names[imp.module])
        return self.linker.instantiate(module)

    def _instance(self, name: Optional[str]) -> Any:
        if name is None:
            if self.current is None:
                raise HarnessError("no current module (the last module command failed)")
            instance = self.current
        elif name not in self.named:
            raise HarnessError(f"no module named {name}")
        else:
            instance = self.named[name]
        if isinstance(instance, Refused):
            raise Unsupported(instance.reason)
        if id(instance) in self.tainted:
            raise Unsupported(self.tainted[id(instance)] + " (a module refused for it shares this instance's state)")
        return instance

    def act(self, action: dict[str, Any]) -> tuple:
        """Perform an invoke or get action; raw results as a tuple."""
        instance = self._instance(action.get("module"))
        field_name = action["field"]
        if field_name not in instance.exports:
            raise HarnessError(f"no export {field_name!r}")
        extern = instance.exports[field_name]
        if action["type"] == "get":
            return (extern.raw,)
        if action["type"] != "invoke":
            raise HarnessError(f"unknown action type {action['type']!r}")
        args = tuple(self.values.to_raw(a) for a in action.get("args", ()))
        if self.mode == "sliced":
            return run_sliced(extern, args, stats=self.slices)
        return tuple(extern.call_raw(*args))

    # -- commands: each returns (status, detail, message_mismatch) --

    def run(self, only_line: Optional[int] = None) -> ScriptReport:
        """Run every command. With ``only_line``, still run everything up to
        that line (later commands depend on earlier state) but report only the
        command(s) at that line, and stop there."""
        report = ScriptReport(self.script, self.mode)
        start = time.perf_counter()
        for command in load_commands(self.script, self.suite.name):
            line = command["line"]
            if only_line is not None and line > only_line:
                break
            result = self.run_command(command)
            if only_line is None or line == only_line:
                report.results.append(result)
        report.seconds = time.perf_counter() - start
        report.slices = self.slices
        return report

    def run_command(self, command: dict[str, Any]) -> CommandResult:
        kind = command["type"]
        line = command["line"]
        reason = skip_reason(self.script, line, self.suite.name)
        if reason is not None and kind not in ("module", "register", "action"):
            return CommandResult(self.script, line, kind, SKIP, reason)
        handler: Optional[Callable[[dict[str, Any]], tuple[str, str, Optional[str]]]]
        handler = getattr(self, f"_cmd_{kind}", None)
        if handler is None:
            return CommandResult(self.script, line, kind, FAIL, f"unknown command type {kind!r}")
        try:
            status, detail, mismatch = handler(command)
        except HarnessError as e:
            status, detail, mismatch = FAIL, str(e), None
        except Unsupported as e:
            status, detail, mismatch = SKIP, str(e), None
        return CommandResult(self.script, line, kind, status, detail, mismatch)

    def _cmd_module(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        self.current = None
        try:
            instance = self._instantiate(self._module_to_run(_binary(command)))
        except Unsupported as e:
            instance = Refused(str(e))
        except Exception as e:  # noqa: BLE001 - any failure of a valid module is a test failure
            return FAIL, f"{command['filename']}: {_describe(e)}", None
        self.current = instance
        if "name" in command:
            self.named[command["name"]] = instance
        if isinstance(instance, Refused):
            return SKIP, instance.reason, None
        return PASS, "", None

    def _cmd_module_definition(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        """A module compiled now and instantiated by later module_instance commands."""
        try:
            module: Any = self._module(_binary(command))  # instantiated by module_instance
        except Unsupported as e:
            module = Refused(str(e))
        except Exception as e:  # noqa: BLE001
            return FAIL, f"{command['filename']}: {_describe(e)}", None
        if "name" in command:
            self.definitions[command["name"]] = module
        if isinstance(module, Refused):
            return SKIP, module.reason, None
        return PASS, "", None

    def _cmd_module_instance(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        module = self.definitions.get(command["module"])
        if module is None:
            raise HarnessError(f"no module definition named {command['module']}")
        self.current = None
        try:
            if isinstance(module, Refused):
                raise Unsupported(module.reason)
            instance = self._instantiate(module)
        except Unsupported as e:
            instance = Refused(str(e))
        except Exception as e:  # noqa: BLE001
            return FAIL, f"instance of {command['module']}: {_describe(e)}", None
        self.current = self.named[command["instance"]] = instance
        if isinstance(instance, Refused):
            return SKIP, instance.reason, None
        return PASS, "", None

    def _cmd_register(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        try:
            instance = self._instance(command.get("name"))
        except Unsupported as e:
            self.refused_names[command["as"]] = str(e)
            raise
        self.refused_names.pop(command["as"], None)
        self.registered[command["as"]] = instance
        self.linker.define_instance(command["as"], instance)
        return PASS, "", None

    def _cmd_action(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        try:
            self.act(command["action"])
        except (HarnessError, Unsupported):
            raise
        except Exception as e:  # noqa: BLE001
            return FAIL, f"{_action_text(command)} raised {_describe(e)}", None
        return PASS, "", None

    def _cmd_assert_return(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        try:
            got = self.act(command["action"])
        except (HarnessError, Unsupported):
            raise
        except Exception as e:  # noqa: BLE001
            return FAIL, f"{_action_text(command)} raised {_describe(e)}", None
        expected = command["expected"]
        if len(got) != len(expected):
            return FAIL, f"{_action_text(command)}: expected {len(expected)} results, got {got!r}", None
        problems = [
            f"result {i}: {why}" for i, (e, g) in enumerate(zip(expected, got)) if (why := self.values.mismatch(e, g))
        ]
        if problems:
            return FAIL, f"{_action_text(command)}: " + "; ".join(problems), None
        return PASS, "", None

    def _expect_trap(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        from asyncwasm import Trap

        text = command["text"]
        try:
            got = self.act(command["action"])
        except (HarnessError, Unsupported):
            raise
        except Trap as e:
            return PASS, "", None if e.kind.startswith(text) else f"expected {text!r}, got {e.kind!r}"
        except Exception as e:  # noqa: BLE001
            return FAIL, f"{_action_text(command)}: expected trap {text!r}, raised {_describe(e)}", None
        return FAIL, f"{_action_text(command)}: expected trap {text!r}, returned {got!r}", None

    _cmd_assert_trap = _expect_trap
    _cmd_assert_exhaustion = _expect_trap

    def _cmd_assert_exception(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        """The invoke must end with an uncaught Wasm exception."""
        from asyncwasm import WasmException

        try:
            got = self.act(command["action"])
        except (HarnessError, Unsupported):
            raise
        except WasmException:
            return PASS, "", None
        except Exception as e:  # noqa: BLE001
            return FAIL, f"{_action_text(command)}: expected a Wasm exception, raised {_describe(e)}", None
        return FAIL, f"{_action_text(command)}: expected a Wasm exception, returned {got!r}", None

    def _expect_compile_error(self, command: dict[str, Any], expected_class: type) -> tuple[str, str, Optional[str]]:
        """An invalid module refused as not supported is still refused as
        invalid (a message mismatch); a malformed one is skipped: the
        engine did not read far enough to tell."""
        from asyncwasm import ModuleError, ValidationError

        text = command["text"]
        try:
            self._module(_binary(command))
        except ModuleError as e:
            if not isinstance(e, expected_class):
                return FAIL, f"expected {expected_class.__name__} {text!r}, got {_describe(e)}", None
            return PASS, "", None if e.rule.startswith(text) else f"expected {text!r}, got {e.rule!r}"
        except Unsupported as e:
            refused = self._modules[_binary(command)]
            if expected_class is ValidationError:
                return PASS, "", f"expected {text!r}, got {refused.rule!r}"
            raise
        except Exception as e:  # noqa: BLE001
            return FAIL, f"expected {expected_class.__name__} {text!r}, raised {_describe(e)}", None
        return FAIL, f"expected {expected_class.__name__} {text!r}, but the module compiled", None

    def _cmd_assert_invalid(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        from asyncwasm import ValidationError

        return self._expect_compile_error(command, ValidationError)

    def _cmd_assert_malformed(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        from asyncwasm import MalformedError

        if command.get("module_type") == "text":
            return SKIP, TEXT_FORMAT_REASON, None
        return self._expect_compile_error(command, MalformedError)

    def _expect_instantiation_error(self, command: dict[str, Any], expected_class: type) -> tuple[str, str, Optional[str]]:
        text = command["text"]
        try:
            module = self._module_to_run(_binary(command))
        except Unsupported:
            raise
        except Exception as e:  # noqa: BLE001
            return FAIL, f"the module must compile, but: {_describe(e)}", None
        try:
            self._instantiate(module)
        except expected_class as e:
            message = getattr(e, "kind", None) or str(e)
            return PASS, "", None if message.startswith(text) else f"expected {text!r}, got {message!r}"
        except Unsupported:
            raise
        except Exception as e:  # noqa: BLE001
            return FAIL, f"expected {expected_class.__name__} {text!r}, raised {_describe(e)}", None
        return FAIL, f"expected {expected_class.__name__} {text!r}, but instantiation succeeded", None

    def _cmd_assert_unlinkable(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        from asyncwasm import LinkError

        return self._expect_instantiation_error(command, LinkError)

    def _cmd_assert_uninstantiable(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        from asyncwasm import Trap

        return self._expect_instantiation_error(command, Trap)


def _binary(command: dict[str, Any]) -> str:
    """The binary module of a command (3.0: text-form modules come with one)."""
    return command.get("binary_filename", command["filename"])


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _action_text(command: dict[str, Any]) -> str:
    action = command["action"]
    args = ", ".join(
        str(a.get("value", a["type"])) if a["type"] != "v128" else "v128" for a in action.get("args", ())
    )
    where = f"{action['module']}." if "module" in action else ""
    verb = "get" if action["type"] == "get" else "invoke"
    return f"{verb} {where}{action['field']}({args})"


# -- whole-suite runs ------------------------------------------------------------


def run_script(script: str, mode: str = "normal", only_line: Optional[int] = None, suite_name: str = "2.0") -> ScriptReport:
    """Run one script, or report every command skipped when it is skipped as a whole."""
    reason = skip_reason(script, suite_name=suite_name)
    if reason is not None:
        report = ScriptReport(script, mode)
        report.results = [
            CommandResult(script, c["line"], c["type"], SKIP, reason)
            for c in load_commands(script, suite_name)
            if only_line is None or c["line"] == only_line
        ]
        return report
    return ScriptRunner(script, mode, suite_name).run(only_line)


def skipped_features(report: ScriptReport) -> collections.Counter[str]:
    """Commands skipped because a module needs a feature the engine lacks, by feature."""
    return collections.Counter(
        feature for r in report.results if r.status == SKIP and (feature := unsupported_feature(r.detail))
    )


def _status_column(result: CommandResult) -> str:
    if result.status != SKIP:
        return result.status
    if result.detail == TEXT_FORMAT_REASON:
        return "skip text"
    if unsupported_feature(result.detail):
        return "skip feature"
    return "skip other"


TOTAL_COLUMNS = (PASS, FAIL, "skip feature", "skip text", "skip other", "msg mismatch")


def totals(reports: Iterable[ScriptReport]) -> dict[str, collections.Counter[str]]:
    """Per command kind: counts of pass, fail, each skip reason, and message
    mismatches (which are also counted as passes)."""
    table: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in COMMAND_KINDS}
    for report in reports:
        for r in report.results:
            counter = table.setdefault(r.kind, collections.Counter())
            counter[_status_column(r)] += 1
            if r.message_mismatch:
                counter["msg mismatch"] += 1
    return table


def format_totals(table: dict[str, collections.Counter[str]]) -> str:
    lines = [f"{'command':<22}" + "".join(f"{c:>13}" for c in TOTAL_COLUMNS)]
    grand: collections.Counter[str] = collections.Counter()
    for kind, counter in table.items():
        lines.append(f"{kind:<22}" + "".join(f"{counter[c]:>13,}" for c in TOTAL_COLUMNS))
        grand.update(counter)
    lines.append(f"{'total':<22}" + "".join(f"{grand[c]:>13,}" for c in TOTAL_COLUMNS))
    return "\n".join(lines)


def _resolve_script(arg: str, s: Suite) -> tuple[str, Optional[int]]:
    """``i32``, ``i32.wast``, ``i32.json``, ``path/i32.wast`` with optional ``:LINE``."""
    name, line = arg, None
    head, sep, tail = arg.rpartition(":")
    if sep and tail.isdigit():
        name, line = head, int(tail)
    stem = Path(name).name
    for suffix in (".wast", ".json"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    if not (s.json_dir() / f"{stem}.json").exists():
        raise SystemExit(f"no script {stem!r} in {s.json_dir()}")
    return stem, line


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.spec.harness", description=__doc__.split("\n\n")[0])
    parser.add_argument("scripts", nargs="*", metavar="FILE[:LINE]", help="script name, e.g. i32 or i32.wast:118")
    parser.add_argument("--all", action="store_true", help="run every script; print counts per file and kind")
    parser.add_argument("--mode", choices=MODES + ("both",), default="normal")
    parser.add_argument("--suite", choices=tuple(SUITES), default="2.0", help="which testsuite (default 2.0)")
    parser.add_argument("--messages", action="store_true", help="also list message mismatches")
    args = parser.parse_args(argv)
    s = suite(args.suite)
    reason = s.missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    if args.all == bool(args.scripts):
        parser.error("give FILE[:LINE] arguments or --all")
    modes = MODES if args.mode == "both" else (args.mode,)
    targets = [(n, None) for n in s.script_names()] if args.all else [_resolve_script(a, s) for a in args.scripts]

    reports = []
    features: collections.Counter[str] = collections.Counter()
    for mode in modes:
        for script, line in targets:
            report = run_script(script, mode, line, s.name)
            reports.append(report)
            if mode == modes[0]:
                features.update(skipped_features(report))
            if args.all:
                c = report.counts()
                n = collections.Counter(status for (_, status) in c.elements())
                level = f"{s.level(script) or '':<13}" if s.name != "2.0" else ""
                print(
                    f"{mode:<7} {script + '.wast':<34} {level}pass {n[PASS]:>6}  fail {n[FAIL]:>5}  "
                    f"skip {n[SKIP]:>5}  messages {len(report.message_mismatches):>4}  {report.seconds:6.2f}s"
                    + (f"  fiber runs {report.slices.runs:>7} for {report.slices.calls:>5} calls" if mode == "sliced" else "")
                )
            for r in report.results if line is not None else report.failures:
                print(f"[{mode}] {r}")
            if args.messages or line is not None:
                for r in report.message_mismatches:
                    if r.status == PASS:
                        print(f"[{mode}] {r.where}: message mismatch: {r.message_mismatch}")
            if line is not None:
                for command in load_commands(script, s.name):
                    if command["line"] == line:
                        print(json.dumps(command))
    for mode in modes:
        print(f"\n{mode} mode:")
        print(format_totals(totals(r for r in reports if r.mode == mode)))
    if features:
        print("\nskipped for features not supported yet: " + ", ".join(f"{f} {n:,}" for f, n in features.most_common()))
    return 1 if any(r.failures for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())

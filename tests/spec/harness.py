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
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR_ENV = "ASYNCWASM_SPEC_DIR"

MODES = ("normal", "sliced")
#: Fuel per run in sliced mode (a run always gets at least the pending charge).
SLICE_FUEL = 3

TEXT_FORMAT_REASON = "text format (asyncwasm reads the binary format only)"

#: Known gaps, as data: "<file>.wast" or "<file>.wast:<line>" -> reason.
#: Keep it empty unless a test truly cannot apply to asyncwasm.
SKIPS: dict[str, str] = {}

#: Command kinds in the order reports list them.
COMMAND_KINDS = (
    "module",
    "register",
    "action",
    "assert_return",
    "assert_trap",
    "assert_exhaustion",
    "assert_invalid",
    "assert_malformed",
    "assert_unlinkable",
    "assert_uninstantiable",
)

PASS, FAIL, SKIP = "pass", "fail", "skip"


# -- locating the suite --------------------------------------------------------


def spec_dir() -> Path:
    """The suite's root: $ASYNCWASM_SPEC_DIR, else ../shared/wasm-spec."""
    override = os.environ.get(SPEC_DIR_ENV)
    return Path(override) if override else REPO_ROOT.parent / "shared" / "wasm-spec"


def json_dir() -> Path:
    return spec_dir() / "json"


def missing_reason() -> Optional[str]:
    """Why the suite cannot run (naming the path), or None when it can."""
    if json_dir().is_dir():
        return None
    return f"spec testsuite not found at {json_dir()} (set {SPEC_DIR_ENV} to its wasm-spec folder)"


def script_names() -> list[str]:
    """Every script's name (``i32``, ``simd_lane``, ...), sorted; [] without the suite."""
    if missing_reason():
        return []
    return sorted(p.stem for p in json_dir().glob("*.json"))


def load_commands(script: str) -> list[dict[str, Any]]:
    with open(json_dir() / f"{script}.json", encoding="utf-8") as f:
        return json.load(f)["commands"]


def valid_module_paths() -> list[Path]:
    """The .wasm file of every ``module`` command of every script: modules
    the suite says are valid (used by the robustness tests)."""
    paths = []
    for script in script_names():
        paths += [json_dir() / c["filename"] for c in load_commands(script) if c["type"] == "module"]
    return paths


def skip_reason(script: str, line: Optional[int] = None) -> Optional[str]:
    reason = SKIPS.get(f"{script}.wast")
    if reason is None and line is not None:
        reason = SKIPS.get(f"{script}.wast:{line}")
    return reason


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
    return bits == int(expected)


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
            return sum(int(lane) << (i * width) for i, lane in enumerate(text))
        if kind in ("funcref", "externref"):
            if text == "null":
                return None
            if kind == "externref":
                return self.hostref(int(text))
            raise HarnessError(f"funcref argument {text!r} cannot be expressed")
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
            return None if got == int(text) else f"expected {format_raw(kind, int(text))}, got {format_raw(kind, got)}"
        if kind == "v128":
            if not isinstance(got, int) or not 0 <= got < 1 << 128:
                return f"expected v128 bits, got {got!r}"
            lane_type = expected["lane_type"]
            width = _LANE_BITS[lane_type]
            lanes = [(got >> (i * width)) & ((1 << width) - 1) for i in range(128 // width)]
            if len(text) == len(lanes) and all(_lane_matches(e, b, lane_type) for e, b in zip(text, lanes)):
                return None
            return f"expected v128 {lane_type} {text}, got {lanes}"
        if kind in ("funcref", "externref"):
            return self._ref_mismatch(kind, text, got)
        return f"unknown expected type {kind!r}"

    def _ref_mismatch(self, kind: str, text: Optional[str], got: Any) -> Optional[str]:
        if text == "null":
            return None if got is None else f"expected {kind} null, got {got!r}"
        if got is None:
            return f"expected a non-null {kind}, got null"
        if kind == "funcref":
            from asyncwasm import Func

            return None if isinstance(got, Func) else f"expected a Func, got {got!r}"
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
        if outcome == Outcome.SUSPEND:
            raise HarnessError(f"unexpected suspension on {fiber.awaitable!r}")
        if outcome != Outcome.OUT_OF_FUEL:
            raise HarnessError(f"unknown run outcome {outcome!r}")
        # Each slice covers at least the charge that stopped the previous one,
        # so fuel_used must grow; two stalls in a row mean the fiber is stuck.
        stalled = stalled + 1 if fiber.fuel_used == used_before else 0
        if stalled >= 2:
            raise HarnessError(f"fiber made no progress (fuel_needed={fiber.fuel_needed})")


class ScriptRunner:
    """Runs one script's commands in order against a fresh store."""

    def __init__(self, script: str, mode: str = "normal") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.script = script
        self.mode = mode
        self.values = Values()
        self.linker = make_linker()
        self.current: Any = None  # the current Instance, or None after a failed module
        self.named: dict[str, Any] = {}
        self._modules: dict[str, Any] = {}
        self.slices = SliceStats()

    # -- helpers --

    def _module(self, filename: str) -> Any:
        from asyncwasm import Module

        module = self._modules.get(filename)
        if module is None:
            module = self._modules[filename] = Module.from_file(json_dir() / filename)
        return module

    def _instance(self, name: Optional[str]) -> Any:
        if name is None:
            if self.current is None:
                raise HarnessError("no current module (the last module command failed)")
            return self.current
        if name not in self.named:
            raise HarnessError(f"no module named {name}")
        return self.named[name]

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
        for command in load_commands(self.script):
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
        reason = skip_reason(self.script, line)
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
        return CommandResult(self.script, line, kind, status, detail, mismatch)

    def _cmd_module(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        self.current = None
        try:
            instance = self.linker.instantiate(self._module(command["filename"]))
        except Exception as e:  # noqa: BLE001 - any failure of a valid module is a test failure
            return FAIL, f"{command['filename']}: {_describe(e)}", None
        self.current = instance
        if "name" in command:
            self.named[command["name"]] = instance
        return PASS, "", None

    def _cmd_register(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        instance = self._instance(command.get("name"))
        self.linker.define_instance(command["as"], instance)
        return PASS, "", None

    def _cmd_action(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        try:
            self.act(command["action"])
        except HarnessError:
            raise
        except Exception as e:  # noqa: BLE001
            return FAIL, f"{_action_text(command)} raised {_describe(e)}", None
        return PASS, "", None

    def _cmd_assert_return(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        try:
            got = self.act(command["action"])
        except HarnessError:
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
        except HarnessError:
            raise
        except Trap as e:
            return PASS, "", None if e.kind.startswith(text) else f"expected {text!r}, got {e.kind!r}"
        except Exception as e:  # noqa: BLE001
            return FAIL, f"{_action_text(command)}: expected trap {text!r}, raised {_describe(e)}", None
        return FAIL, f"{_action_text(command)}: expected trap {text!r}, returned {got!r}", None

    _cmd_assert_trap = _expect_trap
    _cmd_assert_exhaustion = _expect_trap

    def _expect_compile_error(self, command: dict[str, Any], expected_class: type) -> tuple[str, str, Optional[str]]:
        from asyncwasm import ModuleError

        text = command["text"]
        try:
            self._module(command["filename"])
        except ModuleError as e:
            if not isinstance(e, expected_class):
                return FAIL, f"expected {expected_class.__name__} {text!r}, got {_describe(e)}", None
            return PASS, "", None if e.rule.startswith(text) else f"expected {text!r}, got {e.rule!r}"
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
            module = self._module(command["filename"])
        except Exception as e:  # noqa: BLE001
            return FAIL, f"the module must compile, but: {_describe(e)}", None
        try:
            self.linker.instantiate(module)
        except expected_class as e:
            message = getattr(e, "kind", None) or str(e)
            return PASS, "", None if message.startswith(text) else f"expected {text!r}, got {message!r}"
        except Exception as e:  # noqa: BLE001
            return FAIL, f"expected {expected_class.__name__} {text!r}, raised {_describe(e)}", None
        return FAIL, f"expected {expected_class.__name__} {text!r}, but instantiation succeeded", None

    def _cmd_assert_unlinkable(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        from asyncwasm import LinkError

        return self._expect_instantiation_error(command, LinkError)

    def _cmd_assert_uninstantiable(self, command: dict[str, Any]) -> tuple[str, str, Optional[str]]:
        from asyncwasm import Trap

        return self._expect_instantiation_error(command, Trap)


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


def run_script(script: str, mode: str = "normal", only_line: Optional[int] = None) -> ScriptReport:
    """Run one script, or report every command skipped when it is skipped as a whole."""
    reason = skip_reason(script)
    if reason is not None:
        report = ScriptReport(script, mode)
        report.results = [
            CommandResult(script, c["line"], c["type"], SKIP, reason)
            for c in load_commands(script)
            if only_line is None or c["line"] == only_line
        ]
        return report
    return ScriptRunner(script, mode).run(only_line)


def _status_column(result: CommandResult) -> str:
    if result.status != SKIP:
        return result.status
    if result.detail == TEXT_FORMAT_REASON:
        return "skip text"
    return "skip other"


TOTAL_COLUMNS = (PASS, FAIL, "skip text", "skip other", "msg mismatch")


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


def _resolve_script(arg: str) -> tuple[str, Optional[int]]:
    """``i32``, ``i32.wast``, ``i32.json``, ``path/i32.wast`` with optional ``:LINE``."""
    name, line = arg, None
    head, sep, tail = arg.rpartition(":")
    if sep and tail.isdigit():
        name, line = head, int(tail)
    stem = Path(name).name
    for suffix in (".wast", ".json"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    if not (json_dir() / f"{stem}.json").exists():
        raise SystemExit(f"no script {stem!r} in {json_dir()}")
    return stem, line


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.spec.harness", description=__doc__.split("\n\n")[0])
    parser.add_argument("scripts", nargs="*", metavar="FILE[:LINE]", help="script name, e.g. i32 or i32.wast:118")
    parser.add_argument("--all", action="store_true", help="run every script; print counts per file and kind")
    parser.add_argument("--mode", choices=MODES + ("both",), default="normal")
    parser.add_argument("--messages", action="store_true", help="also list message mismatches")
    args = parser.parse_args(argv)
    reason = missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    if args.all == bool(args.scripts):
        parser.error("give FILE[:LINE] arguments or --all")
    modes = MODES if args.mode == "both" else (args.mode,)
    targets = [(s, None) for s in script_names()] if args.all else [_resolve_script(a) for a in args.scripts]

    reports = []
    for mode in modes:
        for script, line in targets:
            report = run_script(script, mode, line)
            reports.append(report)
            if args.all:
                c = report.counts()
                n = collections.Counter(status for (_, status) in c.elements())
                print(
                    f"{mode:<7} {script + '.wast':<34} pass {n[PASS]:>6}  fail {n[FAIL]:>5}  "
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
                for command in load_commands(script):
                    if command["line"] == line:
                        print(json.dumps(command))
    for mode in modes:
        print(f"\n{mode} mode:")
        print(format_totals(totals(r for r in reports if r.mode == mode)))
    return 1 if any(r.failures for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Fuzz campaigns: numbered cases from one seed, each checked, counts kept.

Rule: case ``k`` of seed ``s`` is a pure function of ``(s, k)``: the bytes
smith turns into a module, the arguments of every call, the mutations and
the slice sizes all come from ``random.Random(f"{s}:{k}:...")``. So any
case reproduces alone (``scripts/fuzz.py one --seed s --case k``), and a
campaign split across worker processes finds exactly what one process
would.

Two kinds of case:

- ``diff``: smith generates a valid module; asyncwasm must accept it, and
  the three engines of ``differential`` must produce equal traces.
- ``validate``: a smith module is damaged, by ``wasm-tools mutate`` (a
  structural edit, usually still valid), by a byte-level edit (flips,
  insertions, deletions, truncation, usually not), or rebuilt by smith with
  function bodies of raw bytes (mostly type errors deep in a body, the
  validator's hardest work); asyncwasm must accept it
  exactly when ``wasm-tools validate --features <FEATURES>`` does. The
  accepted ones then run differentially too.
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional

import trio

from . import differential, wasmtools

AGREE = "agree"
DISAGREE = "disagree"
INCOMPARABLE = "incomparable"
NO_MODULE = "no module"  # smith or mutate could not build one from this entropy


@dataclass
class CaseResult:
    seed: int
    case: int
    kind: str  # "diff" or "validate"
    status: str
    detail: str = ""
    module: Optional[bytes] = None
    accepted: Optional[bool] = None  # validate cases: the reference's verdict

    @property
    def name(self) -> str:
        return f"{self.kind} seed={self.seed} case={self.case}"


@dataclass
class Tally:
    """Counts of a campaign (what the long runs report)."""

    counts: collections.Counter = field(default_factory=collections.Counter)
    disagreements: list[CaseResult] = field(default_factory=list)
    incomparable: list[CaseResult] = field(default_factory=list)
    calls: int = 0
    traps: int = 0
    exceptions: int = 0  # calls (and instantiations) that ended in an uncaught exception
    slices: int = 0
    suspensions: int = 0

    def add(self, result: CaseResult) -> None:
        self.counts[(result.kind, result.status)] += 1
        if result.accepted is not None:
            self.counts[(result.kind, "valid" if result.accepted else "invalid")] += 1
        if result.status == DISAGREE:
            self.disagreements.append(result)
        elif result.status == INCOMPARABLE:
            self.incomparable.append(result)

    def merge(self, other: "Tally") -> None:
        self.counts.update(other.counts)
        self.disagreements += other.disagreements
        self.incomparable += other.incomparable
        self.calls += other.calls
        self.traps += other.traps
        self.exceptions += other.exceptions
        self.slices += other.slices
        self.suspensions += other.suspensions

    def modules(self, kind: str) -> int:
        return sum(n for (k, status), n in self.counts.items() if k == kind and status in (AGREE, DISAGREE, INCOMPARABLE))

    def summary(self) -> str:
        lines = []
        for kind in ("diff", "validate"):
            row = {status: n for (k, status), n in self.counts.items() if k == kind}
            if row:
                lines.append(f"{kind}: " + ", ".join(f"{status} {n}" for status, n in sorted(row.items())))
        lines.append(
            f"calls {self.calls} (traps {self.traps}, uncaught exceptions {self.exceptions}), "
            f"sliced runs {self.slices}, host suspensions {self.suspensions}"
        )
        return "\n".join(lines)


def entropy(seed: int, case: int) -> bytes:
    """The bytes smith turns into case ``case``'s module."""
    rng = random.Random(f"{seed}:{case}:smith")
    return rng.randbytes(rng.randrange(64, 4096))


def _subseed(seed: int, case: int, use: str) -> int:
    return random.Random(f"{seed}:{case}:{use}").getrandbits(32)


def shape(seed: int, case: int) -> tuple[int, dict[str, str]]:
    """Case ``case``'s smith budget and options: most cases small and
    trapping freely, some long-running (more fuel, longer bodies) or with
    traps avoided, so execution goes deep instead of stopping early."""
    rng = random.Random(f"{seed}:{case}:shape")
    fuel = rng.choice((100, 400, 400, 2000))
    options = {"--max-instructions": str(rng.choice((40, 120, 120, 400, 1000)))}
    if rng.random() < 0.3:
        options["--disallow-traps"] = "true"
    return fuel, options


@lru_cache(maxsize=4)
def generate(seed: int, case: int) -> Optional[bytes]:
    """Case ``case``'s module (both kinds of case start from it)."""
    fuel, options = shape(seed, case)
    return wasmtools.smith(entropy(seed, case), fuel=fuel, shape=options)


def damage(seed: int, case: int, data: bytes) -> tuple[str, Optional[bytes]]:
    """A near-valid copy of ``data`` and how it was made."""
    rng = random.Random(f"{seed}:{case}:damage")
    method = rng.random()
    if method < 0.35:
        mutate_seed = rng.getrandbits(32)
        return f"wasm-mutate --seed {mutate_seed}", wasmtools.mutate(data, mutate_seed)
    if method < 0.65:  # well-formed sections around function bodies made of raw bytes
        return "smith --allow-invalid-funcs", wasmtools.smith(entropy(seed, case), invalid_funcs=True)
    out = bytearray(data)
    edits = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if len(out) <= 9:
            break
        at = rng.randrange(8, len(out))
        op = rng.random()
        if op < 0.55:
            value = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, out[at] ^ (1 << rng.randrange(8)), rng.randrange(256)))
            out[at] = value
            edits.append(f"[{at}]={value:#04x}")
        elif op < 0.75:
            value = rng.randrange(256)
            out.insert(at, value)
            edits.append(f"insert {value:#04x} at {at}")
        elif op < 0.95:
            del out[at]
            edits.append(f"delete [{at}]")
        else:
            del out[at:]
            edits.append(f"truncate at {at}")
    return "bytes " + ", ".join(edits), bytes(out)


class Checker:
    """Runs cases against one set of engines (built once: wasmtime's engine
    is costly to make)."""

    def __init__(self, sliced: bool = True) -> None:
        self.reference = differential.WasmtimeEngine()
        self.sliced = sliced
        self.tally = Tally()

    async def differential(self, seed: int, case: int, data: bytes) -> tuple[str, str]:
        """(status, detail) of running ``data`` in every engine."""
        import asyncwasm

        try:
            exports = differential.AsyncwasmEngine().exports(data)
        except asyncwasm.ModuleError as exc:
            return DISAGREE, f"asyncwasm rejects a module wasm-tools validates: {exc}"
        funcs = [(name, tuple(str(p) for p in t.params)) for name, kind, t in exports if kind == "FuncType"]
        skip = frozenset(name for name, _, t in exports if differential.holds_exnref(t))
        plan = differential.make_plan(funcs, seed=_subseed(seed, case, "plan"), skip=skip,
                                      funcref_types=not differential.types_mention_exnref(data))
        reference = await self.reference.run(data, plan)
        cut = differential.incomparable_from(reference)
        stopped = ""
        if cut is not None:
            # Only what wasmtime finished is compared (step 0 is instantiate).
            # On stack exhaustion asyncwasm runs the step too (its depth limit
            # bounds the work) and the note says what it did there.
            out_of_stack = reference.steps[cut].outcome[1] == differential.EXHAUSTED
            stopped = f"wasmtime ran out of {'stack' if out_of_stack else 'fuel'} at {reference.steps[cut].what}"
            if cut == 0 and not out_of_stack:
                return INCOMPARABLE, stopped
            plan = differential.Plan(plan.calls[: cut if out_of_stack else cut - 1], plan.skip, plan.funcref_types)
        engines = [differential.AsyncwasmEngine()]
        if self.sliced:
            engines.append(differential.AsyncwasmEngine(sliced=True, seed=_subseed(seed, case, "slices")))
        compared = differential.Trace(reference.engine, reference.steps[:cut])
        for engine in engines:
            trace = await engine.run(data, plan)
            self.tally.slices += engine.slices
            self.tally.suspensions += engine.suspensions
            if cut is not None and len(trace.steps) > cut:
                stopped += f" ({engine.name}: {trace.steps[cut].outcome})"
                trace.steps = trace.steps[:cut]
            mismatch = differential.compare(compared, trace)
            if mismatch is not None:
                return DISAGREE, mismatch
        self.tally.calls += len(compared.steps) - 1
        self.tally.traps += sum(1 for s in compared.steps if s.outcome[0] == "trap")
        self.tally.exceptions += sum(1 for s in compared.steps if s.outcome == differential.UNCAUGHT)
        if cut is not None:
            return INCOMPARABLE, f"{stopped}; {cut} steps compared"
        return AGREE, ""

    async def diff_case(self, seed: int, case: int) -> CaseResult:
        data = generate(seed, case)
        if data is None:
            return CaseResult(seed, case, "diff", NO_MODULE)
        status, detail = await self.differential(seed, case, data)
        return CaseResult(seed, case, "diff", status, detail, data)

    async def validate_case(self, seed: int, case: int) -> CaseResult:
        import asyncwasm

        original = generate(seed, case)
        if original is None:
            return CaseResult(seed, case, "validate", NO_MODULE)
        how, data = damage(seed, case, original)
        if data is None:
            return CaseResult(seed, case, "validate", NO_MODULE, how)
        valid, message = wasmtools.validate(data)
        try:
            asyncwasm.Module(data)
            error = None
        except asyncwasm.ModuleError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - anything but ModuleError is a bug
            return CaseResult(seed, case, "validate", DISAGREE, f"{how}: asyncwasm raised {exc!r}", data, valid)
        if valid and error is not None:
            return CaseResult(seed, case, "validate", DISAGREE, f"{how}: wasm-tools accepts, asyncwasm rejects: {error}", data, valid)
        if not valid and error is None:
            return CaseResult(seed, case, "validate", DISAGREE, f"{how}: asyncwasm accepts, wasm-tools rejects: {message}", data, valid)
        if not valid:
            return CaseResult(seed, case, "validate", AGREE, how, data, valid)
        status, detail = await self.differential(seed, case, data)
        return CaseResult(seed, case, "validate", status, f"{how}: {detail}" if detail else how, data, valid)

    async def run(self, seed: int, cases: range, kinds: tuple[str, ...] = ("diff", "validate")) -> Tally:
        for case in cases:
            for kind in kinds:
                check = self.diff_case if kind == "diff" else self.validate_case
                self.tally.add(await check(seed, case))
        return self.tally


def run_campaign(seed: int, cases: range, kinds: tuple[str, ...] = ("diff", "validate"), sliced: bool = True) -> Tally:
    """Check ``cases`` of ``seed`` in this process (synchronous entry point)."""
    checker = Checker(sliced=sliced)
    return trio.run(checker.run, seed, cases, kinds)

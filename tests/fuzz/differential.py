"""Differential execution: one module, the same calls, asyncwasm against wasmtime.

Rule: each engine runs the same *plan* (instantiate, then every exported
function with deterministic arguments, twice round) and produces a *trace*:
one ``Step`` per action with its outcome (results as bit patterns, or a trap
kind) and the state every engine can see afterwards (each exported global's
bits, each exported memory's size and contents, each exported table's
elements, the host imports' state and the host calls made). Two traces must
be equal step for step; the first difference is the disagreement.

Three engines run every plan:

- ``wasmtime``: the reference (Cranelift), values passed through its C API's
  value union, so f32/f64 keep their exact bits (wasmtime-py's own calls
  would widen an f32 signalling NaN to a Python float and quiet it);
- ``asyncwasm``: ``Func.call_raw``, one uninterrupted C call per export;
- ``sliced``: asyncwasm under trio, each call a ``lowlevel.Fiber`` run a
  random 1..48 units of fuel per slice with a trio checkpoint in between,
  and every host import an ``async def`` that checkpoints, so each host call
  suspends the fiber and resumes it from the event loop.

Types come from asyncwasm: the plan carries every export's type as
asyncwasm's ``Module`` reports it (the module is valid, so both engines see
the same types), and the wasmtime side never asks wasmtime-py for a value
type: wasmtime-py aborts the process when it reflects on a type holding
v128. Where wasmtime must say a type (a funcref result's function type), it
is read through the C API, comparing each value type with prototypes
(``wasmtime_wasm_valtype_equal``), which knows v128. v128 values pass
through the value union's ``v128`` bytes (little-endian, as asyncwasm's
128-bit integers).

Adding a proposal (the Wasm 3.0 set): its feature name goes into
``wasmtools.FEATURES``; a new value type gets a row in ``VALUE_KINDS`` and a
case in ``argument``, ``WasmtimeEngine._to_raw`` and ``_from_raw``; a new
trap a row in both trap tables; new kinds of export (tags) are ignored by
``export_types`` until they have state worth comparing.

Strategy for what cannot be compared:

- Traps are compared by kind through ``TRAP_KINDS``. wasmtime reports an
  out-of-range ``call_indirect`` index as a table access out of bounds
  where the spec (and asyncwasm) says "undefined element": both map to
  ``table``.
- Stack exhaustion: asyncwasm allows 10,000 frames, wasmtime 512 KiB of
  native stack, so a deep recursion may exhaust one and not the other. The
  generator's loop and call budget (``SMITH_FUEL`` = 400 calls) keeps every
  call chain far below asyncwasm's limit, so asyncwasm exhausting is always a
  disagreement; wasmtime exhausting (large native frames) while asyncwasm
  completes makes the rest of that module *incomparable*: it is counted and
  reported, never silently passed.
- Termination: generated modules stop by themselves (smith's budget), but
  a mutated one may loop forever. wasmtime runs with a fuel budget
  (``WASMTIME_FUEL`` per module); where it runs out, the rest of the module
  is incomparable. asyncwasm gets ``ASYNCWASM_FUEL``, far more than any
  plan wasmtime finished needs (the two count fuel differently: about one
  unit per instruction each), so asyncwasm running out where wasmtime did
  not is a disagreement (an asyncwasm loop that should have ended).
- funcref values are compared by null-ness and function type (the two
  engines' function identities are not comparable; wasmtime's function
  types are read through its C API, which names exnref too); externref
  values by which host object they are.
- Exceptions (Wasm 3.0): an uncaught one is the outcome ``("exception",)``
  (wasmtime reports it as a trap without a code). exnref values are not
  compared: wasmtime-py aborts the process when it reflects on an exnref
  type, so every export whose type holds one (``Plan.skip``) is neither
  called nor read, in every engine. A funcref to a function whose type
  holds exnref is compared like any other (its type named through the C
  API, against an exnref prototype copied from a tiny module).
  nullexnref (exnref's bottom type) is compared everywhere: its only value
  is null, which wasmtime's value union shows without reflecting on a type
  (kind ``WASMTIME_EXNREF``, store id 0).
"""

from __future__ import annotations

import ctypes
import hashlib
import random
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import trio

M32 = (1 << 32) - 1
M64 = (1 << 64) - 1

#: Trap kinds: asyncwasm's spec message -> the class compared.
ASYNCWASM_TRAPS = {
    "unreachable": "unreachable",
    "integer divide by zero": "divide by zero",
    "integer overflow": "integer overflow",
    "invalid conversion to integer": "invalid conversion",
    "out of bounds memory access": "memory",
    "out of bounds table access": "table",
    "undefined element": "table",
    "uninitialized element": "null element",
    "indirect call type mismatch": "signature",
    "call stack exhausted": "exhausted",
    "null exception reference": "null reference",  # throw_ref of a null exnref
}

#: wasmtime's TrapCode name -> the class compared.
WASMTIME_TRAPS = {
    "UNREACHABLE": "unreachable",
    "INTEGER_DIVISION_BY_ZERO": "divide by zero",
    "INTEGER_OVERFLOW": "integer overflow",
    "BAD_CONVERSION_TO_INTEGER": "invalid conversion",
    "MEMORY_OUT_OF_BOUNDS": "memory",
    "TABLE_OUT_OF_BOUNDS": "table",
    "INDIRECT_CALL_TO_NULL": "null element",
    "BAD_SIGNATURE": "signature",
    "STACK_OVERFLOW": "exhausted",
    "NULL_REFERENCE": "null reference",
    "OUT_OF_FUEL": "out of fuel",
}

#: The value types the runner passes and compares (asyncwasm's names).
NUMERIC_KINDS = ("i32", "i64", "f32", "f64", "v128")
VALUE_KINDS = NUMERIC_KINDS + ("funcref", "externref", "nullexnref")

#: The C API's value kind of an exnref (wasmtime-py's bindings do not name it).
WASMTIME_EXNREF = 8

#: Fuel budgets per module (see "Termination" above).
WASMTIME_FUEL = 2_000_000
ASYNCWASM_FUEL = 100_000_000

UNCAUGHT = ("exception",)  # the outcome of a call whose exception nothing caught
HOST_TRAP = "host trap"
OUT_OF_FUEL = "out of fuel"
LINK_ERROR = "link error"  # an import the host does not offer, or of another type
EXHAUSTED = "exhausted"


def signed(bits: int, width: int) -> int:
    return bits - (1 << width) if bits >> (width - 1) & 1 else bits


def f32_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


def f64_bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


# -- the host side, identical for every engine ---------------------------------


class HostObject:
    """An externref argument: compared by which one it is."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"host#{self.n}"


class LinkFailed(Exception):
    """An import the host does not offer (wasmtime needs every extern up front)."""


class HostTrap(Exception):
    """Raised by the ``check`` import; each engine turns it into a trap."""


class Host:
    """The imports offered to generated modules (wasmtools.AVAILABLE_IMPORTS_WAT):
    pure functions of their arguments plus a log of every call, so a wrong
    argument passed to a host function shows in the trace."""

    G_I32 = 7
    G_I64 = -5
    G_F64 = 1.5
    TABLE = (4, 16)
    MEMORY = (1, 2)

    def __init__(self) -> None:
        self.log: list[tuple] = []

    def add(self, a: int, b: int) -> int:
        self.log.append(("add", a & M32, b & M32))
        return signed((a + b * 3) & M32, 32)

    def mix(self, a: int, b: float, c: float) -> int:
        self.log.append(("mix", a & M64, f32_bits(b), f64_bits(c)))
        value = (a * 0x9E3779B97F4A7C15) ^ (f32_bits(b) << 17) ^ f64_bits(c)
        return signed(value & M64, 64)

    def pair(self, a: int) -> tuple[int, int]:
        self.log.append(("pair", a & M32))
        return signed((a * 3) & M64, 64), signed((a ^ 0x55) & M32, 32)

    def check(self, a: int) -> None:
        self.log.append(("check", a & M32))
        if a & 0xFF == 0x2A:
            raise HostTrap(f"check({a})")

    def tick(self) -> None:
        self.log.append(("tick",))

    FUNCS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
        "add": (("i32", "i32"), ("i32",)),
        "mix": (("i64", "f32", "f64"), ("i64",)),
        "pair": (("i32",), ("i64", "i32")),
        "check": (("i32",), ()),
        "tick": ((), ()),
    }

    #: The imported globals' and table's value types (names as in ``_state``).
    KINDS = {"host.g_i32": "i32", "host.g_i64": "i64", "host.g_f64": "f64", "host.table": "funcref"}

    @staticmethod
    def memory_image() -> bytes:
        """Initial contents of the imported memory's first bytes."""
        return bytes((i * 7 + 3) & 0xFF for i in range(256))


# -- plans and traces ------------------------------------------------------------

_INTERESTING = {
    32: (0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE),
    64: (0, 1, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, M64, 0xFFFFFFFF, 0x100000000),
}
_FLOATS = {
    32: (0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x4F000000, 0xCF000000, 0x00000001),
    64: (0, 0x8000000000000000, 0x3FF0000000000000, 0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000, 0x43E0000000000000, 1),
}


def _v128_argument(rng: random.Random) -> int:
    """Lanes of one shape, each an edge value (or all random bits)."""
    roll = rng.random()
    if roll < 0.25:
        return rng.getrandbits(128)
    width, pool = rng.choice(((8, (0, 1, 0x7F, 0x80, 0xFF)), (16, (0, 1, 0x7FFF, 0x8000, 0xFFFF)), (32, _INTERESTING[32]),
                              (64, _INTERESTING[64]), (32, _FLOATS[32]), (64, _FLOATS[64])))
    lanes = [rng.choice(pool) if rng.random() < 0.8 else rng.getrandbits(width) for _ in range(128 // width)]
    return sum(lane << (i * width) for i, lane in enumerate(lanes))


def argument(rng: random.Random, kind: str) -> Any:
    """A deterministic argument: an edge value or a random bit pattern."""
    if kind == "v128":
        return _v128_argument(rng)
    if kind in ("i32", "i64", "f32", "f64"):
        width = int(kind[1:])
        pool = _FLOATS[width] if kind[0] == "f" else _INTERESTING[width]
        roll = rng.random()
        if roll < 0.5:
            return rng.choice(pool)
        if roll < 0.7:
            return rng.randrange(0, 0x20000)  # near memory addresses and table indexes
        return rng.getrandbits(width)
    if kind == "externref":
        return rng.choice((None, 1, 2))  # host object number, or null
    if kind in ("funcref", "nullexnref"):
        return None
    raise ValueError(f"unexpected parameter type {kind}")


@dataclass(frozen=True)
class Call:
    export: str
    args: tuple  # raw: bit patterns, None, or an externref host object number


#: An export's type as the runner needs it: ("func", params, results),
#: ("global", content), ("table", element) or ("memory",), types named as
#: asyncwasm names them.
ExportType = tuple


def export_types(data: bytes) -> dict[str, ExportType]:
    """Every export of ``data`` and its type, from asyncwasm's ``Module``
    (raises ``asyncwasm.ModuleError`` when asyncwasm rejects the module)."""
    import asyncwasm as aw

    types: dict[str, ExportType] = {}
    for export in aw.Module(data).exports:
        t = export.type
        if isinstance(t, aw.FuncType):
            types[export.name] = ("func", tuple(str(p) for p in t.params), tuple(str(r) for r in t.results))
        elif isinstance(t, aw.GlobalType):
            types[export.name] = ("global", str(t.content))
        elif isinstance(t, aw.TableType):
            types[export.name] = ("table", str(t.element))
        elif isinstance(t, aw.MemoryType):
            types[export.name] = ("memory",)
    return types


@dataclass(frozen=True)
class Plan:
    exports: dict[str, ExportType]  # every export's type, in export order, but those in skip
    calls: tuple[Call, ...]
    skip: frozenset[str] = frozenset()  # exports never called or read (exnref types)

    def func(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(params, results) of the exported function ``name``."""
        _, params, results = self.exports[name]
        return params, results

    def prefix(self, n: int) -> "Plan":
        """The same plan with only its first ``n`` calls."""
        return Plan(self.exports, self.calls[:n], self.skip)


def make_plan(exports: dict[str, ExportType], seed: int, rounds: int = 2) -> Plan:
    """Every exported function but those in ``Plan.skip``, in export order, ``rounds`` times."""
    rng = random.Random(seed)
    skip = frozenset(name for name, t in exports.items() if holds_exnref(t))
    exports = {name: t for name, t in exports.items() if name not in skip}
    funcs = [(name, t[1]) for name, t in exports.items() if t[0] == "func"]
    calls = tuple(Call(name, tuple(argument(rng, p) for p in params)) for _ in range(rounds) for name, params in funcs)
    return Plan(exports, calls, skip)


#: The exception reference types whose values are not compared (see Plan.skip):
#: every one but nullexnref, whose only value is null.
EXN_KINDS = ("exnref", "(ref exn)", "(ref noexn)")


def holds_exnref(t: ExportType) -> bool:
    """Whether an export's type mentions one of EXN_KINDS (see Plan.skip)."""
    return any(part in EXN_KINDS or (isinstance(part, tuple) and set(part) & set(EXN_KINDS)) for part in t)


@dataclass(frozen=True)
class Step:
    what: str  # "instantiate" or "call NAME(args)"
    outcome: tuple  # ("ok", values) or ("trap", kind)
    state: tuple = ()

    def __str__(self) -> str:
        return f"{self.what} -> {self.outcome}"


@dataclass
class Trace:
    engine: str
    steps: list[Step] = field(default_factory=list)


class Contents(bytes):
    """A memory's bytes, shown in a disagreement by a digest, not in full."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes, blake2b {hashlib.blake2b(self, digest_size=8).hexdigest()}>"


def _first_difference(a: bytes, b: bytes) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"first difference at byte {at:#x}: {a[at:at + 8].hex()} vs {b[at:at + 8].hex()}"


def compare(reference: Trace, other: Trace) -> Optional[str]:
    """None when the traces agree, else the first difference, described."""
    for i, (a, b) in enumerate(zip(reference.steps, other.steps)):
        if a.what != b.what:
            return f"step {i}: plans differ: {a.what} vs {b.what}"
        if a.outcome != b.outcome:
            return f"step {i} {a.what}: {reference.engine} {a.outcome} but {other.engine} {b.outcome}"
        if a.state != b.state:
            diffs = [_describe(x, y) for x, y in zip(a.state, b.state) if x != y]
            if len(a.state) != len(b.state):
                diffs.append(f"{len(a.state)} vs {len(b.state)} state entries")
            return f"step {i} {a.what} ({a.outcome[0]}): state differs ({reference.engine} vs {other.engine}): " + "; ".join(diffs)
    if len(reference.steps) != len(other.steps):
        return f"{reference.engine} has {len(reference.steps)} steps, {other.engine} {len(other.steps)}"
    return None


def _describe(x: tuple, y: tuple) -> str:
    text = f"{x[0]}: {x[1:]} vs {y[1:]}"
    if isinstance(x[-1], Contents) and isinstance(y[-1], Contents):
        text += " " + _first_difference(x[-1], y[-1])
    return text


def incomparable_from(trace: Trace) -> Optional[int]:
    """Index of the first step where ``trace`` (the reference) exhausted its
    stack or its fuel: from there on the module is incomparable (see the
    module docstring)."""
    for i, step in enumerate(trace.steps):
        if step.outcome in (("trap", EXHAUSTED), ("trap", OUT_OF_FUEL)):
            return i
    return None


# -- asyncwasm ---------------------------------------------------------------------


class _SlicedFuelExhausted(Exception):
    """The sliced driver's own fuel budget (Limits.fuel applies to asyncwasm's drivers)."""


def _aw_functype(functype: Any) -> tuple:
    return (tuple(str(t) for t in functype.params), tuple(str(t) for t in functype.results))


class AsyncwasmEngine:
    """asyncwasm, either with direct calls or (``sliced``) under trio in tiny slices."""

    def __init__(self, sliced: bool = False, seed: int = 0) -> None:
        self.name = "sliced" if sliced else "asyncwasm"
        self.sliced = sliced
        self.rng = random.Random(seed)
        self.slices = 0
        self.suspensions = 0
        self.skip: frozenset[str] = frozenset()  # the running plan's

    def _linker(self, host: Host) -> tuple[Any, dict[str, Any]]:
        import asyncwasm as aw

        types = {"i32": aw.I32, "i64": aw.I64, "f32": aw.F32, "f64": aw.F64}
        linker = aw.Linker()
        for name, (params, results) in Host.FUNCS.items():
            functype = aw.FuncType([types[p] for p in params], [types[r] for r in results])
            linker.define_func("host", name, functype, self._host_func(getattr(host, name)))
        imported = {
            "g_i32": aw.Global(aw.GlobalType(aw.I32), Host.G_I32),
            "g_i64": aw.Global(aw.GlobalType(aw.I64, mutable=True), Host.G_I64),
            "g_f64": aw.Global(aw.GlobalType(aw.F64, mutable=True), Host.G_F64),
            "table": aw.Table(aw.TableType(aw.FUNCREF, *Host.TABLE)),
            "memory": aw.Memory(aw.MemoryType(*Host.MEMORY)),
        }
        imported["memory"].write(0, Host.memory_image())
        for name, extern in imported.items():
            linker.define("host", name, extern)
        return linker, imported

    def _host_func(self, method: Callable[..., Any]) -> Callable[..., Any]:
        import asyncwasm

        def call(*args: Any) -> Any:
            try:
                return method(*args)
            except HostTrap as exc:
                raise asyncwasm.Trap(HOST_TRAP) from exc

        if not self.sliced:
            return call

        async def call_async(*args: Any) -> Any:
            await trio.lowlevel.checkpoint()
            self.suspensions += 1
            return call(*args)

        return call_async

    async def run(self, data: bytes, plan: Plan) -> Trace:
        import asyncwasm

        trace = Trace(self.name)
        self.skip = plan.skip
        host = Host()
        linker, imported = self._linker(host)
        module = asyncwasm.Module(data)
        limits = asyncwasm.Limits(fuel=ASYNCWASM_FUEL, yield_interval=1e-6)
        self.fuel_left = ASYNCWASM_FUEL
        instance = None
        try:
            if self.sliced:
                instance = await linker.instantiate_async(module, limits=limits)
            else:
                instance = linker.instantiate(module, limits=limits)
            outcome: tuple = ("ok", ())
        except asyncwasm.Trap as exc:
            outcome = ("trap", self._trap_kind(exc))
        except asyncwasm.WasmException:
            outcome = UNCAUGHT
        except asyncwasm.LinkError:
            outcome = (LINK_ERROR,)
        trace.steps.append(Step("instantiate", outcome, self._state(instance, imported, host)))
        if instance is None:
            return trace
        externrefs = {1: HostObject(1), 2: HostObject(2)}
        for call in plan.calls:
            func = instance.exports[call.export]
            params, kinds = plan.func(call.export)
            args = tuple(externrefs.get(a) if p == "externref" else a for p, a in zip(params, call.args))
            try:
                results = await self._call(func, args)
                outcome = ("ok", tuple(self._value(kind, v) for kind, v in zip(kinds, results)))
            except (asyncwasm.Trap, _SlicedFuelExhausted) as exc:
                outcome = ("trap", self._trap_kind(exc))
            except asyncwasm.WasmException:
                outcome = UNCAUGHT
            trace.steps.append(
                Step(f"call {call.export!r}{call.args}", outcome, self._state(instance, imported, host))
            )
        return trace

    async def _call(self, func: Any, args: tuple) -> tuple:
        if not self.sliced:
            return tuple(func.call_raw(*args))
        from asyncwasm.lowlevel import Fiber

        fiber = Fiber(func, args, raw=True)
        try:
            return await self._drive(fiber)
        finally:
            self.fuel_left -= fiber.fuel_used

    async def _drive(self, fiber: Any) -> tuple:
        from asyncwasm.lowlevel import Outcome

        while True:
            self.slices += 1
            fuel = max(self.rng.randint(1, 48), fiber.fuel_needed)
            if fiber.fuel_used + fuel > self.fuel_left:
                raise _SlicedFuelExhausted(OUT_OF_FUEL)
            outcome = fiber.run(fuel)
            if outcome == Outcome.DONE:
                return tuple(fiber.results)
            if outcome == Outcome.TRAP:
                raise fiber.trap()
            if outcome == Outcome.EXCEPTION:
                raise fiber.exception()
            if outcome == Outcome.SUSPEND:
                try:
                    value = await fiber.awaitable
                except BaseException as exc:  # noqa: BLE001 - handed to the guest like the drivers do
                    fiber.throw(exc)
                else:
                    fiber.resume(value)
            elif outcome == Outcome.OUT_OF_FUEL:
                await trio.lowlevel.checkpoint()
            else:
                raise RuntimeError(f"unexpected fiber outcome {outcome!r}")

    @staticmethod
    def _trap_kind(exc: Exception) -> str:
        import asyncwasm

        if isinstance(exc, (asyncwasm.FuelExhausted, _SlicedFuelExhausted)):
            return OUT_OF_FUEL
        kind = getattr(exc, "kind", str(exc))
        if kind == HOST_TRAP:
            return HOST_TRAP
        return ASYNCWASM_TRAPS.get(kind, f"unknown asyncwasm trap {kind!r}")

    @staticmethod
    def _value(kind: str, value: Any) -> tuple:
        if kind in NUMERIC_KINDS:
            return (kind, value)
        if kind == "externref":
            return (kind, None if value is None else getattr(value, "n", repr(value)))
        if kind == "funcref":
            return (kind, None if value is None else _aw_functype(value.type))
        if kind == "nullexnref":
            return (kind, None if value is None else f"non-null {value!r}")
        return (kind, repr(value))

    def _state(self, instance: Any, imported: dict[str, Any], host: Host) -> tuple:
        import asyncwasm as aw

        externs = [(k, v) for k, v in instance.exports.items() if k not in self.skip] if instance is not None else []
        externs += [(f"host.{k}", v) for k, v in imported.items()]
        state: list[tuple] = []
        for name, extern in externs:
            if isinstance(extern, aw.Global):
                state.append((name, self._value(str(extern.type.content), extern.raw)))
            elif isinstance(extern, aw.Memory):
                state.append((name, extern.size, Contents(extern.read(0, extern.data_len))))
            elif isinstance(extern, aw.Table):
                kind = str(extern.type.element)
                state.append((name, extern.size, tuple(self._value(kind, extern.get(i)) for i in range(extern.size))))
        state.append(("host calls", tuple(host.log)))
        return tuple(state)


# -- wasmtime ------------------------------------------------------------------------


def _thrown(exc: BaseException) -> bool:
    """wasmtime's error (a Trap from a call, a WasmtimeError from
    instantiation or the C API) for an exception nothing caught."""
    return "thrown Wasm exception" in str(exc)


class WasmtimeEngine:
    """The reference engine, through wasmtime-py and its C API value union."""

    name = "wasmtime"

    def __init__(self) -> None:
        import wasmtime

        self.wt = wasmtime
        config = wasmtime.Config()
        config.cranelift_opt_level = "none"  # compile time dominates; semantics do not change
        config.consume_fuel = True
        config.wasm_exceptions = True
        config.wasm_tail_call = True
        config.wasm_multi_memory = True
        config.wasm_memory64 = True
        self.engine = wasmtime.Engine(config)
        ffi = wasmtime._ffi
        # Owned prototypes for reading value types through the C API (see
        # the module docstring): never freed, one set per engine.
        self.prototypes = [
            (ffi.wasm_valtype_new(ffi.WASM_I32), "i32"), (ffi.wasm_valtype_new(ffi.WASM_I64), "i64"),
            (ffi.wasm_valtype_new(ffi.WASM_F32), "f32"), (ffi.wasm_valtype_new(ffi.WASM_F64), "f64"),
            (ffi.wasmtime_wasm_valtype_v128(), "v128"),
            (ffi.wasm_valtype_new(ffi.WASM_FUNCREF), "funcref"), (ffi.wasm_valtype_new(ffi.WASM_ANYREF), "externref"),
            *((self._exnref_prototype(name), name) for name in EXN_KINDS + ("nullexnref",)),
        ]

    def _exnref_prototype(self, name: str) -> Any:
        """An owned ``wasm_valtype_t *`` for an exception reference type: the wasm C
        API has no constructor for them, so it is copied from a function type
        that holds one (the parameter of a tiny module's export)."""
        wt, ffi = self.wt, self.wt._ffi
        store = wt.Store(self.engine)
        module = wt.Module(self.engine, f'(module (func (export "p") (param {name})))')
        func = wt.Instance(store, module, []).exports(store)["p"]
        functype = ffi.wasmtime_func_type(store._context(), ctypes.byref(func._func))
        try:
            return ffi.wasm_valtype_copy(ffi.wasm_functype_params(functype).contents.data[0])
        finally:
            ffi.wasm_functype_delete(functype)

    def kind(self, valtype: Any) -> str:
        """asyncwasm's name of a ``wasm_valtype_t *`` (never reflected on by wasmtime-py)."""
        for prototype, name in self.prototypes:
            if self.wt._ffi.wasmtime_wasm_valtype_equal(valtype, prototype):
                return name
        raise ValueError("unexpected value type")

    def functype(self, store: Any, func: Any) -> tuple:
        """(params, results) of a wasmtime ``Func``, read through the C API."""
        ffi = self.wt._ffi
        functype = ffi.wasmtime_func_type(store._context(), ctypes.byref(func._func))
        try:
            vecs = (ffi.wasm_functype_params(functype).contents, ffi.wasm_functype_results(functype).contents)
            return tuple(tuple(self.kind(vec.data[i]) for i in range(vec.size)) for vec in vecs)
        finally:
            ffi.wasm_functype_delete(functype)

    def _linker_imports(self, store: Any, module: Any, host: Host) -> tuple[list[Any], dict[str, Any]]:
        wt = self.wt
        vt = {"i32": wt.ValType.i32(), "i64": wt.ValType.i64(), "f32": wt.ValType.f32(), "f64": wt.ValType.f64()}
        imported: dict[str, Any] = {
            "g_i32": wt.Global(store, wt.GlobalType(vt["i32"], False), wt.Val.i32(Host.G_I32)),
            "g_i64": wt.Global(store, wt.GlobalType(vt["i64"], True), wt.Val.i64(Host.G_I64)),
            "g_f64": wt.Global(store, wt.GlobalType(vt["f64"], True), wt.Val.f64(Host.G_F64)),
            "table": wt.Table(store, wt.TableType(wt.ValType.funcref(), wt.Limits(*Host.TABLE)), None),
            "memory": wt.Memory(store, wt.MemoryType(wt.Limits(*Host.MEMORY))),
        }
        imported["memory"].write(store, Host.memory_image(), 0)
        funcs = {}
        for name, (params, results) in Host.FUNCS.items():
            functype = wt.FuncType([vt[p] for p in params], [vt[r] for r in results])
            funcs[name] = wt.Func(store, functype, getattr(host, name))
        offered = {**funcs, **imported}
        externs = [offered.get(imp.name) if imp.module == "host" else None for imp in module.imports]
        return externs, imported

    async def run(self, data: bytes, plan: Plan) -> Trace:
        wt = self.wt
        trace = Trace(self.name)
        store = wt.Store(self.engine)
        store.set_fuel(WASMTIME_FUEL)
        module = wt.Module(self.engine, data)
        host = Host()
        externs, imported = self._linker_imports(store, module, host)
        instance = None
        try:
            if None in externs:
                raise LinkFailed("unknown import")
            instance = wt.Instance(store, module, externs)
            outcome: tuple = ("ok", ())
        except (wt.Trap, HostTrap) as exc:
            outcome = self._trap_outcome(exc)
        except (wt.WasmtimeError, LinkFailed) as exc:
            if _thrown(exc):  # from the start function
                outcome = UNCAUGHT
            elif "incompatible import type" not in str(exc) and not isinstance(exc, LinkFailed):
                raise
            else:
                outcome = (LINK_ERROR,)
        exports = {}
        if instance is not None:
            exports = {name: instance.exports(store)[name] for name in plan.exports}
        kinds = {**{name: t[1] for name, t in plan.exports.items() if t[0] in ("global", "table")}, **Host.KINDS}
        trace.steps.append(Step("instantiate", outcome, self._state(store, exports, imported, kinds, host)))
        if instance is None:
            return trace
        externrefs = {1: HostObject(1), 2: HostObject(2)}
        for call in plan.calls:
            func = exports[call.export]
            params, results = plan.func(call.export)
            args = tuple(externrefs.get(a) if p == "externref" else a for p, a in zip(params, call.args))
            try:
                values = self._call(store, func, params, results, args)
                outcome = ("ok", values)
            except (wt.Trap, HostTrap) as exc:
                outcome = self._trap_outcome(exc)
            except wt.WasmtimeError as exc:
                if not _thrown(exc):
                    raise
                outcome = UNCAUGHT
            trace.steps.append(Step(f"call {call.export!r}{call.args}", outcome, self._state(store, exports, imported, kinds, host)))
        return trace

    def _trap_outcome(self, exc: BaseException) -> tuple:
        if getattr(exc, "trap_code", None) is None and _thrown(exc):
            return UNCAUGHT
        return ("trap", self._trap_kind(exc))

    def _trap_kind(self, exc: BaseException) -> str:
        if isinstance(exc, HostTrap):
            return HOST_TRAP
        code = getattr(exc, "trap_code", None)
        name = code.name if code is not None else None
        return WASMTIME_TRAPS.get(name or "", f"unknown wasmtime trap {name}: {exc}")

    # Raw values through the C API's value union (see the module docstring).

    def _to_raw(self, store: Any, kind: str, value: Any) -> Any:
        ffi = self.wt._ffi
        raw = ffi.wasmtime_val_t()
        if kind in ("i32", "f32"):
            raw.kind = ffi.WASMTIME_I32.value if kind == "i32" else ffi.WASMTIME_F32.value
            raw.of.i32 = signed(value, 32)
        elif kind in ("i64", "f64"):
            raw.kind = ffi.WASMTIME_I64.value if kind == "i64" else ffi.WASMTIME_F64.value
            raw.of.i64 = signed(value, 64)
        elif kind == "v128":
            raw.kind = ffi.WASMTIME_V128.value
            raw.of.v128 = ffi.wasmtime_v128.from_buffer_copy(value.to_bytes(16, "little"))
        elif kind == "nullexnref":
            raw.kind = WASMTIME_EXNREF  # the union stays zero: the null exnref
        else:
            valtype = self.wt.ValType.externref() if kind == "externref" else self.wt.ValType.funcref()
            return self.wt.Val._convert_to_raw(store, valtype, value)
        return raw

    def _from_raw(self, store: Any, kind: str, raw: Any) -> tuple:
        if kind in ("i32", "f32"):
            return (kind, raw.of.i32 & M32)
        if kind in ("i64", "f64"):
            return (kind, raw.of.i64 & M64)
        if kind == "v128":
            return (kind, int.from_bytes(bytes(raw.of.v128), "little"))
        if kind == "nullexnref":
            null = raw.kind == WASMTIME_EXNREF and raw.of.exnref.store_id == 0
            return (kind, None if null else f"non-null (kind {raw.kind})")
        value = self.wt.Val._from_raw(store, raw).value
        return self._ref(store, kind, value)

    def _ref(self, store: Any, kind: str, value: Any) -> tuple:
        if value is None:
            return (kind, None)
        if kind == "externref":
            return (kind, getattr(value, "n", repr(value)))
        return (kind, self.functype(store, value))

    def _call(self, store: Any, func: Any, params: tuple, results: tuple, args: tuple) -> tuple:
        ffi = self.wt._ffi
        from wasmtime._func import enter_wasm

        params_raw = (ffi.wasmtime_val_t * len(params))()
        for i, (kind, value) in enumerate(zip(params, args)):
            params_raw[i] = self._to_raw(store, kind, value)
        results_raw = (ffi.wasmtime_val_t * len(results))()
        with enter_wasm(store) as trap:
            error = ffi.wasmtime_func_call(
                store._context(), ctypes.byref(func._func), params_raw, len(params), results_raw, len(results), trap
            )
            if error:
                raise self.wt.WasmtimeError._from_ptr(error)
        return tuple(self._from_raw(store, kind, results_raw[i]) for i, kind in enumerate(results))

    def _state(self, store: Any, exports: dict[str, Any], imported: dict[str, Any], kinds: dict[str, str], host: Host) -> tuple:
        """What asyncwasm's ``_state`` reports; ``kinds``: each global's and
        table's value type by name (from the plan: wasmtime-py is not asked)."""
        wt = self.wt
        ffi = wt._ffi
        state: list[tuple] = []
        externs = list(exports.items()) + [(f"host.{k}", v) for k, v in imported.items()]
        for name, extern in externs:
            if isinstance(extern, wt.Global):
                kind = kinds[name]
                raw = ffi.wasmtime_val_t()
                ffi.wasmtime_global_get(store._context(), ctypes.byref(extern._global), ctypes.byref(raw))
                state.append((name, self._from_raw(store, kind, raw)))
            elif isinstance(extern, wt.Memory):
                size = extern.data_len(store)
                data = ctypes.string_at(extern.data_ptr(store), size) if size else b""
                state.append((name, extern.size(store), Contents(data)))
            elif isinstance(extern, wt.Table):
                kind = kinds[name]
                size = extern.size(store)
                state.append((name, size, tuple(self._table_get(store, extern, kind, i) for i in range(size))))
        state.append(("host calls", tuple(host.log)))
        return tuple(state)

    def _table_get(self, store: Any, table: Any, kind: str, index: int) -> tuple:
        # Table.get returns a Val for null entries and None out of bounds.
        ffi = self.wt._ffi
        raw = ffi.wasmtime_val_t()
        if not ffi.wasmtime_table_get(store._context(), ctypes.byref(table._table), index, ctypes.byref(raw)):
            raise IndexError(index)
        return self._from_raw(store, kind, raw)

"""Calls and returns: frame records, the frame set-up and the return paths.

interp_control.inc pushes a frame per call (its record holds the caller's
return ip, code words and first slot: engine.h "Frames"), sets the callee's
locals and constant pool (one fixed block, or a run of copies, or memcpy:
interp.c init_frame) and returns through the record, or through
return_slow for the entry frame and for returns into another instance.
These tests run random call-heavy programs (direct, indirect and tail
calls, recursion, host calls, 0 to 2 results, 0 to 20 declared locals,
calls into another instance and back) against wasmtime, whole and stopped
and resumed in every fuel slice from 1 to 13 (the same results and the
same fuel); grow the value stack in the middle of deep recursion (the
frames' slot pointers move with it); and check the call depth limit of
fibers that reuse a pooled fiber with another limit.

    python -m pytest tests/c/test_calls.py -q
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncwasm  # noqa: E402
import asyncwasm._engine as E  # noqa: E402
from asyncwasm import FuncType, I32, Limits, Linker, Module  # noqa: E402
from asyncwasm.execution import Outcome  # noqa: E402
from tests.wat import wat  # noqa: E402

wasmtime = pytest.importorskip("wasmtime")

MASK = 0xFFFFFFFF
NFUNCS = 8


def _signed(x: int) -> int:
    x &= MASK
    return x - (1 << 32) if x >> 31 else x


def _host(x: int) -> int:
    return _signed(x * 3 + 1)


class _Func:
    def __init__(self, rng: random.Random, k: int):
        self.k = k
        self.nparams = rng.randrange(0, 4)  # besides $d, the depth budget
        self.nresults = rng.choice([0, 1, 1, 2])
        self.nlocals = rng.choice([0, 1, 2, 5, 7, 8, 9, 12, 17, 20])
        self.type = f"$t{self.nparams}_{self.nresults}"


def _types() -> str:
    return "\n".join(f"(type $t{p}_{r} (func (param {' '.join(['i32'] * (p + 1))})"
                     f" (result {' '.join(['i32'] * r)})))" for p in range(4) for r in range(3))


def _body(rng: random.Random, fn: _Func, funcs: list[_Func], callable_: list[int], host: bool) -> str:
    """fn's body: when the budget $d is spent, results made of its params and
    constants; else statements (arithmetic with constants, direct, indirect
    and host calls with $d - 1) and a return (by a tail call, sometimes)."""
    vars_ = [1 + i for i in range(fn.nparams)] + [1 + fn.nparams + i for i in range(fn.nlocals)]
    vars_ = vars_ or [0]

    def var() -> int:
        return rng.choice(vars_)

    def const() -> int:
        return rng.choice([0, 1, -1, 7, 1000, rng.getrandbits(31) - (1 << 30)])

    def results_from_vars() -> str:
        return " ".join(f"local.get {var()} i32.const {const()} i32.add" for _ in range(fn.nresults))

    def add_to_global() -> str:
        return f"global.get $g local.get {var()} i32.add i32.const {const()} i32.xor global.set $g"

    out = ["local.get 0 i32.const 0 i32.le_s if", results_from_vars(),
           add_to_global() if fn.nresults == 0 else "", "return end"]
    for _ in range(rng.randrange(1, 5)):
        kind = rng.random()
        if kind < 0.3 or not callable_:
            out.append(f"local.get {var()} i32.const {const()} i32.add local.set {rng.choice(vars_[1:] or [0])}"
                       if len(vars_) > 1 else f"local.get 0 i32.const {const()} i32.add drop")
            continue
        if kind < 0.4 and host:
            out.append(f"local.get {var()} call $host local.set {var()}" if fn.nparams + fn.nlocals
                       else "local.get 0 call $host drop")
            continue
        callee = funcs[rng.choice(callable_)]
        args = " ".join(f"local.get {var()}" if rng.random() < 0.7 else f"i32.const {const()}"
                        for _ in range(callee.nparams))
        call = (f"call $f{callee.k}" if kind < 0.75
                else f"i32.const {callee.k} call_indirect (type {callee.type})")
        keep = [f"local.set {var()}" if fn.nparams + fn.nlocals else "drop" for _ in range(callee.nresults)]
        out.append(f"local.get 0 i32.const 1 i32.sub {args} {call} {' '.join(keep)}")
    tails = [j for j in callable_ if funcs[j].nresults == fn.nresults]
    if tails and rng.random() < 0.5:
        callee = funcs[rng.choice(tails)]
        args = " ".join(f"local.get {var()}" for _ in range(callee.nparams))
        out.append(f"local.get 0 i32.const 1 i32.sub {args} return_call $f{callee.k}")
    else:
        if fn.nresults == 0:
            out.append(add_to_global())
        out.append(results_from_vars())
    return "\n  ".join(x for x in out if x)


def _module(seed: int, imported: int = 0, host: bool = True) -> str:
    """NFUNCS random functions $f0.. of which the first `imported` come from
    "lib" (another instance of _module(seed + 1000)); all of them in a
    table, in order; run(d, a, b) calls $f<last> and returns the sum of its
    results, the global's value and (with imports) the library's."""
    rng = random.Random(seed)
    funcs = [_Func(rng, k) for k in range(NFUNCS)]
    lib_rng = random.Random(seed + 1000)  # as _module(seed + 1000) makes them
    lib = [_Func(lib_rng, k) for k in range(NFUNCS)] if imported else []
    funcs[:imported] = lib[:imported]  # the library's functions, under the same names
    parts = ["(module", _types()]
    if host:
        parts.append('(import "env" "host" (func $host (param i32) (result i32)))')
    for k in range(imported):
        parts.append(f'(import "lib" "f{k}" (func $f{k} (type {funcs[k].type})))')
    if imported:
        parts.append('(import "lib" "g" (global $lib_g (mut i32)))')
    parts.append('(global $g (export "g") (mut i32) (i32.const 0))')
    for fn in funcs[imported:]:
        locals_ = f"(local {' '.join(['i32'] * fn.nlocals)})" if fn.nlocals else ""
        callable_ = list(range(NFUNCS))  # recursion and cycles are bounded by $d
        parts.append(f'(func $f{fn.k} (export "f{fn.k}") (type {fn.type}) {locals_}\n  '
                     f"{_body(rng, fn, funcs, callable_, host)})")
    parts.append(f"(table {NFUNCS} funcref) (elem (i32.const 0) {' '.join(f'$f{k}' for k in range(NFUNCS))})")
    last = funcs[-1]
    args = " ".join(f"local.get {1 + (i % 2)}" for i in range(last.nparams))
    total = " ".join(["i32.add"] * last.nresults)
    lib_g = "global.get $lib_g i32.add" if imported else ""
    parts.append(f'(func (export "run") (param i32 i32 i32) (result i32) local.get 0 {args} call $f{last.k}'
                 f" i32.const 0 {total} global.get $g i32.add {lib_g})")
    parts.append(")")
    return "\n".join(parts)


def _reference(seed: int, imported: int, args: tuple) -> int:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    i32 = wasmtime.ValType.i32()
    linker.define_func("env", "host", wasmtime.FuncType([i32], [i32]), _host)
    if imported:
        lib = linker.instantiate(store, wasmtime.Module(engine, _module(seed + 1000)))
        linker.define_instance(store, "lib", lib)
    inst = linker.instantiate(store, wasmtime.Module(engine, _module(seed, imported)))
    return inst.exports(store)["run"](store, *args) & MASK


def _instances(seed: int, imported: int, limits: Limits | None = None):
    linker = Linker()
    linker.define_func("env", "host", FuncType([I32], [I32]), _host)
    if imported:
        linker.define_instance("lib", linker.instantiate(Module(wat(_module(seed + 1000))), limits))
    return linker.instantiate(Module(wat(_module(seed, imported))), limits)


ARGS = [(4, 5, -9), (6, 123456, 7)]


@pytest.mark.parametrize("seed", range(12))
def test_random_calls_match_wasmtime(seed):
    for args in ARGS:
        run = _instances(seed, 0).exports["run"]
        assert run(*args) & MASK == _reference(seed, 0, args), (seed, args)


@pytest.mark.parametrize("seed", range(6))
def test_random_calls_into_another_instance_match_wasmtime(seed):
    """Its first functions are another instance's: calls into it (and tail
    calls) return through return_slow, which gives back the turn."""
    for args in ARGS:
        run = _instances(seed, 3).exports["run"]
        assert run(*args) & MASK == _reference(seed, 3, args), (seed, args)


@pytest.mark.parametrize("seed,imported", [(0, 0), (1, 0), (2, 3), (3, 0)])
def test_random_calls_stop_and_resume_in_any_fuel_slice(seed, imported):
    args = (4, 5, -9)
    expected = _reference(seed, imported, args)
    whole = E.Fiber(_instances(seed, imported).exports["run"], args)  # new instances: the globals start at 0
    assert whole.run(10**9) == Outcome.DONE
    assert whole.results[0] & MASK == expected
    for fuel in range(1, 14):
        fiber = E.Fiber(_instances(seed, imported).exports["run"], args)
        slice_fuel, stops = fuel, 0
        while (outcome := fiber.run(slice_fuel)) == Outcome.OUT_OF_FUEL:
            slice_fuel = max(fuel, fiber.fuel_needed)
            stops += 1
        assert outcome == Outcome.DONE, fuel
        assert stops > 0, fuel
        assert fiber.results[0] & MASK == expected, fuel
        assert fiber.fuel_used == whole.fuel_used, fuel


def test_a_tail_call_into_another_instance_returns_to_the_callers():
    """$t's frame becomes the library's $inc: its return goes back to f's
    instance (f then reads its own global, 100, not the library's, 5)."""
    lib = wat("""(module (global $g (export "g") (mut i32) (i32.const 5))
      (func (export "inc") (param i32) (result i32) local.get 0 global.get $g i32.add))""")
    app = wat("""(module (import "lib" "inc" (func $inc (param i32) (result i32)))
      (global $g (mut i32) (i32.const 100))
      (func $t (param i32) (result i32) local.get 0 i32.const 1 i32.add return_call $inc)
      (func (export "f") (param i32) (result i32) local.get 0 call $t global.get $g i32.add))""")
    linker = Linker()
    linker.define_instance("lib", linker.instantiate(Module(lib)))
    f = linker.instantiate(Module(app)).exports["f"]
    assert f(1) == 1 + 1 + 5 + 100
    for fuel in range(1, 6):
        fiber = E.Fiber(f, (1,))
        while fiber.run(max(fuel, fiber.fuel_needed)) == Outcome.OUT_OF_FUEL:
            pass
        assert fiber.results[0] == 107, fuel


# Deep recursion with a large frame: the value stack (1024 slots at first)
# grows, and moves, many times in the middle of the calls.
DEEP = wat("""(module
  (func $down (export "down") (param $n i32) (param $acc i32) (result i32)
    (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64)
    local.get $n i32.eqz if local.get $acc return end
    local.get $n i32.const 1 i32.sub
    local.get $acc i32.const 31 i32.mul local.get $n i32.add
    call $down
    local.get $n i32.xor))""")


def _deep_model(n: int, acc: int) -> int:
    xs = []
    while n:
        xs.append(n)
        acc = (acc * 31 + n) & MASK
        n -= 1
    for x in reversed(xs):
        acc ^= x
    return acc


def test_the_stack_moves_in_the_middle_of_deep_recursion():
    down = Linker().instantiate(Module(DEEP)).exports["down"]
    assert down(3000, 1) & MASK == _deep_model(3000, 1)
    fiber = E.Fiber(down, (2000, 7))
    while (outcome := fiber.run(max(97, fiber.fuel_needed))) == Outcome.OUT_OF_FUEL:
        pass
    assert outcome == Outcome.DONE
    assert fiber.results[0] & MASK == _deep_model(2000, 7)


# The same with a small frame, so that a fiber that ran it deep goes back to
# the pool (py_func.c keeps fibers of up to 2^16 slots).
SMALL = wat("""(module
  (func $down (export "down") (param $n i32) (param $acc i32) (result i32)
    local.get $n i32.eqz if local.get $acc return end
    local.get $n i32.const 1 i32.sub
    local.get $acc i32.const 31 i32.mul local.get $n i32.add
    call $down
    local.get $n i32.xor))""")


def test_a_pooled_fiber_keeps_each_instances_depth_limit():
    """Synchronous calls reuse pooled fibers, whose frame array a deep run
    grew: the depth check must still stop at the limit of the instance
    called next."""
    deep = Linker().instantiate(Module(SMALL), Limits(max_call_depth=5000)).exports["down"]
    shallow = Linker().instantiate(Module(SMALL), Limits(max_call_depth=40)).exports["down"]
    for _ in range(3):
        assert deep(4000, 1) & MASK == _deep_model(4000, 1)
        assert shallow(39, 1) & MASK == _deep_model(39, 1)  # 40 frames: $down 0..39
        with pytest.raises(asyncwasm.Trap, match="call stack exhausted") as info:
            shallow(40, 1)
        assert len(info.value.frames) == 40
        with pytest.raises(asyncwasm.Trap, match="call stack exhausted"):
            deep(5000, 1)


def test_a_trap_deep_in_calls_reports_its_offset_and_frames():
    data = wat("""(module
      (func $leaf (param i32) (result i32) (local i32 i32 i32)
        local.get 0 i32.const 0 i32.eq if unreachable end
        local.get 0 i32.const 1 i32.sub call $leaf)
      (func $mid (param i32) (result i32) local.get 0 i32.const 0 call_indirect (param i32) (result i32))
      (table 1 funcref) (elem (i32.const 0) $leaf)
      (func (export "f") (param i32) (result i32) local.get 0 call $mid))""")
    f = Linker().instantiate(Module(data)).exports["f"]
    with pytest.raises(asyncwasm.Trap, match="unreachable") as info:
        f(5)
    frames = info.value.frames
    assert len(frames) == 6 + 2  # $leaf 5..0, $mid, f
    assert frames[0].module_offset == data.index(bytes([0x04, 0x40, 0x00])) + 2  # the unreachable


async def test_a_return_from_another_instance_gives_its_turn_back():
    """f calls into the library and returns (return_slow gives back the
    library's turn), then waits in its own host call: meanwhile the library
    is free, so a synchronous call into it does not find it busy."""
    import trio

    lib = wat("""(module (global $g (mut i32) (i32.const 5))
      (func (export "get") (result i32) global.get $g))""")
    app = wat("""(module (import "lib" "get" (func $get (result i32)))
      (import "env" "wait" (func $wait))
      (func (export "f") (result i32) call $get call $wait))""")
    waiting, release = trio.Event(), trio.Event()

    async def wait() -> None:
        waiting.set()
        await release.wait()

    linker = Linker()
    library = linker.instantiate(Module(lib))
    linker.define_instance("lib", library)
    linker.define_func("env", "wait", FuncType([], []), wait)
    f = linker.instantiate(Module(app)).exports["f"]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(f.call_async)
        await waiting.wait()
        assert library.exports["get"]() == 5  # not "the instance is busy"
        release.set()


# A frame smaller than the init block (engine.h init_by_block): the block
# a call copies runs past the frame's end, and at the top of a full stack
# into the pad the fiber allocates past stack_end.
TINY = wat("""(module
  (func $down (export "down") (param $n i32) (result i32)
    local.get $n i32.eqz if i32.const 0 return end
    local.get $n i32.const 1 i32.sub call $down i32.const 1 i32.add))""")


def test_tiny_frames_fill_the_stack_to_its_last_slot(dump):
    """Each frame lies `base` slots above its caller's and is `size` slots
    long: the stack of max_stack_slots m holds (m - size) // base + 1 of
    them, and the call after the last traps. Under ASan a block copied
    past the allocation is a heap overflow."""
    text = dump(TINY, 0)
    size = int(text.split(" max")[0].rsplit(" ", 1)[1])
    base = int(text.split("CALL_DEFINED")[1].split()[1].lstrip("s"))
    assert size - 1 < 8  # smaller than the init block above its parameter
    down = Linker().instantiate(Module(TINY)).exports["down"]
    for slots in range(size, size + 6 * base):
        depth = (slots - size) // base + 1
        fiber = E.Fiber(down, (depth - 1,), max_stack_slots=slots)  # depth frames: $down depth-1..0
        assert fiber.run(10**6) == Outcome.DONE, slots
        assert fiber.results == (depth - 1,)
        fiber = E.Fiber(down, (depth,), max_stack_slots=slots)
        assert fiber.run(10**6) == Outcome.TRAP, slots
        trap = fiber.trap()
        assert "call stack exhausted" in str(trap)
        assert len(trap.frames) == depth, slots


# Frames counted by pointer (engine.h "Frames"): recursion to the depth
# limit through calls into another instance, host calls and an exception
# that unwinds every frame, then the same recursion again on the frames it
# left. The frame array (16 records at first) grows twice on the way down.
BOUNCE_LIB = wat("""(module (global $g (export "g") (mut i32) (i32.const 0))
  (func (export "step") (param i32) (result i32)
    global.get $g local.get 0 i32.add global.set $g
    local.get 0 i32.const 3 i32.mul))""")
BOUNCE = wat("""(module
  (import "lib" "step" (func $step (param i32) (result i32)))
  (import "env" "host" (func $host (param i32) (result i32)))
  (tag $bottom (param i32))
  (func $down (param $n i32) (param $acc i32) (param $throw i32) (result i32)
    local.get $n i32.eqz if
      local.get $throw if local.get $acc throw $bottom end
      local.get $acc return
    end
    local.get $n i32.const 1 i32.sub
    local.get $acc local.get $n i32.add call $step call $host
    local.get $throw
    call $down
    local.get $n i32.xor)
  (func (export "run") (param $n i32) (result i32) (local $bottom i32)
    block $caught (result i32)
      try_table (catch $bottom $caught)
        local.get $n i32.const 1 i32.const 1 call $down
        return
      end
      unreachable
    end
    local.set $bottom local.get $n local.get $bottom i32.const 0 call $down))""")


def _bounce_model(n: int) -> int:
    def down(n: int, acc: int, throw: bool) -> int:
        if n == 0:
            if throw:
                raise OverflowError(acc)
            return acc
        return (down(n - 1, _host(3 * (acc + n) & MASK) & MASK, throw) ^ n) & MASK

    try:
        return down(n, 1, True)
    except OverflowError as bottom:
        return down(n, bottom.args[0], False)


def _bounce_run(depth_limit: int):
    linker = Linker()
    linker.define_func("env", "host", FuncType([I32], [I32]), _host)
    linker.define_instance("lib", linker.instantiate(Module(BOUNCE_LIB)))
    run = linker.instantiate(Module(BOUNCE)).exports["run"]
    return lambda n: E.Fiber(run, (n,), max_call_depth=depth_limit)


@pytest.mark.parametrize("limit", [17, 40])
def test_recursion_to_the_depth_limit_through_instances_hosts_and_an_exception(limit):
    """run is frame 1, $down(n) frame 2 ... $down(1) frame n + 1, whose call
    into the library is frame n + 2: n = limit - 2 fits exactly, and
    n = limit - 1 traps at $down(1)'s call, limit frames deep. Stopped and
    resumed in every fuel slice, the same results, trap and fuel."""
    fiber = _bounce_run(limit)
    for n, fits in ((limit - 2, True), (limit - 1, False)):
        whole = fiber(n)
        outcome = whole.run(10**9)
        if fits:
            assert outcome == Outcome.DONE
            assert whole.results[0] & MASK == _bounce_model(n)
        else:
            assert outcome == Outcome.TRAP
            assert "call stack exhausted" in str(whole.trap())
            assert len(whole.trap().frames) == limit
        for fuel in range(1, 14):
            sliced = fiber(n)
            while (got := sliced.run(max(fuel, sliced.fuel_needed))) == Outcome.OUT_OF_FUEL:
                pass
            assert got == outcome, (n, fuel)
            assert sliced.fuel_used == whole.fuel_used, (n, fuel)
            if fits:
                assert sliced.results == whole.results, (n, fuel)
            else:
                assert len(sliced.trap().frames) == limit, (n, fuel)


# A frame with more slots to set than the init block: its calls take the
# slow path (engine.h call_reach), which sets the slots past the block.
# Each call reads its twelve declared locals (zeros at entry), then
# scribbles on them; the second call at the same base finds the first
# one's scribbles where its own locals go.
WIDE_LOCALS = " ".join(["i32"] * 12)
WIDE = wat(f"""(module
  (func $wide (export "wide") (param $n i32) (result i32) (local $s i32) (local {WIDE_LOCALS})
    {" ".join(f"local.get {k} i32.add" for k in range(2, 14)).replace("local.get 2 i32.add", "local.get 2", 1)}
    local.set $s
    {" ".join(f"local.get $n i32.const {k} i32.add local.set {k}" for k in range(2, 14))}
    local.get $n i32.eqz if local.get $s return end
    local.get $n i32.const 1 i32.sub call $wide
    local.get $n i32.const 1 i32.sub call $wide i32.add
    local.get $s i32.add))""")


def test_wide_frames_start_zeroed_at_the_stacks_edge(dump):
    """Every frame sees its declared locals zero (the result is the sum of
    what they held at entry); at every stack size between the frame's and
    a few frames more, the deepest recursion that fits runs and the next
    one traps at the depth the slots allow (the second call's frame lies a
    slot higher: its argument is above the first one's result)."""
    text = dump(WIDE, 0)
    size = int(text.split(" max")[0].rsplit(" ", 1)[1])
    base = max(int(call.split()[1].lstrip("s")) for call in text.split("CALL_DEFINED")[1:])  # the deeper call
    wide = Linker().instantiate(Module(WIDE)).exports["wide"]
    assert wide(6) == 0
    for slots in range(size, size + 4 * base):
        depth = (slots - size) // base + 1
        fiber = E.Fiber(wide, (depth - 1,), max_stack_slots=slots)
        assert fiber.run(10**6) == Outcome.DONE, slots
        assert fiber.results == (0,), slots
        fiber = E.Fiber(wide, (depth,), max_stack_slots=slots)
        assert fiber.run(10**6) == Outcome.TRAP, slots
        assert len(fiber.trap().frames) == depth, slots


def test_an_exception_from_another_instance_is_caught_at_the_call():
    """The library's frames return through return_slow (interp.c); the
    unwinding passes through them and must find, from the record of the
    frame f called, the call inside f's try_table. Before the throw, a
    call into the library returned normally."""
    lib = wat("""(module (tag $t (export "t") (param i32))
      (func $deeper (param i32) local.get 0 i32.eqz if local.get 0 throw $t end
        local.get 0 i32.const 1 i32.sub call $deeper)
      (func (export "get") (param i32) (result i32) local.get 0 i32.const 2 i32.mul)
      (func (export "throw") (param i32) local.get 0 call $deeper))""")
    app = wat("""(module (import "lib" "t" (tag $t (param i32)))
      (import "lib" "get" (func $get (param i32) (result i32)))
      (import "lib" "throw" (func $throw (param i32)))
      (func (export "f") (param i32) (result i32)
        block $caught (result i32)
          try_table (catch $t $caught)
            local.get 0 call $get drop
            local.get 0 call $throw
          end
          i32.const -1 return
        end
        i32.const 1000 i32.add local.get 0 call $get i32.add))""")
    linker = Linker()
    linker.define_instance("lib", linker.instantiate(Module(lib)))
    f = linker.instantiate(Module(app)).exports["f"]
    assert f(5) == 0 + 1000 + 10
    for fuel in range(1, 14):
        fiber = E.Fiber(f, (5,))
        while fiber.run(max(fuel, fiber.fuel_needed)) == Outcome.OUT_OF_FUEL:
            pass
        assert fiber.results == (1010,), fuel

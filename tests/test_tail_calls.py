"""Tail calls (Wasm 3.0): return_call and return_call_indirect replace the
running frame, so tail recursion runs in constant frames and slots.

The 3.0 spec testsuite covers their semantics (tests/spec: return_call,
return_call_indirect); these tests check what the engine promises beyond
it: the depth limit does not apply to tail calls, host and cross-instance
callees, fuel slices and async suspensions.
"""

from __future__ import annotations

import pytest
import trio

from asyncwasm import I32, I64, Caller, FuncType, Limits, Linker, Module, Trap
from asyncwasm.lowlevel import Fiber, Outcome

from .wat import wat

LOOPS = """
(module
  (type $step (func (param i64 i64) (result i64)))
  (table 2 funcref)
  (elem (i32.const 0) $even $odd)

  (func $count (export "count") (param $n i64) (param $acc i64) (result i64)
    (if (result i64) (i64.eqz (local.get $n))
      (then (local.get $acc))
      (else (return_call $count (i64.sub (local.get $n) (i64.const 1))
                                (i64.add (local.get $acc) (i64.const 1))))))

  ;; Mutual recursion through the table: even/odd, counting the steps in $acc.
  (func $even (export "even") (type $step)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (return_call_indirect (type $step)
              (i64.sub (local.get 0) (i64.const 1)) (local.get 1) (i32.const 1)))))
  (func $odd (type $step)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 0))
      (else (return_call_indirect (type $step)
              (i64.sub (local.get 0) (i64.const 1)) (local.get 1) (i32.const 0)))))

  (func $plain (export "plain") (param $n i64) (result i64)   ;; no tail call: real depth
    (if (result i64) (i64.eqz (local.get $n))
      (then (i64.const 0))
      (else (i64.add (i64.const 1) (call $plain (i64.sub (local.get $n) (i64.const 1)))))))
)
"""


def test_ten_million_tail_calls_under_a_depth_limit_of_100() -> None:
    instance = Linker().instantiate(Module(wat(LOOPS)), limits=Limits(max_call_depth=100))
    assert instance.exports["count"](10_000_000, 0) == 10_000_000
    assert instance.exports["even"](1_000_001, 0) == 0
    assert instance.exports["even"](1_000_000, 0) == 1
    with pytest.raises(Trap, match="call stack exhausted"):  # the same depth without tail calls
        instance.exports["plain"](1000)
    assert instance.exports["plain"](50) == 50


def test_tail_calls_across_fuel_slices() -> None:
    instance = Linker().instantiate(Module(wat(LOOPS)), limits=Limits(max_call_depth=10))
    for name, args, want in (("count", (3000, 7), 3007), ("even", (501, 0), 0)):
        fiber = Fiber(instance.exports[name], args, max_call_depth=10)
        runs = 0
        while (outcome := fiber.run(max(3, fiber.fuel_needed))) == Outcome.OUT_OF_FUEL:
            runs += 1
        assert outcome == Outcome.DONE and fiber.results == (want,) and runs > 1000


CALLEES = """
(module
  (import "env" "host" (func $host (param i32) (result i32)))
  (import "other" "twice" (func $twice (param i32) (result i32)))
  (type $t (func (param i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $host $twice)
  (func (export "to_host") (param i32) (result i32) (return_call $host (local.get 0)))
  (func (export "to_other") (param i32) (result i32) (return_call $twice (local.get 0)))
  (func (export "indirect") (param i32 i32) (result i32)
    (return_call_indirect (type $t) (local.get 0) (local.get 1)))
  (func (export "wrong_type") (param i32) (result i64)
    (return_call_indirect (param i32) (result i64) (local.get 0) (i32.const 0)))
)
"""
OTHER = """
(module
  (memory 1)
  (func (export "twice") (param i32) (result i32)
    (i32.store (i32.const 8) (local.get 0))
    (i32.mul (i32.load (i32.const 8)) (i32.const 2)))
)
"""


def _callees(host) -> dict:  # type: ignore[no-untyped-def]
    other = Linker().instantiate(Module(wat(OTHER)))
    linker = Linker()
    linker.define_func("env", "host", FuncType([I32], [I32]), host)
    linker.define_instance("other", other)
    return linker.instantiate(Module(wat(CALLEES))).exports


def test_tail_calls_to_host_and_other_instances() -> None:
    exports = _callees(lambda n: n + 100)
    assert exports["to_host"](1) == 101
    assert exports["to_other"](21) == 42
    assert exports["indirect"](5, 0) == 105
    assert exports["indirect"](5, 1) == 10
    with pytest.raises(Trap, match="indirect call type mismatch"):
        exports["wrong_type"](1)
    with pytest.raises(Trap, match="undefined element"):
        exports["indirect"](5, 2)


async def test_tail_call_to_a_host_function_that_suspends() -> None:
    async def host(n: int) -> int:
        await trio.sleep(0)
        return n * 3

    exports = _callees(host)
    assert await exports["to_host"].call_async(7) == 21
    assert await exports["indirect"].call_async(4, 0) == 12
    assert await exports["indirect"].call_async(4, 1) == 8


def test_tail_call_results_must_match() -> None:
    bad = "(module (func $f (result i32) (i32.const 1)) (func (result i64) (return_call $f)))"
    from asyncwasm import ValidationError

    with pytest.raises(ValidationError, match="type mismatch"):
        Module(wat(bad))
    with pytest.raises(ValidationError, match="unknown function"):
        Module(wat("(module (func (return_call 5)))"))
    assert Module(wat(LOOPS)).exports[0].type == FuncType([I64, I64], [I64])


HANDLERS = """
(module
  (import "env" "error" (tag $error (param i32)))
  (import "env" "host" (func $host (param i32) (result i32)))
  ;; The try_table here is gone once the tail call happens: an exception from
  ;; the callee goes to this function's caller, never to this handler.
  (func $tail (export "tail") (param i32) (result i32)
    (block $mine (result i32)
      (try_table (result i32) (catch $error $mine)
        (return_call $host (local.get 0)))
      (return))
    (i32.const 1000) (i32.add))
  (func (export "caller") (param i32) (result i32)
    (block $theirs (result i32)
      (try_table (result i32) (catch $error $theirs) (call $tail (local.get 0)))
      (return))
    (i32.const 2000) (i32.add))
)
"""


def _handlers(host) -> dict:  # type: ignore[no-untyped-def]
    from asyncwasm import Tag

    tag = Tag(FuncType([I32], []))
    linker = Linker()
    linker.define("env", "error", tag)
    linker.define_func("env", "host", FuncType([I32], [I32]), host(tag))
    return linker.instantiate(Module(wat(HANDLERS))).exports


def _throwing(tag):  # type: ignore[no-untyped-def]
    from asyncwasm import WasmException

    def host(n: int) -> int:
        if n < 0:
            raise WasmException(tag, [n])
        return n * 10

    return host


def test_exception_from_a_tail_called_host_function_skips_the_gone_frame() -> None:
    from asyncwasm import WasmException

    exports = _handlers(_throwing)
    assert exports["caller"](4) == 40
    assert exports["caller"](-3) == 1997  # the caller's handler: 2000 - 3, not 1000 - 3
    assert exports["tail"](5) == 50  # the entry frame tail-calls the host function
    with pytest.raises(WasmException) as info:
        exports["tail"](-5)  # nobody is left to catch it
    assert info.value.values == (-5,)


async def test_tail_called_host_function_that_suspends_then_throws() -> None:
    from asyncwasm import WasmException

    def make(tag):  # type: ignore[no-untyped-def]
        async def host(n: int) -> int:
            await trio.sleep(0)
            if n < 0:
                raise WasmException(tag, [n])
            return n + 1

        return host

    exports = _handlers(make)
    assert await exports["caller"].call_async(1) == 2
    assert await exports["caller"].call_async(-7) == 1993
    assert await exports["tail"].call_async(8) == 9
    with pytest.raises(WasmException):
        await exports["tail"].call_async(-1)


TAIL_LOG = """
(module
  (import "env" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "tail")
  (func $inner (param i32) (return_call $log (i32.const 16) (local.get 0)))
  (func (export "entry") (param i32) (return_call $log (i32.const 16) (local.get 0)))
  (func (export "nested") (param i32) (call $inner (local.get 0))))
"""


@pytest.mark.parametrize("name", ["entry", "nested"])
async def test_a_tail_called_host_function_sees_the_tail_calling_instance(name: str) -> None:
    seen = []

    def log(caller: Caller, ptr: int, length: int) -> None:
        assert caller.memory is not None
        seen.append((caller.instance, caller.memory.read(ptr, length)))

    linker = Linker()
    linker.define_func("env", "log", FuncType([I32, I32], []), log, access_caller=True)
    instance = linker.instantiate(Module(wat(TAIL_LOG)))
    instance.exports[name](4)
    await instance.exports[name].call_async(2)
    assert seen == [(instance, b"tail"), (instance, b"ta")]

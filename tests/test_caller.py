"""Host functions that see their caller (``access_caller=True``): the
instance, exports, memory and WASI context of the guest that called, from
sync and async host functions, across several instances of one linker; a
Caller works only during its call."""

from __future__ import annotations

import pytest
import trio

import asyncwasm
from asyncwasm import I32, Caller, Func, FuncType, Linker, Module, Trap, WasiConfig

from .wat import wat

# log(ptr, len) with the guest's own text; "say" passes a different text per instance
# (the instance's data segment is patched by the test through memory.write).
GUEST = wat("""
(module
  (import "env" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello")
  (func (export "say") (param i32) (call $log (i32.const 16) (local.get 0)))
  (func (export "twice") (call $log (i32.const 16) (i32.const 1)) (call $log (i32.const 17) (i32.const 1))))
""")

LOG = FuncType([I32, I32], [])


def _linker(log, **kwargs) -> Linker:
    linker = Linker()
    linker.define_func("env", "log", LOG, log, access_caller=True, **kwargs)
    return linker


def _instances(linker: Linker, texts: list[bytes]) -> list[asyncwasm.Instance]:
    """One instance of GUEST per text, the text written where "say" reads."""
    module = Module(GUEST)
    instances = [linker.instantiate(module) for _ in texts]
    for instance, text in zip(instances, texts):
        memory = instance.exports["memory"]
        assert isinstance(memory, asyncwasm.Memory)
        memory.write(16, text)
    return instances


def test_the_caller_is_the_very_instance_for_each_instance_of_one_linker() -> None:
    seen: list[tuple[asyncwasm.Instance, bytes]] = []

    def log(caller: Caller, ptr: int, length: int) -> None:
        memory = caller.memory
        assert memory is not None
        seen.append((caller.instance, memory.read(ptr, length)))

    instances = _instances(_linker(log), [f"inst{number}".encode() for number in range(3)])
    for number, instance in reversed(list(enumerate(instances))):
        instance.exports["say"](5)
    assert [(instances.index(inst), text) for inst, text in seen] == [(2, b"inst2"), (1, b"inst1"), (0, b"inst0")]
    assert all(inst is instances[i] for i, (inst, _) in zip((2, 1, 0), seen))


def test_exports_memory_and_wasi_of_the_caller() -> None:
    got = {}

    def log(caller: Caller, ptr: int, length: int) -> None:
        got.update(exports=caller.exports, memory=caller.memory, wasi=caller.wasi, valid=caller.valid)

    linker = _linker(log)
    linker.define_wasi(WasiConfig(argv=["guest"]))
    instance = linker.instantiate(Module(GUEST))  # imports nothing from WASI: no context
    instance.exports["say"](1)
    assert got["exports"] is instance.exports
    assert got["memory"] is instance.exports["memory"]
    assert got["wasi"] is None
    assert got["valid"] is True

    wasi_guest = wat("""
    (module
      (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
      (import "env" "log" (func $log (param i32 i32)))
      (func (export "say") (call $log (i32.const 0) (i32.const 0))))
    """)
    with linker.instantiate(Module(wasi_guest)) as with_wasi:
        with_wasi.exports["say"]()
        assert got["wasi"] is with_wasi.wasi and got["wasi"] is not None
        assert got["memory"] is None  # no memory at all


@pytest.mark.parametrize(
    ("memories", "expected"),
    [
        ('(memory (export "heap") 1) ', "memory 0"),  # exported under another name: memory 0
        ("(memory 1) ", "memory 0"),  # not exported
        ('(memory (export "memory") 2) ', "export"),
    ],
)
def test_caller_memory_is_the_export_named_memory_else_memory_0(memories: str, expected: str) -> None:
    got = []

    def log(caller: Caller, ptr: int, length: int) -> None:
        got.append(caller.memory)

    module = Module(wat(f"""
    (module (import "env" "log" (func $log (param i32 i32))) {memories}
      (func (export "say") (call $log (i32.const 0) (i32.const 0))))
    """))
    instance = _linker(log).instantiate(module)
    instance.exports["say"]()
    assert isinstance(got[0], asyncwasm.Memory)
    if expected == "export":
        assert got[0] is instance.exports["memory"] and got[0].size == 2
    else:
        assert got[0] is instance._raw.memory  # memory 0 (the engine's view)


def test_a_caller_kept_after_its_call_raises_a_clear_error() -> None:
    kept: list[Caller] = []
    linker = _linker(lambda caller, ptr, length: kept.append(caller))
    instance = linker.instantiate(Module(GUEST))
    instance.exports["twice"]()
    assert len(kept) == 2 and kept[0] is not kept[1]  # one Caller per call
    for caller in kept:
        assert caller.valid is False
        for attribute in ("instance", "exports", "memory", "wasi"):
            with pytest.raises(RuntimeError, match="no longer valid: a Caller works only during the host call"):
                getattr(caller, attribute)
    assert "call over" in repr(kept[0])


def test_a_caller_ends_when_its_host_function_raises() -> None:
    kept: list[Caller] = []

    def log(caller: Caller, ptr: int, length: int) -> None:
        kept.append(caller)
        raise Trap("refused")

    instance = _linker(log).instantiate(Module(GUEST))
    with pytest.raises(Trap, match="refused"):
        instance.exports["say"](1)
    assert not kept[0].valid
    assert instance.exports["say"] is not None  # the instance stays usable (a trap is an outcome)


async def test_async_host_functions_keep_their_caller_across_awaits_for_concurrent_instances() -> None:
    seen: list[tuple[int, asyncwasm.Instance, bytes]] = []
    callers: list[Caller] = []
    go = {length: trio.Event() for length in (1, 2, 3)}

    async def log(caller: Caller, ptr: int, length: int) -> None:
        callers.append(caller)
        before = caller.instance
        await go[length].wait()  # the other instances' calls start meanwhile
        memory = caller.memory
        assert memory is not None and caller.valid
        seen.append((length, before, memory.read(ptr, length)))
        assert caller.instance is before

    instances = _instances(_linker(log), [bytes([65 + number]) * 8 for number in range(3)])
    async with trio.open_nursery() as nursery:
        for number, instance in enumerate(instances):
            nursery.start_soon(instance.exports["say"].call_async, 3 - number)
        while len(callers) < 3:  # all three suspended in log
            await trio.sleep(0)
        for length in (1, 2, 3):  # instance 2 resumes first, then 1, then 0
            go[length].set()
            while len(seen) < length:
                await trio.sleep(0)
    assert [(length, instances.index(inst), text) for length, inst, text in seen] == [
        (1, 2, b"C"), (2, 1, b"BB"), (3, 0, b"AAA"),
    ]  # fmt: skip
    assert not any(caller.valid for caller in callers)  # each ended when its call resumed


async def test_a_caller_of_a_cancelled_async_host_call_ends_with_the_call() -> None:
    kept: list[Caller] = []

    async def log(caller: Caller, ptr: int, length: int) -> None:
        kept.append(caller)
        await trio.sleep_forever()

    instance = _linker(log).instantiate(Module(GUEST))
    with trio.move_on_after(0.01):
        await instance.exports["say"].call_async(1)
    assert instance.interrupted and not kept[0].valid


def test_a_host_function_with_a_caller_called_from_python_is_refused() -> None:
    func = Func(LOG, lambda caller, ptr, length: None, access_caller=True)
    with pytest.raises(TypeError, match="takes a Caller .access_caller=True.: only a guest can call it"):
        func(1, 2)


def test_func_with_access_caller_defined_in_a_linker() -> None:
    got = []
    linker = Linker()
    linker.define("env", "log", Func(LOG, lambda caller, ptr, length: got.append(caller.instance), access_caller=True))
    instance = linker.instantiate(Module(GUEST))
    instance.exports["say"](0)
    assert got == [instance]


def test_the_caller_is_the_guest_that_calls_not_the_instance_that_reexports() -> None:
    got = []
    library = _linker(lambda caller, ptr, length: got.append(caller.instance)).instantiate(Module(wat("""
    (module (import "env" "log" (func $log (param i32 i32)))
      (export "log" (func $log))
      (func (export "own") (call $log (i32.const 0) (i32.const 0))))
    """)))
    linker = Linker()
    linker.define_instance("lib", library)
    app = linker.instantiate(Module(wat("""
    (module (import "lib" "log" (func $log (param i32 i32)))
      (func (export "run") (call $log (i32.const 0) (i32.const 0))))
    """)))
    app.exports["run"]()
    library.exports["own"]()
    assert got == [app, library]


def test_the_caller_of_a_start_function_is_the_instance_being_made() -> None:
    got = []
    module = Module(wat("""
    (module (import "env" "log" (func $log (param i32 i32)))
      (func $init (call $log (i32.const 0) (i32.const 0))) (start $init))
    """))
    instance = _linker(lambda caller, ptr, length: got.append(caller.instance)).instantiate(module)
    assert got == [instance]


def test_caller_is_made_by_the_engine_only() -> None:
    with pytest.raises(TypeError):
        Caller()  # type: ignore[call-arg]


def test_without_access_caller_nothing_changes() -> None:
    got = []
    linker = Linker()
    linker.define_func("env", "log", LOG, lambda ptr, length: got.append((ptr, length)))
    linker.instantiate(Module(GUEST)).exports["say"](4)
    assert got == [(16, 4)]

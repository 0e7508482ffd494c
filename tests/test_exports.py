"""The public surface is exactly the documented list, and nothing leaks."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

import asyncwasm
from asyncwasm import lowlevel

DOCUMENTED = [
    "Module", "ImportType", "ExportType", "CostTable", "Instance", "Linker", "Limits",
    "WasiConfig", "execute", "Execution", "Statistics",
    "Func", "Caller", "Memory", "MemoryBudget", "Table", "Global", "Tag",
    "FuncType", "MemoryType", "TableType", "GlobalType", "TagType",
    "ValType", "I32", "I64", "F32", "F64", "V128", "FUNCREF", "EXTERNREF", "EXNREF", "NULLEXNREF",
    "WasmError", "ModuleError", "MalformedError", "ValidationError", "LinkError",
    "Trap", "FuelExhausted", "WasmException", "Exit", "Interrupted", "Frame",
    "__version__",
]  # fmt: skip


def test_all_is_exactly_the_documented_list() -> None:
    assert asyncwasm.__all__ == DOCUMENTED


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_name_resolves(name: str) -> None:
    assert getattr(asyncwasm, name) is not None


def test_star_import_gives_the_documented_names() -> None:
    namespace: dict[str, object] = {}
    exec("from asyncwasm import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(DOCUMENTED)


def test_version_is_a_release_string() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", asyncwasm.__version__)


@pytest.mark.parametrize("name", ["Module", "ImportType", "ExportType", "CostTable", "Instance", "Linker", "Limits", "Execution",
                                  "Statistics"])
def test_python_classes_are_final(name: str) -> None:
    assert getattr(getattr(asyncwasm, name), "__final__", False), f"{name} is not marked @final"


@pytest.mark.parametrize("name", ["Func", "Caller", "Memory", "MemoryBudget", "Table", "Global", "Tag"])
def test_engine_classes_cannot_be_subclassed(name: str) -> None:
    base = getattr(asyncwasm, name)
    with pytest.raises(TypeError):
        type("Sub", (base,), {})


def test_value_types_are_the_binary_bytes() -> None:
    assert [int(t) for t in (asyncwasm.I32, asyncwasm.I64, asyncwasm.F32, asyncwasm.F64)] == [0x7F, 0x7E, 0x7D, 0x7C]
    assert (int(asyncwasm.V128), int(asyncwasm.FUNCREF), int(asyncwasm.EXTERNREF)) == (0x7B, 0x70, 0x6F)
    assert int(asyncwasm.EXNREF) == 0x69 and asyncwasm.EXNREF.is_ref


def test_error_hierarchy() -> None:
    assert issubclass(asyncwasm.MalformedError, asyncwasm.ModuleError)
    assert issubclass(asyncwasm.ValidationError, asyncwasm.ModuleError)
    assert issubclass(asyncwasm.FuelExhausted, asyncwasm.Trap)
    assert not issubclass(asyncwasm.WasmException, asyncwasm.Trap)  # an outcome of its own
    for name in ("ModuleError", "LinkError", "Trap", "WasmException", "Exit", "Interrupted"):
        assert issubclass(getattr(asyncwasm, name), asyncwasm.WasmError)


def test_interop_surface() -> None:
    from asyncwasm import interop

    assert interop.__all__ == ["GuestHeap", "GuestBuffer", "HeapError", "unpack_ptr_len"]
    assert issubclass(interop.HeapError, asyncwasm.WasmError)
    assert interop.GuestHeap.__final__ and interop.GuestBuffer.__final__  # type: ignore[attr-defined]


def test_lowlevel_surface() -> None:
    assert lowlevel.__all__ == ["Fiber", "Outcome"]
    assert lowlevel.Fiber is asyncwasm._engine.Fiber


def _engine_run_outcomes() -> dict[str, int]:
    header = Path(asyncwasm.__file__).parent / "_engine" / "engine.h"
    text = header.read_text(encoding="utf-8")
    return {name: int(value) for name, value in re.findall(r"\bRUN_([A-Z_]+)\s*=\s*(\d+)", text)}


def test_outcome_mirrors_engine_h_one_to_one() -> None:
    from asyncwasm.lowlevel import Outcome

    outcomes = _engine_run_outcomes()
    assert outcomes, "no RUN_* constants found in engine.h"
    assert {o.name: o.value for o in Outcome} == outcomes


def test_public_types_are_typed() -> None:
    assert (Path(asyncwasm.__file__).parent / "py.typed").is_file()
    hints = typing.get_type_hints(asyncwasm.Module.from_file)
    assert hints["return"] is asyncwasm.Module


# -- the C extension's stub (asyncwasm/_engine.pyi) ------------------------------

_STUB = Path(asyncwasm.__file__).parent / "_engine.pyi"


def _stub_names() -> dict[str, set[str]]:
    """Module-level names of the stub ("" key) and each class's members."""
    import ast

    tree = ast.parse(_STUB.read_text(encoding="utf-8"))
    names: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = names.setdefault(node.name, set())
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
            names[""].add(node.name)
        elif isinstance(node, ast.FunctionDef):
            names[""].add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[""].add(node.target.id)
    return names


def test_engine_stub_matches_the_extension() -> None:
    """The hand-kept stub names exactly what pyengine.c and the py_*.c files define: a method
    added in C without the stub (or the reverse) fails here."""
    from asyncwasm import _engine

    stub = _stub_names()
    assert stub[""] == {n for n in dir(_engine) if not n.startswith("__")}
    for cls_name, members in stub.items():
        if cls_name:
            actual = {n for n in vars(getattr(_engine, cls_name)) if not n.startswith("__")}
            assert members - {"__init__", "__call__", "__buffer__"} == actual, cls_name


def test_engine_stub_is_shipped() -> None:
    pyproject = Path(asyncwasm.__file__).parent.parent / "pyproject.toml"
    assert '"_engine.pyi"' in pyproject.read_text(encoding="utf-8")


_TYPED_SAMPLE = '''
from __future__ import annotations

import sys

import trio

import asyncwasm
from asyncwasm import (
    I32, Caller, Execution, Exit, Func, FuncType, Global, Instance, Interrupted, Limits, Linker, Memory, Module,
    Statistics, Table, Tag, TagType, Trap, WasiConfig, WasmException, lowlevel,
)
from asyncwasm.interop import GuestBuffer, GuestHeap, HeapError, unpack_ptr_len


def host_add(a: int, b: int) -> int:
    return a + b


def host_log(caller: Caller, ptr: int, length: int) -> None:
    memory: Memory | None = caller.memory
    instance: Instance = caller.instance
    if memory is not None:
        print(memory.read(ptr, length).decode(), len(caller.exports), caller.wasi, instance.statistics().calls)


async def host_lookup(caller: Caller, key: int) -> int:
    heap = GuestHeap(caller.instance)
    buffer: GuestBuffer = await heap.write_async(f"value {key}")
    return (buffer.ptr << 32) | buffer.len


def heap_use(instance: Instance) -> str:
    heap = GuestHeap(instance, alloc="malloc", free="free")
    with heap.write("text") as text:
        upper = instance.exports["upper"]
        assert isinstance(upper, Func)
        ptr, length = unpack_ptr_len(upper(text.ptr, text.len))
    try:
        return heap.read_str(ptr, length) + heap.read_cstr(ptr, 16) + heap.read(ptr, 1).decode()
    except HeapError:
        return ""
    finally:
        heap.free(ptr, length)


async def host_fetch(key: int) -> int:
    await trio.sleep(0)
    return key * 2


def sync_use(data: bytes) -> int:
    module = Module(data)
    kind: str = module.kind
    names = [imp.name for imp in module.imports] + [exp.name for exp in module.exports]
    sections: list[bytes] = module.custom_sections("producers")
    linker = Linker(allow_shadowing=True)
    added: Func = linker.define_func("env", "add", FuncType([I32, I32], [I32]), host_add)
    linker.define_func("env", "fetch", FuncType([I32], [I32]), host_fetch)
    linker.define_func("env", "log", FuncType([I32, I32], []), host_log, access_caller=True)
    linker.define("env", "lookup", Func(FuncType([I32], [asyncwasm.I64]), host_lookup, access_caller=True))
    linker.define_wasi(WasiConfig(argv=["app"], stdout=sys.stdout))
    linker.define("env", "mem", Memory(asyncwasm.MemoryType(1, 2)))
    linker.define("env", "g", Global(asyncwasm.GlobalType(I32, mutable=True), 7))
    linker.define("env", "t", Table(asyncwasm.TableType(asyncwasm.FUNCREF, 1)))
    tag = Tag(FuncType([I32], []))
    linker.define("env", "error", tag)
    tag_type: TagType = tag.type
    with linker.instantiate(module, limits=Limits(fuel=10_000, timeout=1.0)) as instance:
        run = instance.exports["run"]
        assert isinstance(run, Func)
        result = run(1, 2)
        memory = instance.exports["memory"]
        assert isinstance(memory, Memory)
        memory.write(0, b"hi")
        head: bytes = memory.read(0, 2)
        view: memoryview = memory.view()
        stats: Statistics = instance.statistics()
        interrupted: bool = instance.interrupted
        linker.define_instance("app", instance)
    fiber = lowlevel.Fiber(added, (1, 2))
    outcome = lowlevel.Outcome(fiber.run(1000))
    return (len(names) + len(sections) + len(kind) + len(head) + len(view) + stats.calls + int(interrupted)
            + int(outcome) + added.type.params.count(I32) + len(tag_type.params) + (result or 0))


async def async_use(module: Module) -> int | None:
    instance: Instance = await Linker().instantiate_async(module, limits=Limits(yield_interval=0.01))
    main = instance.exports["main"]
    assert isinstance(main, Func)
    try:
        value = await main.call_async(1)
    except Exit as exc:
        return exc.code
    except WasmException as exc:
        thrown: Tag = exc.tag
        return len(exc.values) + len(thrown.type.params)
    except (Trap, Interrupted) as exc:
        print(exc.args)
        return None
    async with trio.open_nursery() as nursery:
        execution: Execution = asyncwasm.execute(nursery, main, 42)
        if not await execution.wait_for(0.05):
            execution.cancel()
        await execution.wait()
        print(execution.done, execution.statistics().fuel_used)
        return int(await execution.result()) + int(value)
'''


def test_typed_usage_passes_mypy_strict(tmp_path: Path) -> None:
    """A user's typed code type-checks against the public API (annotations,
    py.typed and the engine stub), and a wrong type is caught."""
    pytest.importorskip("mypy", reason="mypy is in the test extras: pip install -e '.[test]'")
    import subprocess
    import sys

    root = Path(asyncwasm.__file__).parent.parent
    good = tmp_path / "typed_user.py"
    good.write_text(_TYPED_SAMPLE, encoding="utf-8")
    bad = tmp_path / "typed_user_bad.py"
    bad.write_text(_TYPED_SAMPLE.replace("head: bytes = memory.read", "head: str = memory.read"), encoding="utf-8")
    command = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
               "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    checked = subprocess.run([*command, str(good)], cwd=root, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    caught = subprocess.run([*command, str(bad)], cwd=root, capture_output=True, text=True, timeout=120)
    assert caught.returncode == 1 and 'variable has type "str"' in caught.stdout, caught.stdout + caught.stderr

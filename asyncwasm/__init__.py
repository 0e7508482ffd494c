"""asyncwasm: a WebAssembly runtime for Python, driven by trio.

The interpreter is a C extension whose Wasm frames live on the heap, so a
running guest can stop at any host call or fuel slice and resume later.

    >>> import asyncwasm
    >>> module = asyncwasm.Module.from_file("add.wasm")
    >>> linker = asyncwasm.Linker()
    >>> instance = linker.instantiate(module)
    >>> instance.exports["add"](1, 2)
    3
    >>> await instance.exports["add"].call_async(1, 2)     # in a trio task
    3

The public surface is exactly ``__all__``, plus the modules
:mod:`asyncwasm.lowlevel` (fibers, for custom drivers),
:mod:`asyncwasm.execution` (the drivers), :mod:`asyncwasm.run` (``asyncwasm
run`` from Python), :mod:`asyncwasm.wasi` (WASI contexts),
:mod:`asyncwasm.interop` (bytes and strings through a guest's allocator) and
:mod:`asyncwasm.serve` (hosting servers); other modules are private.
"""

__version__ = "0.1.0"

from ._errors import (
    Exit,
    Frame,
    FuelExhausted,
    Interrupted,
    LinkError,
    MalformedError,
    ModuleError,
    Trap,
    ValidationError,
    WasmError,
    WasmException,
)
from ._types import (
    EXNREF,
    EXTERNREF,
    F32,
    F64,
    FUNCREF,
    I32,
    I64,
    NULLEXNREF,
    V128,
    FuncType,
    GlobalType,
    MemoryType,
    TableType,
    TagType,
    ValType,
)
from ._engine import Caller, Func, Global, Memory, MemoryBudget, Table, Tag
from ._stats import Statistics
from .execution import Execution, Limits, execute
from .instance import Instance
from .linker import Linker
from .costs import CostTable
from .module import ExportType, ImportType, Module
from .wasi import WasiConfig

__all__ = [
    "Module",
    "ImportType",
    "ExportType",
    "CostTable",
    "Instance",
    "Linker",
    "Limits",
    "WasiConfig",
    "execute",
    "Execution",
    "Statistics",
    "Func",
    "Caller",
    "Memory",
    "MemoryBudget",
    "Table",
    "Global",
    "Tag",
    "FuncType",
    "MemoryType",
    "TableType",
    "GlobalType",
    "TagType",
    "ValType",
    "I32",
    "I64",
    "F32",
    "F64",
    "V128",
    "FUNCREF",
    "EXTERNREF",
    "EXNREF",
    "NULLEXNREF",
    "WasmError",
    "ModuleError",
    "MalformedError",
    "ValidationError",
    "LinkError",
    "Trap",
    "FuelExhausted",
    "WasmException",
    "Exit",
    "Interrupted",
    "Frame",
    "__version__",
]

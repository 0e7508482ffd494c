# Type stub for the C extension asyncwasm._engine (sources: asyncwasm/_engine/,
# Python bindings in pyengine.c). Kept by hand: when a method table, getset
# table or argument list in pyengine.c changes, change this file with it.
# Wasm values are `Any`: i32/i64 are int, f32/f64 float, v128 int, funcref a
# Func or None, externref any object (raw mode: bit patterns as int).

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Optional, final

from typing_extensions import Buffer

from ._errors import Trap
from ._types import ExternType, FuncType, GlobalType, MemoryType, TableType
from .instance import Exports
from .instance import Instance as PublicInstance
from .wasi import WasiContext

# Fiber.run outcomes (engine.h RUN_*), mirrored by asyncwasm.lowlevel.Outcome.
DONE: int
SUSPEND: int
OUT_OF_FUEL: int
TRAP: int
ERROR: int
#: The trap message of each trap code, indexed by code (0: no trap).
TRAP_MESSAGES: tuple[str, ...]

@final
class CompiledModule:
    """A decoded, validated and compiled module (made by :func:`compile`)."""

    @property
    def imports(self) -> tuple[tuple[str, str, ExternType], ...]: ...
    @property
    def exports(self) -> tuple[tuple[str, ExternType], ...]: ...
    @property
    def start(self) -> Optional[int]: ...
    @property
    def custom_sections(self) -> tuple[tuple[str, bytes], ...]: ...
    @property
    def func_names(self) -> dict[int, str]: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def code_size(self) -> int: ...

def compile(data: Buffer, costs: Optional[Buffer] = None) -> CompiledModule:
    """Decode, validate and compile; raises MalformedError / ValidationError.
    ``costs``: 512 native uint16 fuel weights (see asyncwasm.costs)."""

def set_hooks(**hooks: Callable[..., Any]) -> None:
    """Register the Python callables the C types delegate to (``call_async``)."""

def release_memory_pool() -> int:
    """Unmap the reservations kept from freed memories for reuse; returns how many."""

@final
class Func:
    """A host function (``Func(functype, callable)``) or a Wasm function of an instance."""

    def __init__(self, functype: FuncType, callable: Callable[..., Any], *, access_caller: bool = False) -> None: ...
    def __call__(self, *args: Any) -> Any: ...
    def call_raw(self, *args: int) -> tuple[Any, ...]: ...
    def call_async(self, *args: Any) -> Awaitable[Any]: ...
    @property
    def type(self) -> FuncType: ...
    @property
    def _gate(self) -> Any: ...

@final
class Caller:
    """What a host function defined with ``access_caller=True`` receives first;
    its attributes work only during that call (afterwards: RuntimeError)."""

    @property
    def instance(self) -> PublicInstance: ...
    @property
    def exports(self) -> Exports: ...
    @property
    def memory(self) -> Optional[Memory]: ...
    @property
    def wasi(self) -> Optional[WasiContext]: ...
    @property
    def valid(self) -> bool: ...

@final
class Memory:
    """A linear memory whose address never moves: ``Memory(MemoryType(1))``."""

    def __init__(self, memtype: MemoryType, *, limit_pages: Optional[int] = None) -> None: ...
    def read(self, offset: int, length: int, /) -> bytes: ...
    def write(self, offset: int, data: Buffer, /) -> None: ...
    def grow(self, delta: int, /) -> int: ...
    def view(self) -> memoryview: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    @property
    def type(self) -> MemoryType: ...
    @property
    def size(self) -> int: ...
    @property
    def data_len(self) -> int: ...

@final
class Table:
    """A table of references: ``Table(TableType(FUNCREF, 10))``."""

    def __init__(self, tabletype: TableType, init: Any = None, *, limit_elements: Optional[int] = None) -> None: ...
    def get(self, index: int, /) -> Any: ...
    def set(self, index: int, value: Any, /) -> None: ...
    def grow(self, delta: int, init: Any = None, /) -> int: ...
    @property
    def type(self) -> TableType: ...
    @property
    def size(self) -> int: ...

@final
class Global:
    """A global variable: ``Global(GlobalType(I32, mutable=True), 7)``."""

    def __init__(self, globaltype: GlobalType, value: Any) -> None: ...
    @property
    def type(self) -> GlobalType: ...
    value: Any
    raw: Any

@final
class Instance:
    """The engine's instance (no start function run): see asyncwasm.Instance."""

    def __init__(
        self,
        compiled: CompiledModule,
        externs: Iterable[Func | Memory | Table | Global],
        *,
        max_memory_pages: int = ...,
        max_table_elements: int = ...,
        max_call_depth: int = ...,
    ) -> None: ...
    @property
    def exports(self) -> dict[str, Func | Memory | Table | Global]: ...
    @property
    def start(self) -> Optional[Func]: ...
    @property
    def memory(self) -> Optional[Memory]: ...
    @property
    def default_memory(self) -> Optional[Memory]: ...
    @property
    def module(self) -> CompiledModule: ...
    def release(self) -> None:
        """Drop what the instance holds now (as the cyclic GC would); calls then raise RuntimeError."""
    _gate: Any
    _guarded: bool
    @property
    def _fast_counters(self) -> tuple[int, int, int]: ...

@final
class Fiber:
    """One resumable call into Wasm: see asyncwasm.lowlevel."""

    def __init__(
        self,
        func: Func,
        args: Iterable[Any],
        *,
        raw: bool = False,
        max_call_depth: int = ...,
        max_stack_slots: int = ...,
        awaits: bool = True,
    ) -> None: ...
    def run(self, fuel: int, /) -> int: ...
    def resume(self, value: Any, /) -> None: ...
    def throw(self, exc: BaseException, /) -> None: ...
    def trap(self) -> Trap: ...
    def close(self) -> None: ...
    @property
    def results(self) -> tuple[Any, ...]: ...
    @property
    def awaitable(self) -> Optional[Awaitable[Any]]: ...
    @property
    def state(self) -> int: ...
    @property
    def fuel_left(self) -> int: ...
    @property
    def fuel_needed(self) -> int: ...
    @property
    def fuel_used(self) -> int: ...
    @property
    def host_calls(self) -> int: ...
    @property
    def suspensions(self) -> int: ...

"""Wasm types as plain, immutable Python values.

    >>> from asyncwasm import FuncType, I32, I64
    >>> FuncType([I32, I32], [I64])
    FuncType(params=(i32, i32), results=(i64,))

Value types are an IntEnum whose values are the binary-format bytes, so the
C engine and Python agree on them without a translation table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Optional, Union


class ValType(enum.IntEnum):
    """A value type; the integer is its byte in the binary format."""

    I32 = 0x7F
    I64 = 0x7E
    F32 = 0x7D
    F64 = 0x7C
    V128 = 0x7B
    FUNCREF = 0x70
    EXTERNREF = 0x6F

    def __str__(self) -> str:
        return self.name.lower()

    __repr__ = __str__

    @property
    def is_ref(self) -> bool:
        return self in (ValType.FUNCREF, ValType.EXTERNREF)


I32 = ValType.I32
I64 = ValType.I64
F32 = ValType.F32
F64 = ValType.F64
V128 = ValType.V128
FUNCREF = ValType.FUNCREF
EXTERNREF = ValType.EXTERNREF


def _valtypes(types: Iterable[Union[ValType, int]]) -> tuple[ValType, ...]:
    return tuple(ValType(t) for t in types)


@dataclass(frozen=True, init=False)
class FuncType:
    """The type of a function: ``FuncType(params, results)``."""

    params: tuple[ValType, ...]
    results: tuple[ValType, ...]

    def __init__(self, params: Iterable[Union[ValType, int]] = (), results: Iterable[Union[ValType, int]] = ()):
        object.__setattr__(self, "params", _valtypes(params))
        object.__setattr__(self, "results", _valtypes(results))

    def __str__(self) -> str:
        p = " ".join(map(str, self.params))
        r = " ".join(map(str, self.results))
        return f"func [{p}] -> [{r}]"


def _check_limits(min: int, max: Optional[int], bound: int, what: str) -> None:
    if not 0 <= min <= bound:
        raise ValueError(f"{what} minimum {min} out of range 0..{bound}")
    if max is not None and not min <= max <= bound:
        raise ValueError(f"{what} maximum {max} out of range {min}..{bound}")


@dataclass(frozen=True)
class MemoryType:
    """A linear memory type; sizes in 64 KiB pages: ``MemoryType(1, 16)``."""

    min: int
    max: Optional[int] = None

    def __post_init__(self) -> None:
        _check_limits(self.min, self.max, 65536, "memory")

    def __str__(self) -> str:
        return f"memory {self.min}" + ("" if self.max is None else f" {self.max}")


@dataclass(frozen=True)
class TableType:
    """A table type: ``TableType(FUNCREF, 10, 20)``."""

    element: ValType
    min: int
    max: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", ValType(self.element))
        if not self.element.is_ref:
            raise ValueError(f"table element type must be a reference type, not {self.element}")
        _check_limits(self.min, self.max, 0xFFFFFFFF, "table")

    def __str__(self) -> str:
        return f"table {self.min}" + ("" if self.max is None else f" {self.max}") + f" {self.element}"


@dataclass(frozen=True)
class GlobalType:
    """A global's type: ``GlobalType(I32, mutable=True)``."""

    content: ValType
    mutable: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "content", ValType(self.content))

    def __str__(self) -> str:
        return f"global {'mut ' if self.mutable else ''}{self.content}"


ExternType = Union[FuncType, TableType, MemoryType, GlobalType]

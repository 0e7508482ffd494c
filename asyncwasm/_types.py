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
    """A value type; the integer is its byte in the binary format (for the
    non-nullable references, which have no one-byte form, their heap
    type's byte - 0x40).

        >>> I32, int(I32), ValType(0x7E), I64.is_ref, FUNCREF.is_ref
        (i32, 127, i64, False, True)

    ``EXNREF`` is a reference to a Wasm exception; Python sees one as the
    :class:`~asyncwasm.WasmException` it stands for (None is null).
    ``NULLEXNREF`` (``(ref null noexn)``) is its bottom type: its only value
    is null (None), and it fits wherever an ``EXNREF`` is expected.
    ``REF_EXN`` (``(ref exn)``) is an exnref that is never null (what
    ``catch_ref`` produces); ``REF_NOEXN`` (``(ref noexn)``) has no value.

        >>> str(ValType.REF_EXN), ValType.REF_EXN.is_ref
        ('(ref exn)', True)
    """

    I32 = 0x7F
    I64 = 0x7E
    F32 = 0x7D
    F64 = 0x7C
    V128 = 0x7B
    FUNCREF = 0x70
    EXTERNREF = 0x6F
    EXNREF = 0x69
    NULLEXNREF = 0x74
    REF_EXN = 0x29
    REF_NOEXN = 0x34

    def __str__(self) -> str:
        if self.name.startswith("REF_"):
            return f"(ref {self.name[4:].lower()})"
        return self.name.lower()

    __repr__ = __str__

    @property
    def is_ref(self) -> bool:
        return self not in (ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128)


I32 = ValType.I32
I64 = ValType.I64
F32 = ValType.F32
F64 = ValType.F64
V128 = ValType.V128
FUNCREF = ValType.FUNCREF
EXTERNREF = ValType.EXTERNREF
EXNREF = ValType.EXNREF
NULLEXNREF = ValType.NULLEXNREF


def valtype_matches(sub: ValType, expected: ValType) -> bool:
    """Whether a value of type ``sub`` may stand where ``expected`` is
    expected (Wasm subtyping; the engine's valtype_matches, engine.h):
    without GC only the exception types have proper subtypes.

        >>> valtype_matches(NULLEXNREF, EXNREF), valtype_matches(EXNREF, NULLEXNREF)
        (True, False)
    """
    return sub == expected or (sub, expected) in _PROPER_SUBTYPES


_PROPER_SUBTYPES = {
    (ValType.NULLEXNREF, ValType.EXNREF),
    (ValType.REF_EXN, ValType.EXNREF),
    (ValType.REF_NOEXN, ValType.EXNREF),
    (ValType.REF_NOEXN, ValType.REF_EXN),
    (ValType.REF_NOEXN, ValType.NULLEXNREF),
}

_VALTYPE_NAMES = "I32, I64, F32, F64, V128, FUNCREF, EXTERNREF, EXNREF, NULLEXNREF or ValType.REF_EXN/REF_NOEXN"


def _valtype(value: Union[ValType, int]) -> ValType:
    """``value`` as a ValType; ValueError naming the accepted ones otherwise."""
    try:
        return ValType(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a value type (use asyncwasm.{_VALTYPE_NAMES})") from None


def _valtypes(types: Iterable[Union[ValType, int]], what: str) -> tuple[ValType, ...]:
    if isinstance(types, (ValType, str)) or not isinstance(types, Iterable):
        raise TypeError(f"FuncType {what} must be a sequence of value types, not {type(types).__name__}")
    return tuple(_valtype(t) for t in types)


@dataclass(frozen=True, init=False)
class FuncType:
    """The type of a function: ``FuncType(params, results)``, each a
    sequence of value types (ValType or its byte).

        >>> add = FuncType([I32, I32], [I32])
        >>> str(add), add.params, add == FuncType((I32, I32), (I32,))
        ('func [i32 i32] -> [i32]', (i32, i32), True)
    """

    params: tuple[ValType, ...]
    results: tuple[ValType, ...]

    def __init__(self, params: Iterable[Union[ValType, int]] = (), results: Iterable[Union[ValType, int]] = ()):
        object.__setattr__(self, "params", _valtypes(params, "params"))
        object.__setattr__(self, "results", _valtypes(results, "results"))

    def __str__(self) -> str:
        p = " ".join(map(str, self.params))
        r = " ".join(map(str, self.results))
        return f"func [{p}] -> [{r}]"


def _check_limits(min: int, max: Optional[int], bound: int, what: str) -> None:
    for name, value in (("minimum", min), ("maximum", max)):
        if (value is not None or name == "minimum") and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{what} {name} must be an int, not {type(value).__name__}")
    if not 0 <= min <= bound:
        raise ValueError(f"{what} minimum {min} out of range 0..{bound}")
    if max is not None and not min <= max <= bound:
        raise ValueError(f"{what} maximum {max} out of range {min}..{bound}")


@dataclass(frozen=True)
class MemoryType:
    """A linear memory type; sizes in 64 KiB pages, ``max`` None for none;
    ``is_64`` for a memory64 (i64 addresses, up to 2**48 pages).

        >>> str(MemoryType(1, 16)), MemoryType(1).max, str(MemoryType(1, is_64=True))
        ('memory 1 16', None, 'memory i64 1')
    """

    min: int
    max: Optional[int] = None
    is_64: bool = False

    def __post_init__(self) -> None:
        _check_limits(self.min, self.max, 1 << 48 if self.is_64 else 65536, "memory")

    def __str__(self) -> str:
        return "memory" + (" i64" if self.is_64 else "") + f" {self.min}" + ("" if self.max is None else f" {self.max}")


@dataclass(frozen=True)
class TableType:
    """A table type: element type (FUNCREF or EXTERNREF), minimum and
    optional maximum number of elements; ``is_64`` for a table64 (i64
    indices).

        >>> str(TableType(FUNCREF, 10, 20))
        'table 10 20 funcref'
    """

    element: ValType
    min: int
    max: Optional[int] = None
    is_64: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", _valtype(self.element))
        if not self.element.is_ref:
            raise ValueError(f"table element type must be a reference type, not {self.element}")
        _check_limits(self.min, self.max, (1 << 64) - 1 if self.is_64 else 0xFFFFFFFF, "table")

    def __str__(self) -> str:
        limits = ("i64 " if self.is_64 else "") + f"{self.min}" + ("" if self.max is None else f" {self.max}")
        return f"table {limits} {self.element}"


@dataclass(frozen=True)
class GlobalType:
    """A global's type: content value type and mutability.

        >>> str(GlobalType(I32, mutable=True)), GlobalType(F64).mutable
        ('global mut i32', False)
    """

    content: ValType
    mutable: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "content", _valtype(self.content))

    def __str__(self) -> str:
        return f"global {'mut ' if self.mutable else ''}{self.content}"


@dataclass(frozen=True)
class TagType:
    """An exception tag's type: a function type whose params are the
    payload of the exceptions it makes (it has no results).

        >>> str(TagType(FuncType([I32, F64], [])))
        'tag [i32 f64]'
    """

    functype: FuncType

    def __post_init__(self) -> None:
        if not isinstance(self.functype, FuncType):
            raise TypeError(f"TagType needs a FuncType, not {type(self.functype).__name__}")
        if self.functype.results:
            raise ValueError(f"a tag's function type has no results, not {self.functype}")

    @property
    def params(self) -> tuple[ValType, ...]:
        return self.functype.params

    def __str__(self) -> str:
        return "tag [" + " ".join(map(str, self.functype.params)) + "]"


ExternType = Union[FuncType, TableType, MemoryType, GlobalType, TagType]

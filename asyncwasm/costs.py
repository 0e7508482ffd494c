"""Cost tables: fuel weights per Wasm instruction.

By default every instruction costs one unit of fuel. A :class:`CostTable`
gives some instructions other weights, so that ``Limits(fuel=N)`` becomes a
cost limit and ``statistics().fuel_used`` the cost consumed, in the style of
WasmEdge's cost measuring:

    >>> costs = CostTable({"call": 20, "call_indirect": 25, "memory.grow": 1000, "i64.div_s": 8})
    >>> module = Module(data, costs=costs)
    >>> instance = linker.instantiate(module, limits=Limits(fuel=5_000_000))   # a cost budget

Weights are compiled into the module's code: the engine charges each
straight-line run of instructions its summed weight when it is entered, so a
cost table costs nothing at run time. Weights are whole numbers from 1 to
65535 (zero would let a loop run without ever ending a fuel slice, and the
driver's fairness and cancellation depend on slices ending).
"""

from __future__ import annotations

import array
from collections.abc import Mapping
from typing import Optional, final

__all__ = ["CostTable", "OPCODES"]

MAX_WEIGHT = 0xFFFF
# The engine's table: [op] for a one-byte opcode, [256 + sub] for 0xFC
# sub-opcodes, [512 + sub] for 0xFD (SIMD) ones.
_PREFIX_BASE = {0xFC: 256, 0xFD: 512}
_ENTRIES = 768

_ONE_BYTE = {
    0x00: "unreachable", 0x01: "nop", 0x02: "block", 0x03: "loop", 0x04: "if", 0x05: "else", 0x0B: "end",
    0x0C: "br", 0x0D: "br_if", 0x0E: "br_table", 0x0F: "return", 0x10: "call", 0x11: "call_indirect",
    0x1A: "drop", 0x1B: "select", 0x20: "local.get", 0x21: "local.set", 0x22: "local.tee",
    0x23: "global.get", 0x24: "global.set", 0x25: "table.get", 0x26: "table.set",
    0x3F: "memory.size", 0x40: "memory.grow", 0x41: "i32.const", 0x42: "i64.const", 0x43: "f32.const",
    0x44: "f64.const", 0xD0: "ref.null", 0xD1: "ref.is_null", 0xD2: "ref.func",
}  # fmt: skip
# Contiguous runs of the binary format's opcode space (Wasm 2.0, section 5.4).
_RUNS = {
    0x28: "i32.load i64.load f32.load f64.load i32.load8_s i32.load8_u i32.load16_s i32.load16_u "
          "i64.load8_s i64.load8_u i64.load16_s i64.load16_u i64.load32_s i64.load32_u "
          "i32.store i64.store f32.store f64.store i32.store8 i32.store16 i64.store8 i64.store16 i64.store32",
    0x45: "i32.eqz i32.eq i32.ne i32.lt_s i32.lt_u i32.gt_s i32.gt_u i32.le_s i32.le_u i32.ge_s i32.ge_u "
          "i64.eqz i64.eq i64.ne i64.lt_s i64.lt_u i64.gt_s i64.gt_u i64.le_s i64.le_u i64.ge_s i64.ge_u "
          "f32.eq f32.ne f32.lt f32.gt f32.le f32.ge f64.eq f64.ne f64.lt f64.gt f64.le f64.ge "
          "i32.clz i32.ctz i32.popcnt i32.add i32.sub i32.mul i32.div_s i32.div_u i32.rem_s i32.rem_u "
          "i32.and i32.or i32.xor i32.shl i32.shr_s i32.shr_u i32.rotl i32.rotr "
          "i64.clz i64.ctz i64.popcnt i64.add i64.sub i64.mul i64.div_s i64.div_u i64.rem_s i64.rem_u "
          "i64.and i64.or i64.xor i64.shl i64.shr_s i64.shr_u i64.rotl i64.rotr "
          "f32.abs f32.neg f32.ceil f32.floor f32.trunc f32.nearest f32.sqrt "
          "f32.add f32.sub f32.mul f32.div f32.min f32.max f32.copysign "
          "f64.abs f64.neg f64.ceil f64.floor f64.trunc f64.nearest f64.sqrt "
          "f64.add f64.sub f64.mul f64.div f64.min f64.max f64.copysign "
          "i32.wrap_i64 i32.trunc_f32_s i32.trunc_f32_u i32.trunc_f64_s i32.trunc_f64_u "
          "i64.extend_i32_s i64.extend_i32_u i64.trunc_f32_s i64.trunc_f32_u i64.trunc_f64_s i64.trunc_f64_u "
          "f32.convert_i32_s f32.convert_i32_u f32.convert_i64_s f32.convert_i64_u f32.demote_f64 "
          "f64.convert_i32_s f64.convert_i32_u f64.convert_i64_s f64.convert_i64_u f64.promote_f32 "
          "i32.reinterpret_f32 i64.reinterpret_f64 f32.reinterpret_i32 f64.reinterpret_i64 "
          "i32.extend8_s i32.extend16_s i64.extend8_s i64.extend16_s i64.extend32_s",
}  # fmt: skip
_FC = ("i32.trunc_sat_f32_s i32.trunc_sat_f32_u i32.trunc_sat_f64_s i32.trunc_sat_f64_u "
       "i64.trunc_sat_f32_s i64.trunc_sat_f32_u i64.trunc_sat_f64_s i64.trunc_sat_f64_u "
       "memory.init data.drop memory.copy memory.fill table.init elem.drop table.copy "
       "table.grow table.size table.fill")  # fmt: skip
# 0xFD (SIMD) sub-opcodes 0..255 in order; "-" marks the unassigned ones.
_FD = ("v128.load v128.load8x8_s v128.load8x8_u v128.load16x4_s v128.load16x4_u v128.load32x2_s "
       "v128.load32x2_u v128.load8_splat v128.load16_splat v128.load32_splat v128.load64_splat v128.store "
       "v128.const i8x16.shuffle i8x16.swizzle i8x16.splat i16x8.splat i32x4.splat i64x2.splat f32x4.splat "
       "f64x2.splat i8x16.extract_lane_s i8x16.extract_lane_u i8x16.replace_lane i16x8.extract_lane_s "
       "i16x8.extract_lane_u i16x8.replace_lane i32x4.extract_lane i32x4.replace_lane i64x2.extract_lane "
       "i64x2.replace_lane f32x4.extract_lane f32x4.replace_lane f64x2.extract_lane f64x2.replace_lane "
       "i8x16.eq i8x16.ne i8x16.lt_s i8x16.lt_u i8x16.gt_s i8x16.gt_u i8x16.le_s i8x16.le_u i8x16.ge_s "
       "i8x16.ge_u i16x8.eq i16x8.ne i16x8.lt_s i16x8.lt_u i16x8.gt_s i16x8.gt_u i16x8.le_s i16x8.le_u "
       "i16x8.ge_s i16x8.ge_u i32x4.eq i32x4.ne i32x4.lt_s i32x4.lt_u i32x4.gt_s i32x4.gt_u i32x4.le_s "
       "i32x4.le_u i32x4.ge_s i32x4.ge_u f32x4.eq f32x4.ne f32x4.lt f32x4.gt f32x4.le f32x4.ge f64x2.eq "
       "f64x2.ne f64x2.lt f64x2.gt f64x2.le f64x2.ge v128.not v128.and v128.andnot v128.or v128.xor "
       "v128.bitselect v128.any_true v128.load8_lane v128.load16_lane v128.load32_lane v128.load64_lane "
       "v128.store8_lane v128.store16_lane v128.store32_lane v128.store64_lane v128.load32_zero "
       "v128.load64_zero f32x4.demote_f64x2_zero f64x2.promote_low_f32x4 i8x16.abs i8x16.neg i8x16.popcnt "
       "i8x16.all_true i8x16.bitmask i8x16.narrow_i16x8_s i8x16.narrow_i16x8_u f32x4.ceil f32x4.floor "
       "f32x4.trunc f32x4.nearest i8x16.shl i8x16.shr_s i8x16.shr_u i8x16.add i8x16.add_sat_s "
       "i8x16.add_sat_u i8x16.sub i8x16.sub_sat_s i8x16.sub_sat_u f64x2.ceil f64x2.floor i8x16.min_s "
       "i8x16.min_u i8x16.max_s i8x16.max_u f64x2.trunc i8x16.avgr_u i16x8.extadd_pairwise_i8x16_s "
       "i16x8.extadd_pairwise_i8x16_u i32x4.extadd_pairwise_i16x8_s i32x4.extadd_pairwise_i16x8_u i16x8.abs "
       "i16x8.neg i16x8.q15mulr_sat_s i16x8.all_true i16x8.bitmask i16x8.narrow_i32x4_s "
       "i16x8.narrow_i32x4_u i16x8.extend_low_i8x16_s i16x8.extend_high_i8x16_s i16x8.extend_low_i8x16_u "
       "i16x8.extend_high_i8x16_u i16x8.shl i16x8.shr_s i16x8.shr_u i16x8.add i16x8.add_sat_s "
       "i16x8.add_sat_u i16x8.sub i16x8.sub_sat_s i16x8.sub_sat_u f64x2.nearest i16x8.mul i16x8.min_s "
       "i16x8.min_u i16x8.max_s i16x8.max_u - i16x8.avgr_u i16x8.extmul_low_i8x16_s "
       "i16x8.extmul_high_i8x16_s i16x8.extmul_low_i8x16_u i16x8.extmul_high_i8x16_u i32x4.abs i32x4.neg - "
       "i32x4.all_true i32x4.bitmask - - i32x4.extend_low_i16x8_s i32x4.extend_high_i16x8_s "
       "i32x4.extend_low_i16x8_u i32x4.extend_high_i16x8_u i32x4.shl i32x4.shr_s i32x4.shr_u i32x4.add - - "
       "i32x4.sub - - - i32x4.mul i32x4.min_s i32x4.min_u i32x4.max_s i32x4.max_u i32x4.dot_i16x8_s - "
       "i32x4.extmul_low_i16x8_s i32x4.extmul_high_i16x8_s i32x4.extmul_low_i16x8_u "
       "i32x4.extmul_high_i16x8_u i64x2.abs i64x2.neg - i64x2.all_true i64x2.bitmask - - "
       "i64x2.extend_low_i32x4_s i64x2.extend_high_i32x4_s i64x2.extend_low_i32x4_u "
       "i64x2.extend_high_i32x4_u i64x2.shl i64x2.shr_s i64x2.shr_u i64x2.add - - i64x2.sub - - - i64x2.mul "
       "i64x2.eq i64x2.ne i64x2.lt_s i64x2.gt_s i64x2.le_s i64x2.ge_s i64x2.extmul_low_i32x4_s "
       "i64x2.extmul_high_i32x4_s i64x2.extmul_low_i32x4_u i64x2.extmul_high_i32x4_u f32x4.abs f32x4.neg - "
       "f32x4.sqrt f32x4.add f32x4.sub f32x4.mul f32x4.div f32x4.min f32x4.max f32x4.pmin f32x4.pmax "
       "f64x2.abs f64x2.neg - f64x2.sqrt f64x2.add f64x2.sub f64x2.mul f64x2.div f64x2.min f64x2.max "
       "f64x2.pmin f64x2.pmax i32x4.trunc_sat_f32x4_s i32x4.trunc_sat_f32x4_u f32x4.convert_i32x4_s "
       "f32x4.convert_i32x4_u i32x4.trunc_sat_f64x2_s_zero i32x4.trunc_sat_f64x2_u_zero "
       "f64x2.convert_low_i32x4_s f64x2.convert_low_i32x4_u")  # fmt: skip


def _opcodes() -> dict[str, int]:
    table = {name: code for code, name in _ONE_BYTE.items()}
    for start, names in _RUNS.items():
        table.update({name: start + i for i, name in enumerate(names.split())})
    table.update({name: 0xFC00 | sub for sub, name in enumerate(_FC.split())})
    table.update({name: 0xFD00 | sub for sub, name in enumerate(_FD.split()) if name != "-"})
    return table


#: Every instruction's text name -> its opcode (``0xFC00 | sub`` for the
#: 0xFC-prefixed ones, ``0xFD00 | sub`` for SIMD). Both encodings of
#: ``select`` share one entry.
OPCODES: Mapping[str, int] = _opcodes()


@final
class CostTable:
    """Fuel weights by instruction name, ``default`` for the rest.

        >>> CostTable({"call": 10, "memory.fill": 500}).weight("call")
        10
        >>> CostTable({"i32.add": 0})
        Traceback (most recent call last):
        ValueError: weight of 'i32.add' must be an int from 1 to 65535, not 0

    Unknown names raise :class:`KeyError` listing a few close ones, so a typo
    never silently leaves an instruction at the default weight.
    """

    __slots__ = ("_weights", "default", "_packed")

    def __init__(self, weights: Mapping[str, int], *, default: int = 1) -> None:
        _check_weight("default", default)
        for name, weight in weights.items():
            if name not in OPCODES:
                close = [known for known in OPCODES if known.split(".")[-1] == str(name).split(".")[-1]][:5]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise KeyError(f"unknown instruction {name!r} in a cost table{hint}")
            _check_weight(repr(name), weight)
        self._weights = dict(weights)
        self.default = default
        packed = array.array("H", [default]) * _ENTRIES
        for name, weight in self._weights.items():
            code = OPCODES[name]
            packed[_PREFIX_BASE[code >> 8] + (code & 0xFF) if code > 0xFF else code] = weight
        if "select" in self._weights:
            packed[0x1C] = self._weights["select"]  # select with a type annotation
        self._packed = packed.tobytes()

    def weight(self, name: str) -> int:
        """The weight of instruction ``name``."""
        if name not in OPCODES:
            raise KeyError(f"unknown instruction {name!r}")
        return self._weights.get(name, self.default)

    def packed(self) -> bytes:
        """The table as the engine reads it (768 native uint16 weights)."""
        return self._packed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CostTable) and self._packed == other._packed

    def __hash__(self) -> int:
        return hash(self._packed)

    def __repr__(self) -> str:
        return f"CostTable({self._weights!r}, default={self.default})"


def _check_weight(what: str, weight: object) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
        raise ValueError(f"weight of {what} must be an int from 1 to {MAX_WEIGHT}, not {weight!r}")


def packed_or_none(costs: Optional[CostTable]) -> Optional[bytes]:
    """What ``_engine.compile`` takes for ``costs``."""
    if costs is None:
        return None
    if not isinstance(costs, CostTable):
        raise TypeError(f"costs must be an asyncwasm.CostTable or None, not {type(costs).__name__}")
    return costs.packed()

"""Test helpers that build module bytes.

    >>> wat('(module (func (export "f") (result i32) i32.const 1))')[:4]
    b'\\x00asm'

``wat`` uses wasmtime's text parser (a test dependency only); the other
helpers append raw sections, for tests that need bytes no text can express.
"""

from __future__ import annotations

import wasmtime

HEADER = b"\x00asm\x01\x00\x00\x00"


def wat(text: str) -> bytes:
    """The binary format of the WAT module ``text``."""
    return bytes(wasmtime.wat2wasm(text))


def leb_u32(value: int) -> bytes:
    """Unsigned LEB128 encoding of ``value``."""
    if value < 0:
        raise ValueError("unsigned LEB128 needs a non-negative value")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def section(section_id: int, payload: bytes) -> bytes:
    """One section: id byte, LEB128 size, payload."""
    return bytes([section_id]) + leb_u32(len(payload)) + payload


def custom_section(name: str, data: bytes) -> bytes:
    """A custom section (id 0) called ``name`` holding ``data``."""
    encoded = name.encode("utf-8")
    return section(0, leb_u32(len(encoded)) + encoded + data)

"""Values of command-line flags and configuration keys: sizes, counts,
seconds, directories, environment variables. Shared by ``asyncwasm run``,
``asyncwasm serve`` and the handler-mode routes file, so each value is
spelled and checked one way everywhere. Every parser raises ValueError with
a message fit to show the user as it is.

    >>> parse_size("16MiB"), size_to_pages(16 << 20), parse_seconds("0.5")
    (16777216, 256, 0.5)
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

__all__ = ["PAGE_SIZE", "MAX_PAGES", "parse_size", "format_size", "parse_count", "parse_seconds", "size_to_pages",
           "MAX_PAGES64", "parse_dir", "parse_env"]

PAGE_SIZE = 65536
#: Pages a 32-bit memory can have (4 GiB), and a memory64 (2^64 bytes).
MAX_PAGES = 65536
MAX_PAGES64 = 1 << 48

_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """A memory size in bytes: a number with an optional binary unit
    (``K``/``KB``/``KiB`` = 1024, ``M``..., ``G``..., ``B`` for bytes).

        >>> parse_size("16MiB"), parse_size("64k"), parse_size("65536")
        (16777216, 65536, 65536)
    """
    match = _SIZE.fullmatch(text.strip())
    if not match or (match.group(3).lower() == "i"):
        raise ValueError(f"bad size {text!r}: use bytes or a unit, e.g. 65536, 64KiB, 16MiB, 1GiB")
    number, unit, _ = match.groups()
    return int(number) * _UNITS[unit.lower()]


def format_size(size: float) -> str:
    """A byte count for people, in the units :func:`parse_size` reads.

        >>> format_size(512), format_size(65536), format_size(3 << 29)
        ('512 B', '64 KiB', '1.5 GiB')
    """
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = _UNITS[unit[0].lower()]
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.0f} B"


def parse_count(text: str, minimum: int = 0) -> int:
    """A whole number (decimal or ``0x``) of at least ``minimum``.

        >>> parse_count("1_000"), parse_count("0x10", minimum=1)
        (1000, 16)
    """
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{text!r} must be >= {minimum}")
    return value


def parse_seconds(text: str, *, allow_zero: bool = False) -> float:
    """A finite number of seconds, positive (or also 0 with ``allow_zero``).

        >>> parse_seconds("0.5"), parse_seconds("0", allow_zero=True)
        (0.5, 0.0)
    """
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
        raise ValueError(f"{text!r} must be a {'non-negative' if allow_zero else 'positive'} number of seconds")
    return value


def size_to_pages(size: int) -> int:
    """Whole 64 KiB pages that fit in ``size`` bytes (a cap is never rounded up).
    A cap above 4 GiB applies to memory64 memories; a 32-bit memory stops at
    4 GiB whatever the cap.

        >>> size_to_pages(16 << 20), size_to_pages(100_000)
        (256, 1)
    """
    pages = size // PAGE_SIZE
    if pages > MAX_PAGES64:
        raise ValueError(f"{size} bytes is more than a memory can hold (2^64 bytes, {MAX_PAGES64} pages)")
    return pages


def parse_dir(text: str) -> tuple[str, str]:
    """``HOST[::GUEST]`` -> ``(host, guest)``; the guest path defaults to
    ``HOST`` as written (wasmtime's convention).

        >>> parse_dir("./data::/data"), parse_dir("/srv")
        (('./data', '/data'), ('/srv', '/srv'))
    """
    host, sep, guest = text.partition("::")
    if not host or (sep and not guest):
        raise ValueError(f"bad directory {text!r}: use HOST or HOST::GUEST")
    return host, guest if sep else host


def parse_env(text: str, environ: Optional[Any] = None) -> Optional[tuple[str, str]]:
    """``NAME=VALUE`` -> ``(name, value)``; a bare ``NAME`` takes the host's
    value (None when the host has no such variable).

        >>> parse_env("LANG=C")
        ('LANG', 'C')
    """
    name, sep, value = text.partition("=")
    if not name:
        raise ValueError(f"bad environment variable {text!r}: use NAME=VALUE or NAME")
    if sep:
        return name, value
    found = (os.environ if environ is None else environ).get(name)
    return None if found is None else (name, found)

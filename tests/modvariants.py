"""Distinguishable versions of the embedded server, made in the test: the
same netmods http_server with another greeting in its data segment (the
21 bytes of ``hello from asyncwasm\\n``), so ``GET /`` says which version
answered and every version differs in its SHA-256.

    >>> v2 = variant("v2")            # GET / -> b"hello from v2       \\n"
    >>> greeting("v2")
    b'hello from v2       \\n'
"""

from __future__ import annotations

from asyncwasm.serve.embedded import embedded_bytes

ORIGINAL = b"hello from asyncwasm\n"


def greeting(tag: str) -> bytes:
    """What ``GET /`` answers in :func:`variant` ``(tag)``."""
    text = f"hello from {tag}".encode()
    if len(text) > len(ORIGINAL) - 1:
        raise ValueError(f"tag {tag!r} too long")
    return text.ljust(len(ORIGINAL) - 1) + b"\n"


def variant(tag: str) -> bytes:
    """The embedded module answering :func:`greeting` ``(tag)``."""
    data = embedded_bytes()
    assert data.count(ORIGINAL) == 1
    return data.replace(ORIGINAL, greeting(tag))

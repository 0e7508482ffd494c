"""The embedded default module of ``asyncwasm serve``: netmods' ``http_server``.

    >>> module = embedded_module()              # an asyncwasm.Module, compiled
    >>> len(embedded_bytes()) > 0
    True

``http_server.wasm`` beside this file is a copy of
``netmods/http_server/http_server.wasm`` (an HTTP/1.1 server: ``GET /`` ->
200 ``hello from asyncwasm``, ``POST /echo`` echoes the body, ``/stats``),
shipped as package data so ``pip install . && asyncwasm serve`` works
without the source tree. ``tests/test_serve_embedded.py`` checks that the
copy matches netmods' build.
"""

from __future__ import annotations

from importlib import resources

from ..module import Module

__all__ = ["EMBEDDED_NAME", "embedded_bytes", "embedded_module"]

#: The file name of the embedded module inside this package.
EMBEDDED_NAME = "http_server.wasm"


def embedded_bytes() -> bytes:
    """The embedded module's binary."""
    return resources.files(__package__).joinpath(EMBEDDED_NAME).read_bytes()


def embedded_module() -> Module:
    """The embedded module, compiled."""
    return Module(embedded_bytes())

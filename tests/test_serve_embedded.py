"""The embedded default module of ``asyncwasm serve`` is netmods' build of
http_server, and it ships as package data."""

from __future__ import annotations

import pathlib
import tomllib

from asyncwasm.serve.embedded import EMBEDDED_NAME, embedded_bytes, embedded_module

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_embedded_module_is_netmods_http_server():
    assert embedded_bytes() == (ROOT / "netmods" / "http_server" / "http_server.wasm").read_bytes(), (
        "asyncwasm/serve/http_server.wasm is stale: cp netmods/http_server/http_server.wasm asyncwasm/serve/")
    module = embedded_module()
    assert module.kind == "command"
    assert {(i.module, i.name) for i in module.imports} >= {("wasi_snapshot_preview1", "sock_accept")}


def test_embedded_module_is_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"serve/{EMBEDDED_NAME}" in pyproject["tool"]["setuptools"]["package-data"]["asyncwasm"]

"""``asyncwasm serve --routes`` / ``--handler`` as a process and in-process:
routes from TOML (C, Zig and Lua handlers), the access log, SIGTERM,
and one-line errors with exit status 2 for a bad routes file."""

from __future__ import annotations

import io
import signal
from pathlib import Path

import pytest

from asyncwasm import cli

from .test_serve_cli import get, serve

HANDLERS = Path(__file__).resolve().parent.parent / "netmods" / "handlers"

ROUTES = f"""
[[route]]
path = "/c/..."
module = "{HANDLERS / 'cgi_tour.wasm'}"
env = {{ GREETING = "hi" }}
timeout = 5.0

[[route]]
path = "/zig/..."
module = "{HANDLERS / 'zig_hello.wasm'}"

[[route]]
path = "/lua/..."
module = "{HANDLERS / 'lua' / 'lua.wasm'}"
argv = ["lua", "/app/handler.lua"]
dirs = [ {{ host = "{HANDLERS / 'lua' / 'app'}", guest = "/app", readonly = true }} ]
max_memory = "32MiB"
"""


def test_routes_file_serves_c_zig_and_lua_then_sigterm(tmp_path):
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES)
    access = tmp_path / "access.log"
    with serve(tmp_path, "--routes", str(routes), "--access-log", str(access),
               "--access-log-format", "combined") as proc:
        port = proc.port()
        status, body = get(port, "GET", "/c/env?x=1")
        assert status == 200 and b"GREETING=hi\n" in body and b"QUERY_STRING=x=1\n" in body
        assert get(port, "POST", "/zig/p", b"a\nb")[1] == b"zig POST /zig|/p?\nbody 3 bytes, first line: a\n"
        assert get(port, "GET", "/lua/x?k=v")[1].startswith(b"lua Lua 5.4 GET /lua/x\nquery k=v\n")
        assert get(port, "GET", "/elsewhere")[0] == 404
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(10) == 0
    log = proc.log
    assert "handler mode: 3 route(s): /c/... -> cgi_tour.wasm, /zig/... -> zig_hello.wasm, /lua/... -> lua" in log
    assert "SIGTERM: shutting down gracefully" in log and "stopped" in log
    lines = access.read_text().splitlines()
    assert len(lines) == 4 and lines[0].endswith('"GET /c/env?x=1 HTTP/1.1" 200 ' + lines[0].split()[-3] + ' "-" "-"')
    assert ' 404 ' in lines[3]


def test_handler_flag_serves_every_path(tmp_path):
    with serve(tmp_path, "--handler", str(HANDLERS / "cgi_tour.wasm"), "--env", "A=1",
               "--max-concurrency", "2", "--access-log", "-") as proc:
        port = proc.port()
        status, body = get(port, "GET", "/env")
        assert status == 200 and b"A=1\n" in body and b"SCRIPT_NAME=\n" in body and b"PATH_INFO=/env\n" in body
        proc.wait_for(r'"GET /env HTTP/1.1" 200 \d+')
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(10) == 0


def _run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    import sys

    saved, sys.stderr = sys.stderr, err
    try:
        status = cli.main(["serve", *argv], stdout=io.StringIO(), stderr=err)
    finally:
        sys.stderr = saved
    return status, err.getvalue()


@pytest.mark.parametrize("text, message", [
    ('[[route]]\npath = "/a"\nmodule = "{tour}"\nfuel = "lots"\n', "route 1 (/a): key 'fuel'"),
    ('[[route]]\npath = "/a"\nmodule = "nope.wasm"\n', "route 1 (/a): key 'module'"),
    ('[[route]]\npath = "/a"\nmodule = "{tour}"\nspeed = 3\n', "route 1 (/a): unknown key 'speed'"),
])
def test_a_bad_routes_file_is_one_line_and_exit_2(tmp_path, text, message):
    routes = tmp_path / "routes.toml"
    routes.write_text(text.format(tour=HANDLERS / "cgi_tour.wasm"))
    status, err = _run("--routes", str(routes))
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"error: {routes}: {message}" in lines[0]


def test_a_handler_that_cannot_start_is_reported_at_once(tmp_path):
    with serve(tmp_path, "--handler", str(HANDLERS / "cgi_tour.wasm"), "--max-memory", "1MiB") as proc:
        assert proc.popen.wait(30) == 1
    assert "error: cannot run a handler: memory 0 needs 258 pages, above the limit of 16 pages" in proc.log


def test_handler_mode_usage_errors():
    status, err = _run("--handler", "/nonexistent/app.wasm")
    assert status == 2 and "--handler: key 'module': /nonexistent/app.wasm" in err
    status, err = _run("extra.wasm", "--handler", str(HANDLERS / "minimal.wasm"))
    assert status == 2 and "not as MODULE" in err
    status, err = _run("--routes", "a.toml", "--handler", "b.wasm")
    assert status == 2 and "not allowed with argument" in err

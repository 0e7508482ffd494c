"""asyncwasm.hostnet: listen addresses, listeners and the fd limit, shared by
``run`` and ``serve`` (which must not lean on each other for them)."""

from __future__ import annotations

import ast
import os
import pathlib
import resource
import socket
import subprocess
import sys

import pytest

from asyncwasm import hostnet

PACKAGE = pathlib.Path(hostnet.__file__).resolve().parent


def test_parse_and_format_addresses():
    assert hostnet.parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert hostnet.parse_address("[::1]:0") == ("::1", 0)
    assert hostnet.parse_address("localhost:65535") == ("localhost", 65535)
    for bad in ("nonsense", ":80", "127.0.0.1:", "1.2.3.4:65536", "::1:80", "[::1]80", "[::1]:x"):
        with pytest.raises(ValueError, match="bad address"):
            hostnet.parse_address(bad)
    assert hostnet.format_address(("::1", 80, 0, 0)) == "[::1]:80"
    assert hostnet.format_address(("10.0.0.1", 443)) == "10.0.0.1:443"


def test_open_listener_binds_a_free_port():
    sock = hostnet.open_listener("127.0.0.1", 0, backlog=16)
    with sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        port = sock.getsockname()[1]
        assert port > 0
        with pytest.raises(OSError):
            hostnet.open_listener("127.0.0.1", port)  # taken


def test_raise_fd_limit_goes_to_the_hard_limit():
    # In a child: the test process keeps its own limit.
    code = ("import resource; from asyncwasm import hostnet\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
            "before, after = hostnet.raise_fd_limit()\n"
            "print(before, after, hostnet.fd_limit(), hard)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    before, after, now, hard = map(int, out.stdout.split())
    assert before == min(256, hard)
    assert now == after
    if hard != resource.RLIM_INFINITY:
        assert after == hard


def _imported_modules(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_serving_layer_does_not_lean_on_the_run_command():
    for path in sorted((PACKAGE / "serve").glob("*.py")):
        imported = _imported_modules(path)
        assert "..run" not in imported and "asyncwasm.run" not in imported, path.name


def test_usable_cpus_follow_the_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert hostnet.usable_cpus(str(tmp_path)) == affinity
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: two workers
    assert hostnet.usable_cpus(str(tmp_path)) == min(affinity, 2)
    (tmp_path / "cpu.max").write_text("10000 100000\n")
    assert hostnet.usable_cpus(str(tmp_path)) == 1
    assert hostnet.usable_cpus(str(tmp_path / "missing")) == affinity


def test_asyncwasm_run_raises_the_soft_fd_limit(tmp_path):
    import re
    import time

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"needs a finite hard limit above 256, not {hard}")
    server = PACKAGE.parent / "netmods" / "http_server" / "http_server.wasm"
    log = tmp_path / "run.log"
    with open(log, "wb") as err:
        popen = subprocess.Popen([sys.executable, "-m", "asyncwasm", "run", "--listen", "127.0.0.1:0", str(server)],
                                 stdout=subprocess.DEVNULL, stderr=err, cwd=PACKAGE.parent,
                                 preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)))
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in log.read_text():
            assert popen.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        with open(f"/proc/{popen.pid}/limits") as f:
            assert re.search(rf"Max open files\s+{hard}\s+{hard}", f.read())
    finally:
        popen.kill()
        popen.wait(10)

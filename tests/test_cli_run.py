"""``asyncwasm run``: flags, sandbox, limits and exit codes.

Most tests run the real command as a subprocess (``python -m asyncwasm
run ...``, always with a timeout); some call :func:`asyncwasm.cli.main`
in-process. Guests: the C programs in tests/guests/ and small WAT modules
written here.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from asyncwasm import cli, run

from .guests import build as guest_build
from .wat import wat

REPO = Path(__file__).resolve().parents[1]
GUESTS = REPO / "tests" / "guests"
HTTP_SERVER = REPO / "netmods" / "http_server" / "http_server.wasm"
RUN_TIMEOUT = 60  # seconds for any one subprocess; no test should come near it

# -- guests written here -------------------------------------------------------

SPINNER = """
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop (br 0))))
"""

TRAPPER = """
(module
  (memory (export "memory") 1)
  (func $deep (export "deep") unreachable)
  (func (export "_start") call $deep))
"""

# _start grows memory by 20 pages; exit 3 if memory.grow failed, 4 if it worked.
GROWER = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 20)) (i32.const -1))
      (then (call $exit (i32.const 3)))
      (else (call $exit (i32.const 4))))))
"""

# A reactor: _initialize sets $ready, the exports compute.
REACTOR = """
(module
  (memory (export "memory") 1)
  (global $ready (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $ready (i32.const 7)))
  (func (export "ready") (result i32) global.get $ready)
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "wide") (param i64 f64) (result f64 i64 f32)
    (f64.mul (local.get 1) (f64.const 2))
    (i64.mul (local.get 0) (i64.const 3))
    (f32.const 0.5))
  (func (export "nothing")))
"""

LIBRARY = """
(module
  (func (export "answer") (result i32) i32.const 42))
"""

UNLINKABLE = """
(module
  (import "env" "missing" (func))
  (func (export "_start")))
"""


@pytest.fixture
def wasm(tmp_path: Path):
    """``wasm(name, text)`` writes the WAT module ``text`` as ``name.wasm``."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / f"{name}.wasm"
        path.write_bytes(wat(text))
        return path

    return write


def run_cli(*args: object, stdin: Optional[bytes] = None, cwd: Optional[Path] = None,
            env: Optional[dict] = None, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """``python -m asyncwasm run ARGS`` as a subprocess; bytes out."""
    return subprocess.run(
        [sys.executable, "-m", "asyncwasm", "run", *map(str, args)],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        cwd=cwd or REPO,
        env=_child_env(env),
        timeout=timeout,
    )


def _child_env(env: Optional[dict] = None) -> dict:
    """``env`` (default: ours) with this checkout first on PYTHONPATH."""
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return full_env


def run_inprocess(*args: object) -> tuple[int, str, str]:
    """``cli.main(["run", ...])`` with its own output captured (the guest's
    stdio is the process's, see capfd)."""
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["run", *map(str, args)], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


# -- exit codes -------------------------------------------------------------------


def test_exit_code_of_the_guest() -> None:
    for code in (0, 3, 255):
        proc = run_cli(GUESTS / "exit_code.wasm", code)
        assert proc.returncode == code, proc.stderr
        assert proc.stdout == b"exiting\n"


def test_exit_code_out_of_shell_range_becomes_1() -> None:
    # 256 would read as 0 to a shell: a failure must never look like success.
    proc = run_cli(GUESTS / "exit_code.wasm", 256)
    assert proc.returncode == 1 and proc.stdout == b"exiting\n"


def test_normal_return_is_0(wasm) -> None:
    proc = run_cli(wasm("nothing", '(module (memory (export "memory") 1) (func (export "_start")))'))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_trap_exits_1_with_one_line(wasm) -> None:
    proc = run_cli(wasm("trap", TRAPPER))
    assert proc.returncode == 1 and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("asyncwasm: error: guest trapped: unreachable")


def test_uncaught_wasm_exception_exits_1_with_one_line(wasm) -> None:
    thrower = '(module (memory (export "memory") 1) (tag $e (param i32)) (func (export "_start") (throw $e (i32.const 7))))'
    status, out, err = run_inprocess(wasm("throw", thrower))
    assert status == 1 and out == ""
    assert err.startswith("asyncwasm: error: uncaught Wasm exception of <asyncwasm.Tag tag [i32]") and err.count("\n") == 1
    assert "values (7,)" in err


def test_timeout_stops_a_spinning_guest_with_124(wasm) -> None:
    started = time.monotonic()
    proc = run_cli("--timeout", "0.5", wasm("spin", SPINNER))
    assert proc.returncode == 124
    assert proc.stderr.decode() == "asyncwasm: error: timed out after 0.5 seconds (--timeout)\n"
    assert time.monotonic() - started < RUN_TIMEOUT / 2


def test_fuel_exhaustion_exits_1_with_message(wasm) -> None:
    status, out, err = run_inprocess("--fuel", "100000", wasm("spin", SPINNER))
    assert status == 1 and out == ""
    assert err.startswith("asyncwasm: error: fuel exhausted")
    assert "100000 units of --fuel" in err and err.count("\n") == 1


def test_enough_fuel_lets_the_guest_finish() -> None:
    proc = run_cli("--fuel", "10000000", GUESTS / "exit_code.wasm", 5)
    assert proc.returncode == 5, proc.stderr


def test_missing_file_exits_1(tmp_path: Path) -> None:
    status, out, err = run_inprocess(tmp_path / "nope.wasm")
    assert status == 1 and out == ""
    assert err == f"asyncwasm: error: {tmp_path / 'nope.wasm'}: No such file or directory\n"


def test_bad_module_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.wasm"
    path.write_bytes(b"\0asm\x01\0\0\0\x01\xff")
    status, _, err = run_inprocess(path)
    assert status == 1 and err.startswith(f"asyncwasm: error: {path}: not a valid module:")


def test_link_error_exits_1(wasm) -> None:
    status, _, err = run_inprocess(wasm("unlinkable", UNLINKABLE))
    assert status == 1 and "cannot instantiate" in err and '"env"."missing"' in err


def test_module_without_start_says_use_invoke(wasm) -> None:
    status, _, err = run_inprocess(wasm("lib", LIBRARY))
    assert status == 1
    assert "library module has no _start" in err and "--invoke" in err and "answer" in err


def test_missing_preopen_directory_exits_1(tmp_path: Path) -> None:
    status, _, err = run_inprocess("--dir", tmp_path / "absent", GUESTS / "preopens.wasm")
    assert status == 1 and "absent: not a directory" in err


@pytest.mark.parametrize("flags, message", [
    (["--fuel", "lots"], "argument --fuel: 'lots' is not an integer"),
    (["--fuel", "-5"], "argument --fuel: '-5' must be >= 0"),
    (["--timeout", "0"], "argument --timeout: '0' must be a positive number of seconds"),
    (["--max-memory", "12XB"], "argument --max-memory: bad size '12XB'"),
    (["--dir", "::guest"], "argument --dir: bad directory '::guest'"),
    (["--env", "=x"], "argument --env: bad environment variable '=x'"),
    (["--listen", "localhost"], "argument --listen: bad address 'localhost'"),
    (["--allow-connect", "10.0.0.0/8:99999"], "argument --allow-connect: port range '99999'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ([], "the following arguments are required: FILE"),
])
def test_bad_flags_exit_2(flags: list, message: str) -> None:
    status, out, err = run_inprocess(*flags, *([] if not flags or flags[0] == "--no-such-flag" else ["x.wasm"]))
    assert status == 2 and out == ""
    assert err.startswith("usage: asyncwasm run") and message in err


def test_bad_flag_exits_2_from_the_shell() -> None:
    proc = run_cli("--max-memory", "lots", "x.wasm")
    assert proc.returncode == 2 and b"bad size 'lots'" in proc.stderr


def test_help_is_complete() -> None:
    status, out, _ = run_inprocess("--help")
    assert status == 0
    for flag in ("--dir", "--ro-dir", "--env", "--inherit-env", "--argv0", "--invoke", "--fuel", "--timeout",
                 "--max-memory", "--stats", "--listen", "--allow-connect", "--allow-listen", "--allow-dns"):
        assert flag in out
    assert "exit status" in out and "124" in out and "examples:" in out


# -- arguments, environment ----------------------------------------------------------


def test_args_argv0_and_options_after_file_go_to_the_guest() -> None:
    proc = run_cli(GUESTS / "args_env.wasm", "one", "--dir", "-x")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[:5] == ["argc=4", "argv[0]=args_env.wasm", "argv[1]=one", "argv[2]=--dir", "argv[3]=-x"]
    assert not any(line.startswith("env:") for line in lines)  # nothing inherited by default

    proc = run_cli("--argv0", "prog", GUESTS / "args_env.wasm")
    assert proc.stdout.decode().splitlines()[:2] == ["argc=1", "argv[0]=prog"]


def test_env_flags() -> None:
    host_env = dict(os.environ, FROM_HOST="host value", SECRET="s3cret")
    proc = run_cli("--env", "GREETING=hi there", "--env", "FROM_HOST", "--env", "UNSET_ON_HOST",
                   "--env", "EMPTY=", GUESTS / "args_env.wasm", env=host_env)
    assert proc.returncode == 0, proc.stderr
    env_lines = [line for line in proc.stdout.decode().splitlines() if line.startswith("env:")]
    assert env_lines == ["env:GREETING=hi there", "env:FROM_HOST=host value", "env:EMPTY="]
    assert "GREETING=hi there" in proc.stdout.decode().splitlines()


def test_inherit_env_with_override() -> None:
    host_env = dict(os.environ, FROM_HOST="host value", GREETING="from host")
    proc = run_cli("--inherit-env", "--env", "GREETING=override", GUESTS / "args_env.wasm", env=host_env)
    env_lines = set(line for line in proc.stdout.decode().splitlines() if line.startswith("env:"))
    assert "env:FROM_HOST=host value" in env_lines and "env:GREETING=override" in env_lines
    assert "env:GREETING=from host" not in env_lines
    assert len(env_lines) >= len(host_env)


# -- stdio -----------------------------------------------------------------------


def test_stdin_stdout_stderr_are_the_hosts() -> None:
    proc = run_cli(GUESTS / "stdio.wasm", "upper", stdin=b"hello, wasm\n")
    assert proc.returncode == 0
    assert (proc.stdout, proc.stderr) == (b"HELLO, WASM\n", b"read 12 bytes\n")


def test_interactive_stdin_is_served_as_it_arrives() -> None:
    # The guest answers each chunk while stdin stays open: a read on an
    # empty pipe waits for data instead of needing end of file.
    proc = subprocess.Popen([sys.executable, "-m", "asyncwasm", "run", str(GUESTS / "stdio.wasm"), "upper"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env=_child_env())
    try:
        deadline = time.monotonic() + 30
        for chunk in (b"first line\n", b"second\n"):
            proc.stdin.write(chunk)
            proc.stdin.flush()
            assert _read_line(proc.stdout, deadline) == chunk.upper()
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read() == b"read 18 bytes\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_stdio_kinds_are_reported_as_they_are(tmp_path: Path) -> None:
    # stdin a regular file (4), stdout a pipe (UNKNOWN 0), stderr a regular file.
    stdin = tmp_path / "in.txt"
    stdin.write_bytes(b"x")
    with open(stdin, "rb") as fin, open(tmp_path / "err.txt", "wb") as ferr:
        proc = subprocess.run([sys.executable, "-m", "asyncwasm", "run", str(GUESTS / "stdio.wasm"), "kinds"],
                              stdin=fin, stdout=subprocess.PIPE, stderr=ferr, cwd=REPO, env=_child_env(),
                              timeout=RUN_TIMEOUT)
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines() == [
        "fd0 err=0 type=4 tty=0", "fd1 err=0 type=0 tty=0", "fd2 err=0 type=4 tty=0"]


def test_a_terminal_is_a_character_device() -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "asyncwasm", "run", str(GUESTS / "stdio.wasm"), "kinds"],
                              stdin=terminal, stdout=subprocess.PIPE, stderr=terminal, cwd=REPO,
                              env=_child_env(), timeout=RUN_TIMEOUT)
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == 0
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "fd0 err=0 type=2 tty=1" and lines[2] == "fd2 err=0 type=2 tty=1"


# -- directories --------------------------------------------------------------------


def test_preopens_in_command_line_order_then_listeners(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    proc = run_cli("--dir", "a::/data", "--ro-dir", "b", "--listen", "127.0.0.1:0", "--dir", "c::/c",
                   "--ro-dir", ".::/here", GUESTS / "preopens.wasm", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [
        "fd 3: dir /data (read-write)",
        "fd 4: dir b (read-only)",
        "fd 5: dir /c (read-write)",
        "fd 6: dir /here (read-only)",
        "fd 7: socket-stream",
    ]
    assert re.fullmatch(r"asyncwasm: listening on 127\.0\.0\.1:\d+\n", proc.stderr.decode())


def _squash_dirs(tmp_path: Path) -> tuple[Path, Path]:
    source, output = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    output.mkdir()
    (source / "text.txt").write_bytes(b"to be or not to be, " * 500)
    return source, output


def test_dir_mapping_reads_and_writes_host_files(tmp_path: Path) -> None:
    source, output = _squash_dirs(tmp_path)
    proc = run_cli("--ro-dir", f"{source}::/in", "--dir", f"{output}::/out",
                   GUESTS / "squash.wasm", "c", "/in/text.txt", "/out/text.sqz")
    assert proc.returncode == 0, proc.stderr
    packed = (output / "text.sqz").read_bytes()
    assert packed.startswith(b"SQZ1") and len(packed) < 1000
    proc = run_cli("--dir", f"{output}::/out", GUESTS / "squash.wasm", "d", "/out/text.sqz", stdin=b"")
    assert proc.returncode == 0 and proc.stdout == (source / "text.txt").read_bytes()


def test_ro_dir_refuses_writes_and_leaves_host_files_alone(tmp_path: Path) -> None:
    source, output = _squash_dirs(tmp_path)
    (output / "keep.sqz").write_bytes(b"old contents")
    before = sorted(p.name for p in output.iterdir())
    for target in ("/out/new.sqz", "/out/keep.sqz"):
        proc = run_cli("--ro-dir", f"{source}::/in", "--ro-dir", f"{output}::/out",
                       GUESTS / "squash.wasm", "c", "/in/text.txt", target)
        assert proc.returncode == 1
        assert proc.stderr.decode().startswith(f"squash: {target}: ")
    assert sorted(p.name for p in output.iterdir()) == before
    assert (output / "keep.sqz").read_bytes() == b"old contents"


def test_paths_outside_preopens_are_unreachable(tmp_path: Path) -> None:
    source, _ = _squash_dirs(tmp_path)
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    for path in ("/in/../secret.txt", str(outside), "../secret.txt"):
        proc = run_cli("--ro-dir", f"{source}::/in", GUESTS / "squash.wasm", "c", path)
        assert proc.returncode == 1 and proc.stdout == b""
        assert proc.stderr.startswith(f"squash: {path}: ".encode())


# -- --invoke ---------------------------------------------------------------------


def test_invoke_runs_initialize_then_prints_results(wasm) -> None:
    reactor = wasm("reactor", REACTOR)
    assert run_inprocess("--invoke", "ready", reactor)[:2] == (0, "7\n")
    assert run_inprocess("--invoke", "add", reactor, "40", "2")[:2] == (0, "42\n")
    assert run_inprocess("--invoke", "add", reactor, "0x7fffffff", "1")[:2] == (0, "-2147483648\n")
    assert run_inprocess("--invoke", "wide", reactor, "-5", "1.25")[:2] == (0, "2.5\n-15\n0.5\n")
    assert run_inprocess("--invoke", "nothing", reactor) == (0, "", "")


def test_invoke_from_the_shell_with_negative_arguments(wasm) -> None:
    proc = run_cli("--invoke", "add", wasm("reactor", REACTOR), "-50", "8")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"-42\n", b"")


def test_invoke_a_library_function(wasm) -> None:
    assert run_inprocess("--invoke", "answer", wasm("lib", LIBRARY)) == (0, "42\n", "")


@pytest.mark.parametrize("args, message", [
    (["add", "1"], "'add' takes 2 argument(s) (func [i32 i32] -> [i32]), 1 given"),
    (["add", "1", "two"], "argument 2 of 'add' (i32): 'two' is not an integer"),
    (["add", "1", "4294967296"], "argument 2 of 'add' (i32): '4294967296' does not fit in i32"),
    (["nope"], "no exported function 'nope'"),
])
def test_invoke_errors_exit_1(wasm, args: list, message: str) -> None:
    status, out, err = run_inprocess("--invoke", args[0], wasm("reactor", REACTOR), *args[1:])
    assert status == 1 and out == "" and message in err


def test_invoke_args_parse_by_type() -> None:
    from asyncwasm import F32, F64, I32, I64, FuncType

    functype = FuncType([I32, I64, F32, F64], [])
    assert run.parse_invoke_args("f", functype, ["0xffffffff", "-1", "nan", "-inf"])[:2] == [-1, -1]
    assert run.parse_invoke_args("f", functype, ["1", "18446744073709551615", "1e3", "0.1"]) == [1, -1, 1000.0, 0.1]


# -- limits and stats ------------------------------------------------------------------


def test_max_memory_makes_memory_grow_fail(wasm) -> None:
    grower = wasm("grow", GROWER)
    assert run_cli(grower).returncode == 4
    assert run_cli("--max-memory", "1MiB", grower).returncode == 3  # 16 pages < 21
    assert run_cli("--max-memory", str(21 * 65536), grower).returncode == 4
    assert run_cli("--max-memory", str(21 * 65536 - 1), grower).returncode == 3  # rounded down


def test_max_memory_below_the_modules_minimum_fails_to_start(wasm) -> None:
    status, _, err = run_inprocess("--max-memory", "0", wasm("grow", GROWER))
    assert status == 1 and err.startswith("asyncwasm: error:") and err.count("\n") == 1


def test_sizes() -> None:
    assert [run.parse_size(s) for s in ("65536", "64KiB", "64k", "16MiB", "16MB", "1GiB", "1g")] == [
        65536, 65536, 65536, 16 << 20, 16 << 20, 1 << 30, 1 << 30]
    assert run.size_to_pages(100_000) == 1
    assert run.size_to_pages(8 << 30) == 1 << 17  # above 4 GiB: a cap for memory64 memories
    with pytest.raises(ValueError, match="more than a memory can hold"):
        run.size_to_pages(1 << 64 | 1 << 16)


def test_stats_go_to_stderr() -> None:
    proc = run_cli("--stats", GUESTS / "stdio.wasm", "upper", stdin=b"abc")
    assert proc.returncode == 0 and proc.stdout == b"ABC"
    err = proc.stderr.decode()
    assert err.startswith("read 3 bytes\n")
    instructions = int(re.search(r"stats: instructions \(fuel used\) (\d+)", err).group(1))
    host_calls = int(re.search(r"stats: host calls (\d+)", err).group(1))
    assert instructions > 1000 and host_calls >= 4  # args, fdstat, reads, writes
    assert re.search(r"stats: time [0-9.]+ s wall", err)


def test_stats_are_printed_after_a_trap_too(wasm) -> None:
    status, _, err = run_inprocess("--stats", wasm("trap", TRAPPER))
    assert status == 1 and "guest trapped" in err and "stats: instructions" in err


# -- network ------------------------------------------------------------------------


def _read_line(stream, deadline: float) -> bytes:
    """One line from a subprocess pipe, waiting at most until ``deadline``."""
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
            raise TimeoutError(f"no line from the subprocess in time (got {line!r})")
        byte = os.read(stream.fileno(), 1)
        if not byte:
            raise EOFError(f"subprocess closed its output (got {line!r})")
        line += byte
    return line


def test_listen_serves_http_from_the_guest() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncwasm", "run", "--listen", "127.0.0.1:0", str(HTTP_SERVER)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=_child_env())
    try:
        line = _read_line(proc.stderr, time.monotonic() + 30).decode()
        match = re.fullmatch(r"asyncwasm: listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        port = int(match.group(1))
        for method, path, body, expected in [("GET", "/", None, b"hello"), ("POST", "/echo", b"ping", b"ping")]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request(method, path, body=body)
                response = conn.getresponse()
                assert response.status == 200
                assert response.read().startswith(expected)
            finally:
                conn.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_listen_on_a_busy_port_exits_1() -> None:
    sock = run.open_listener("127.0.0.1", 0)
    try:
        host, port = sock.getsockname()
        status, _, err = run_inprocess("--listen", f"{host}:{port}", GUESTS / "preopens.wasm")
        assert status == 1 and err.startswith(f"asyncwasm: error: --listen {host}:{port}:")
    finally:
        sock.close()


def test_allow_connect_opens_the_policy_for_a_client() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"you asked for {self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        client = REPO / "netmods" / "http_client" / "http_client.wasm"
        url = f"http://127.0.0.1:{port}/page"
        denied = run_cli("--timeout", "20", client, url)
        assert denied.returncode == 1 and denied.stdout == b""
        assert f"asyncwasm: guest sock_connect denied by the network policy: 127.0.0.1 port {port}" in (
            denied.stderr.decode())
        wrong_port = run_cli("--timeout", "20", "--allow-connect", f"127.0.0.1:{port + 1 if port < 65535 else 1}",
                             client, url)
        assert wrong_port.returncode == 1
        allowed = run_cli("--timeout", "20", "--allow-connect", f"127.0.0.0/8:{port}", client, url)
        assert allowed.returncode == 0, allowed.stderr
        assert allowed.stdout == b"you asked for /page\n"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_addresses() -> None:
    assert run.parse_address("127.0.0.1:80") == ("127.0.0.1", 80)
    assert run.parse_address("[::1]:8080") == ("::1", 8080)
    for bad in ("::1:80", "127.0.0.1", "host:99999", "[::1]80", ":80"):
        with pytest.raises(ValueError):
            run.parse_address(bad)


# -- the larger program: squash, native vs Wasm -----------------------------------------

def _corpus(directory: Path) -> list[str]:
    """Deterministic inputs: text, binary, empty, highly repetitive, source code."""
    import random

    rng = random.Random(5)
    words = ["wasm", "trio", "async", "fiber", "suspend", "resume", "the", "of", "a", "sandbox", "preopen"]
    files = {
        "words.txt": " ".join(rng.choice(words) for _ in range(20000)).encode(),
        "random.bin": bytes(rng.randrange(256) for _ in range(40000)),
        "empty": b"",
        "zeros.bin": bytes(70000),
        "squash.c": (GUESTS / "squash.c").read_bytes(),
        "skewed.bin": bytes(rng.choice(b"aaaaaaaabbbbccd\n") for _ in range(30000)),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return sorted(files)


@pytest.fixture(scope="module")
def native_squash(tmp_path_factory) -> Path:
    if guest_build.native_compiler() is None:
        pytest.skip("gcc is not installed: cannot build the native squash to compare with the Wasm build")
    return guest_build.build_native("squash", tmp_path_factory.mktemp("native") / "squash")


def _both(native: Path, tmp_path: Path, args: list[str], stdin: bytes = b"", chain: Optional[str] = None
          ) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """Run squash natively (cwd = tmp_path/native) and as Wasm (tmp_path/wasm
    preopened as "."), each on its own copy of the files."""
    env = dict(os.environ)
    env.pop("SQUASH_CHAIN", None)
    wasm_flags = ["--dir", "."]
    if chain is not None:
        env["SQUASH_CHAIN"] = chain
        wasm_flags += ["--env", f"SQUASH_CHAIN={chain}"]
    native_proc = subprocess.run([str(native), *args], input=stdin, capture_output=True, cwd=tmp_path / "native",
                                 env=env, timeout=RUN_TIMEOUT)
    wasm_proc = run_cli(*wasm_flags, "--argv0", "squash", GUESTS / "squash.wasm", *args, stdin=stdin,
                        cwd=tmp_path / "wasm", env=env)
    return native_proc, wasm_proc


def _same(native_proc: subprocess.CompletedProcess, wasm_proc: subprocess.CompletedProcess) -> None:
    assert wasm_proc.returncode == native_proc.returncode, wasm_proc.stderr
    assert wasm_proc.stdout == native_proc.stdout
    assert wasm_proc.stderr == native_proc.stderr


def test_squash_wasm_matches_native_byte_for_byte(native_squash: Path, tmp_path: Path) -> None:
    for side in ("native", "wasm"):
        (tmp_path / side).mkdir()
        names = _corpus(tmp_path / side)

    # Round-trip summary of every file (stdout).
    _same(*_both(native_squash, tmp_path, ["t", *names]))

    # Compress each file to a file in the preopen, then decompress it back.
    for name in names:
        _same(*_both(native_squash, tmp_path, ["c", name, name + ".sqz"]))
        _same(*_both(native_squash, tmp_path, ["d", name + ".sqz", name + ".out"]))
    for name in names:
        packed = (tmp_path / "wasm" / (name + ".sqz")).read_bytes()
        assert packed == (tmp_path / "native" / (name + ".sqz")).read_bytes()
        assert (tmp_path / "wasm" / (name + ".out")).read_bytes() == (tmp_path / "wasm" / name).read_bytes()

    # stdin -> stdout, with another search depth from the environment.
    data = (tmp_path / "wasm" / "words.txt").read_bytes()
    native_proc, wasm_proc = _both(native_squash, tmp_path, ["c"], stdin=data, chain="4")
    _same(native_proc, wasm_proc)
    _same(*_both(native_squash, tmp_path, ["d"], stdin=wasm_proc.stdout))

    # Errors: corrupt input, missing file, bad usage, bad environment.
    _same(*_both(native_squash, tmp_path, ["d", "squash.c"]))
    _same(*_both(native_squash, tmp_path, ["d"], stdin=wasm_proc.stdout[:200]))
    _same(*_both(native_squash, tmp_path, ["c", "no-such-file"]))
    _same(*_both(native_squash, tmp_path, ["x"]))
    _same(*_both(native_squash, tmp_path, ["t", "empty"], chain="0"))


# -- the Python API --------------------------------------------------------------------


def test_run_command_from_python_with_captured_stdio(tmp_path: Path) -> None:
    data = b"abracadabra " * 1000
    packed = bytearray()
    config = run.RunConfig(str(GUESTS / "squash.wasm"), args=["c"], stdin=data, stdout=packed, stderr=None)
    assert run.run_command(config) == 0
    assert packed.startswith(b"SQZ1") and len(packed) < len(data) // 10

    (tmp_path / "in.sqz").write_bytes(packed)
    unpacked = bytearray()
    config = run.RunConfig(str(GUESTS / "squash.wasm"), args=["d", "/data/in.sqz"], stdin=None, stdout=unpacked)
    config.preopen(str(tmp_path), "/data", readonly=True)
    assert run.run_command(config) == 0
    assert unpacked == data


async def test_run_async_inside_trio() -> None:
    out, err = io.StringIO(), io.StringIO()
    captured = bytearray()
    config = run.RunConfig(str(GUESTS / "exit_code.wasm"), args=["7"], stdout=captured, stats=True)
    assert await run.run_async(config, out, err) == 7
    assert captured == b"exiting\n" and out.getvalue() == ""
    assert "stats: host calls" in err.getvalue()

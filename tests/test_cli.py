"""The asyncwasm command line, run in-process through cli.main."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import asyncwasm
from asyncwasm import cli

from .wat import custom_section, wat

COMMAND = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "env" "table" (table 1 funcref))
  (memory (export "memory") 2)
  (global (export "g") (mut i64) (i64.const 0))
  (func (export "_start")))
"""


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def command_wasm(tmp_path: Path) -> Path:
    path = tmp_path / "app.wasm"
    path.write_bytes(wat(COMMAND) + custom_section("producers", b"x" * 10) + custom_section("meta", b""))
    return path


def test_inspect_prints_kind_imports_exports_and_sections(command_wasm: Path) -> None:
    status, out, err = _run("inspect", str(command_wasm))
    assert (status, err) == (0, "")
    assert out == (
        f"{command_wasm}: command module\n"
        "imports (2):\n"
        "  wasi_snapshot_preview1.fd_write: func [i32 i32 i32 i32] -> [i32]\n"
        "  env.table: table 1 funcref\n"
        "exports (3):\n"
        "  memory: memory 2\n"
        "  g: global mut i64\n"
        "  _start: func [] -> []\n"
        "custom sections (2):\n"
        "  producers: 10 bytes\n"
        "  meta: 0 bytes\n"
    )


def test_inspect_library_without_sections(tmp_path: Path) -> None:
    path = tmp_path / "lib.wasm"
    path.write_bytes(wat('(module (func) (export "f" (func 0)) (start 0))'))
    status, out, _ = _run("inspect", str(path))
    assert status == 0
    assert out.splitlines()[:2] == [f"{path}: library module", "start function: 0"]
    assert out.endswith("custom sections (0):\n")


def test_inspect_malformed_file_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.wasm"
    path.write_bytes(b"\x00asm\x02\x00\x00\x00")
    status, out, err = _run("inspect", str(path))
    assert status == 1 and out == ""
    assert err.startswith(f"asyncwasm: error: {path}: not a valid module: unknown binary version")
    assert "offset 0x4" in err


def test_inspect_invalid_file_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "invalid.wasm"
    path.write_bytes(wat("(module (func (result i32) i64.const 0))"))
    status, _, err = _run("inspect", str(path))
    assert status == 1 and "type mismatch" in err


def test_inspect_missing_file_exits_1(tmp_path: Path) -> None:
    status, _, err = _run("inspect", str(tmp_path / "nope.wasm"))
    assert status == 1 and "nope.wasm" in err and "No such file" in err


def test_no_command_is_a_usage_error() -> None:
    status, out, err = _run()
    assert status == 2 and out == ""
    assert err.startswith("usage: asyncwasm") and "required: COMMAND" in err


def test_unknown_command_is_a_usage_error() -> None:
    status, _, err = _run("frobnicate")
    assert status == 2 and "invalid choice: 'frobnicate'" in err


def test_help_goes_to_stdout() -> None:
    status, out, err = _run("--help")
    assert (status, err) == (0, "")
    assert "inspect" in out and out.startswith("usage: asyncwasm")


def test_version() -> None:
    status, out, _ = _run("--version")
    assert (status, out) == (0, f"asyncwasm {asyncwasm.__version__}\n")


def test_python_dash_m_is_the_same_program(command_wasm: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "asyncwasm", "inspect", str(command_wasm)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _run("inspect", str(command_wasm))[1]


def test_serve_is_listed_but_loaded_only_when_run() -> None:
    code = (
        "import io, sys\n"
        "from asyncwasm import cli\n"
        "status = cli.main(['--help'], stdout=io.StringIO())\n"
        "print(status, 'asyncwasm.serve.cli' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout == "0 False\n", proc.stderr
    status, out, _ = _run("--help")
    assert "serve" in out and "run" in out


def test_serve_missing_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "SERVE_MODULE", "asyncwasm.no_such_serve_module")
    status, out, err = _run("serve", "--listen", "127.0.0.1:0")
    assert status == 1 and out == ""
    assert err.startswith("asyncwasm: error: the serve command is not available in this installation")
    assert "No module named 'asyncwasm.no_such_serve_module'" in err


def test_serve_without_its_entry_points_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "SERVE_MODULE", "asyncwasm.run")  # a module without add_arguments/main
    status, _, err = _run("serve")
    assert status == 1 and "does not define add_arguments and main()" in err


def test_unknown_option_shows_the_subcommands_usage(command_wasm: Path) -> None:
    status, _, err = _run("inspect", "--frob", str(command_wasm))
    assert status == 2 and err.startswith("usage: asyncwasm inspect") and "unrecognized arguments: --frob" in err

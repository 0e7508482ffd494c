"""Guests built by real toolchains' standard libraries run unchanged.

- ``zig/ztour.zig``: Zig's std (``std.process.Init`` args and environ map,
  ``Io.Dir`` create/write/read/rename/delete/iterate, a directory handle with
  copy/symlink/hard link/timestamps/walk/deleteTree, ``Io.File`` readers and
  writers on stdio, clocks and sleep, ``Io.random``/``randomSecure``, exit
  code, ``@panic``).
- ``rust/rtour.rs``: Rust's std (``env::args``/``vars``, ``fs`` including
  copy/hard_link/remove_dir_all, ``stdin().lines()``, ``Instant``/``SystemTime``,
  ``process::exit``, a panic).

Each runs through ``asyncwasm run`` (a subprocess, so stdout is a pipe) and
through the Python API (stdout a bytearray), each in its own temporary
preopen, and is compared with the *same source* built natively at test time:
stdout, stderr, exit code and every file left in the directory. A native
build that cannot be made (toolchain missing) skips with the reason. The
prebuilt .wasm files are committed (``python tests/guests/build.py`` rebuilds
them; see tests/guests/README.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import trio

import asyncwasm
from asyncwasm import Linker, Module, WasiConfig
from asyncwasm.wasi import Errno, Rights
from asyncwasm.wasi import abi as wasi_abi

from .guests import build as guest_build
from .guests.harness import FakeGuest

REPO = Path(__file__).resolve().parents[1]
GUESTS = REPO / "tests" / "guests"
ZTOUR = GUESTS / "zig" / "ztour.wasm"
RTOUR = GUESTS / "rust" / "rtour.wasm"
TIMEOUT = 60  # seconds for any one subprocess; a run takes well under one

INPUT = "Hello, WASI!\nsecond line: ünïcödé\n"
STDIN = b"alpha beta\n  gamma\n\nlast line without newline"


# -- helpers -------------------------------------------------------------------------


def _native(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return guest_build.build_native(name, tmp_path_factory.mktemp("native") / name)
    except RuntimeError as exc:  # ToolchainMissing, or the compiler failed
        pytest.skip(f"cannot build the native {name} to compare with the Wasm build: {exc}")


@pytest.fixture(scope="module")
def native_ztour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _native("ztour", tmp_path_factory)


@pytest.fixture(scope="module")
def native_rtour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _native("rtour", tmp_path_factory)


def _workdir(root: Path, side: str) -> Path:
    """A fresh directory holding the host's input file."""
    work = root / side
    work.mkdir()
    (work / "input.txt").write_text(INPUT, encoding="utf-8")
    return work


def _tree(root: Path) -> dict[str, Optional[bytes]]:
    """Every path under ``root``: file contents, None for directories."""
    return {
        str(path.relative_to(root)): None if path.is_dir() else path.read_bytes()
        for path in sorted(root.rglob("*"))
    }


def _run_native(exe: Path, cwd: Path, args: list[str], env: dict[str, str], stdin: bytes
                ) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], input=stdin, capture_output=True, cwd=cwd, env=env, timeout=TIMEOUT)


def _run_cli(wasm: Path, preopen: Path, args: list[str], env: dict[str, str], stdin: bytes
             ) -> subprocess.CompletedProcess:
    env_flags = [flag for name, value in env.items() for flag in ("--env", f"{name}={value}")]
    return subprocess.run(
        [sys.executable, "-m", "asyncwasm", "run", "--dir", f"{preopen}::.", *env_flags, str(wasm), *args],
        input=stdin, capture_output=True, cwd=REPO, env=_child_env(), timeout=TIMEOUT,
    )


def _child_env() -> dict[str, str]:
    """Our environment with this checkout first on PYTHONPATH."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


async def _run_api(wasm: Path, preopen: Path, args: list[str], env: dict[str, str], stdin: bytes
                   ) -> tuple[object, bytes, bytes]:
    """Run through the public API; returns (exit code or the Trap, stdout, stderr)."""
    out, err = bytearray(), bytearray()
    config = WasiConfig(argv=[wasm.name, *args], env=env, stdin=stdin, stdout=out, stderr=err)
    config.preopen_dir(preopen, ".")
    linker = Linker()
    linker.define_wasi(config)
    outcome: object = 0
    with await linker.instantiate_async(Module.from_file(str(wasm))) as instance:
        try:
            with trio.fail_after(TIMEOUT):
                await instance.exports["_start"].call_async()
        except asyncwasm.Exit as exc:
            outcome = exc.code
        except asyncwasm.Trap as exc:
            outcome = exc
    return outcome, bytes(out), bytes(err)


def _cli_matches_native(native_exe: Path, wasm: Path, tmp_path: Path, args: list[str], env: dict[str, str],
                        code: int) -> tuple[str, Path]:
    """Run both builds on their own copy of the input; check that exit code,
    stdout, stderr and the files left behind are the same. Returns the Wasm
    run's stdout and directory for the guest-specific checks."""
    native_dir, wasm_dir = _workdir(tmp_path, "native"), _workdir(tmp_path, "wasm")
    native = _run_native(native_exe, native_dir, args, env, STDIN)
    proc = _run_cli(wasm, wasm_dir, args, env, STDIN)
    assert native.returncode == code, native.stderr
    assert proc.returncode == code, proc.stderr
    assert proc.stdout.decode() == native.stdout.decode()
    assert proc.stderr == native.stderr == f"{wasm.stem}: exiting with {code}\n".encode()
    assert _tree(wasm_dir) == _tree(native_dir)
    return proc.stdout.decode(), wasm_dir


def _api_matches_native(native_exe: Path, wasm: Path, tmp_path: Path, args: list[str], env: dict[str, str],
                        code: int) -> Path:
    """The same through the Python API (stdout and stderr are bytearrays)."""
    native_dir, wasm_dir = _workdir(tmp_path, "native"), _workdir(tmp_path, "wasm")
    native = _run_native(native_exe, native_dir, args, env, STDIN)
    outcome, out, err = trio.run(_run_api, wasm, wasm_dir, args, env, STDIN)
    assert outcome == native.returncode == code
    assert out == native.stdout and err == native.stderr
    assert _tree(wasm_dir) == _tree(native_dir)
    return wasm_dir


def _imports(wasm: Path) -> set[tuple[str, str]]:
    return {(imp.module, imp.name) for imp in Module.from_file(str(wasm)).imports}


# -- the guests are real toolchain output ----------------------------------------------


@pytest.mark.parametrize("wasm", [ZTOUR, RTOUR], ids=["zig", "rust"])
def test_prebuilt_guest_imports_only_wasi(wasm: Path) -> None:
    assert wasm.exists(), f"{wasm} missing: run python tests/guests/build.py"
    imports = _imports(wasm)
    assert {module for module, _ in imports} == {"wasi_snapshot_preview1"}
    # what each std really uses from the host (a rebuild that stops using them is suspicious)
    names = {name for _, name in imports}
    assert {"fd_write", "fd_read", "path_open", "fd_readdir", "path_rename", "proc_exit"} <= names


# -- Zig ---------------------------------------------------------------------------

ZIG_ENV = {"ZT_COLOR": "blue", "ZT_EMPTY": "", "OTHER": "not printed"}
ZIG_ARGS = ["3", "two words", "ünï"]

ZIG_EXPECTED_TAIL = (
    "ls work: input.upper (file) nested (directory) renamed.txt (file)\n"
    "blob.bin after delete: FileNotFound\n"
    "delete non-empty work: DirNotEmpty\n"
    "ls work: input.upper (file) renamed.txt (file)\n"
    "link -> one.txt (sym_link); hard link nlink=2\n"
    "two.txt: atime=1000000000123456789 mtime=1500000000987654321 length=5\n"
    "exclusive create: PathAlreadyExists\n"
    "walk tree: a/link:sym_link a/one.txt:file a/two.txt:file a:directory hard:file\n"
    "tree after deleteTree: FileNotFound\n"
    "slept>=20ms: true\n"
    "wall clock after 2020: true\n"
    "random: distinct=true nonzero=true\n"
    "exit 3\n"
)


def _check_ztour_tree(work: Path) -> None:
    assert (work / "report.txt").read_text() == "args=3 lines=4 exit=3\n"
    ascii_upper = bytes(b - 32 if ord("a") <= b <= ord("z") else b for b in INPUT.encode())  # std.ascii
    assert (work / "work" / "input.upper").read_bytes() == ascii_upper
    renamed = (work / "work" / "renamed.txt").read_bytes()
    assert len(renamed) == 900 and renamed[45:49] == b"LINE"  # the fd_pwrite in the middle
    assert not (work / "work" / "a.txt").exists() and not (work / "work" / "nested").exists()


def test_zig_cli_matches_native(native_ztour: Path, tmp_path: Path) -> None:
    text, wasm_dir = _cli_matches_native(native_ztour, ZTOUR, tmp_path, ZIG_ARGS, ZIG_ENV, 3)
    assert text.startswith("argc=4\narg[1]=3\narg[2]=two words\narg[3]=ünï\nenv ZT_COLOR=blue\nenv ZT_EMPTY=\n")
    assert "stdin 1: ateb ahpla\nstdin 2: ammag  \nstdin 3: \nstdin 4: enilwen tuohtiw enil tsal\n" in text
    assert text.endswith(ZIG_EXPECTED_TAIL)
    _check_ztour_tree(wasm_dir)


def test_zig_api_matches_native(native_ztour: Path, tmp_path: Path) -> None:
    """Through the Python API stdout/stderr are bytearrays (not seekable), and
    stdin is bytes; Zig's std probes them with positioned I/O first."""
    _check_ztour_tree(_api_matches_native(native_ztour, ZTOUR, tmp_path, ZIG_ARGS, ZIG_ENV, 3))


def test_zig_exit_zero_without_arguments_or_input(native_ztour: Path, tmp_path: Path) -> None:
    native_dir, wasm_dir = _workdir(tmp_path, "native"), _workdir(tmp_path, "wasm")
    native = _run_native(native_ztour, native_dir, [], {}, b"")
    wasm = _run_cli(ZTOUR, wasm_dir, [], {}, b"")
    assert wasm.returncode == native.returncode == 0, wasm.stderr
    assert wasm.stdout == native.stdout
    assert wasm.stdout.startswith(b"argc=1\na.txt: 900 bytes")
    assert (wasm_dir / "report.txt").read_text() == "args=0 lines=0 exit=0\n"


def test_zig_stdin_from_file_and_stdout_to_dev_null(tmp_path: Path) -> None:
    """stdout a character device (fd_pwrite there is SPIPE), stdin a regular
    file (which Zig reads with fd_pread at increasing offsets)."""
    work = _workdir(tmp_path, "wasm")
    feed = tmp_path / "stdin.txt"
    feed.write_bytes(STDIN)
    with open(feed, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "asyncwasm", "run", "--dir", f"{work}::.", str(ZTOUR), "4"],
                              stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
                              env=_child_env(), timeout=TIMEOUT)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr == b"ztour: exiting with 4\n"
    assert (work / "report.txt").read_text() == "args=1 lines=4 exit=4\n"


def test_zig_panic_traps(native_ztour: Path, tmp_path: Path) -> None:
    """``@panic`` prints its message, then traps on WASI (CLI exit 1); natively
    it aborts (SIGABRT)."""
    native_dir, wasm_dir = _workdir(tmp_path, "native"), _workdir(tmp_path, "wasm")
    native = _run_native(native_ztour, native_dir, ["panic"], {}, b"")
    wasm = _run_cli(ZTOUR, wasm_dir, ["panic"], {}, b"")
    assert native.returncode == -6  # SIGABRT
    assert wasm.returncode == 1
    assert wasm.stdout == native.stdout and wasm.stdout.endswith(b"random: distinct=true nonzero=true\n")
    stderr = wasm.stderr.decode().splitlines()
    assert stderr[0] == "ztour: exiting with 2" and "panic: deliberate panic" in stderr
    assert stderr[-1].startswith("asyncwasm: error: ") and "unreachable" in stderr[-1]
    assert _tree(wasm_dir) == _tree(native_dir)


# -- Rust --------------------------------------------------------------------------

RUST_ENV = {"RT_NAME": "wasm guest", "RT_EMPTY": "", "OTHER": "not printed"}
RUST_ARGS = ["7", "two words", "ünï"]

RUST_EXPECTED = [
    "env RT_EMPTY=\nenv RT_NAME=wasm guest\nRT_MISSING set: false\n",
    "stdin 1: ALPHA BETA\nstdin 2:   GAMMA\nstdin 3: \nstdin 4: LAST LINE WITHOUT NEWLINE\n",
    "stdin: 4 lines, 7 words\n",
    'data.txt: 556 bytes, 51 lines, last="appended"\n',
    'seek end-9 -> 547 tail="appended\\n"\n',
    "data.txt truncated: len=100 is_file=true is_dir=false\n",
    "mtime after 2020: true\n",
    "data.txt exists after rename: false\n",
    "ls work: deep(dir) scratch(file)\nls work/deep: er(dir) moved.txt(file)\n",
    "remove_dir non-empty: Directory not empty\n",
    "read removed: NotFound No such file or directory\n",
    "create_dir existing: AlreadyExists File exists\n",
    "ls work: deep(dir)\n",
    "copied 100 bytes, hard link and copy equal: true\nls work: deep(dir) hard.txt(file)\n",
    "slept>=20ms: true\nwall clock after 2020: true\nhash seeds: stable\n",
]


def _check_rtour_tree(work: Path, code: int) -> None:
    assert (work / "report.txt").read_text() == f"args=3 lines=4 words=7 exit={code}\n"
    assert (work / "work" / "deep" / "er" / "input.rev").read_bytes() == INPUT.encode()[::-1]
    moved = (work / "work" / "deep" / "moved.txt").read_bytes()
    assert len(moved) == 100 and moved.startswith(b"row ROW\nrow 01 x\n")  # seek + write, then set_len
    assert (work / "work" / "hard.txt").read_bytes() == moved
    assert (work / "work" / "hard.txt").stat().st_ino == (work / "work" / "deep" / "moved.txt").stat().st_ino
    assert not (work / "work" / "scrap").exists()


def test_rust_cli_matches_native(native_rtour: Path, tmp_path: Path) -> None:
    text, wasm_dir = _cli_matches_native(native_rtour, RTOUR, tmp_path, RUST_ARGS, RUST_ENV, 7)
    assert text.startswith("argc=4\narg[1]=7\narg[2]=two words\narg[3]=ünï\n")
    for piece in RUST_EXPECTED:
        assert piece in text
    assert text.endswith("exit 7\n")
    _check_rtour_tree(wasm_dir, 7)


def test_rust_api_matches_native(native_rtour: Path, tmp_path: Path) -> None:
    _check_rtour_tree(_api_matches_native(native_rtour, RTOUR, tmp_path, RUST_ARGS, RUST_ENV, 7), 7)


def test_rust_panic_traps(native_rtour: Path, tmp_path: Path) -> None:
    """A panic prints its message, then aborts: a trap on WASI (``unreachable``),
    which the CLI reports as exit 1; natively it is exit 101."""
    args = ["panic", "5", "x"]
    native_dir, wasm_dir = _workdir(tmp_path, "native"), _workdir(tmp_path, "wasm")
    native = _run_native(native_rtour, native_dir, args, RUST_ENV, b"one line\n")
    wasm = _run_cli(RTOUR, wasm_dir, args, RUST_ENV, b"one line\n")
    assert native.returncode == 101
    assert wasm.returncode == 1
    assert wasm.stdout == native.stdout  # flushed before the panic
    assert b"exit 5" not in wasm.stdout and b"hash seeds: stable\n" in wasm.stdout
    stderr = wasm.stderr.decode()
    assert stderr.startswith("rtour: exiting with 5\n")
    assert "deliberate panic: index 9 of 0" in stderr and "./rtour.rs:" in stderr
    assert stderr.rstrip("\n").splitlines()[-1].startswith("asyncwasm: error: ")
    assert "unreachable" in stderr.splitlines()[-1]
    assert _tree(wasm_dir) == _tree(native_dir)  # the file work before the panic happened

    api_dir = _workdir(tmp_path, "api")
    outcome, out, err = trio.run(_run_api, RTOUR, api_dir, args, RUST_ENV, b"one line\n")
    assert isinstance(outcome, asyncwasm.Trap)
    assert out == native.stdout
    assert b"deliberate panic: index 9 of 0" in err


# -- regression: positioned I/O on unseekable stdio is SPIPE ---------------------------


def test_positioned_io_on_streams_is_spipe_not_notcapable(tmp_path: Path) -> None:
    """Zig's std writes stdout with ``fd_pwrite`` and reads stdin with
    ``fd_pread``, falling back to fd_write/fd_read only on SPIPE: NOTCAPABLE
    made every Zig program fail ("error: WriteFailed") when its stdout was a
    pipe, /dev/null, a terminal or a bytearray."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as pipe_out, os.fdopen(read_end, "rb"):
        config = WasiConfig(stdin=b"data", stdout=bytearray(), stderr=pipe_out)
        config.preopen_dir(tmp_path, ".")
        (tmp_path / "f").write_bytes(b"0123456789")
        with FakeGuest(config) as guest:
            buf = guest.alloc(8)
            iovs, count = guest.iovecs([(buf, 4)])
            out = guest.alloc(4)
            assert guest.call("fd_pwrite", 1, iovs, count, 0, out) == Errno.SPIPE  # bytearray
            assert guest.call("fd_pwrite", 2, iovs, count, 0, out) == Errno.SPIPE  # host pipe
            assert guest.call("fd_pread", 0, iovs, count, 0, out) == Errno.SPIPE  # bytes
            # the direction right still comes first: stdin cannot be written at all
            assert guest.call("fd_pwrite", 0, iovs, count, 0, out) == Errno.NOTCAPABLE
            assert guest.call("fd_pread", 1, iovs, count, 0, out) == Errno.NOTCAPABLE
            # a seekable file without FD_SEEK (dropped by the guest) stays NOTCAPABLE
            errno, fd = guest.open(b"f", rights=int(Rights.FD_READ | Rights.FD_WRITE | Rights.FD_SEEK))
            assert errno == Errno.SUCCESS
            assert guest.call("fd_pread", fd, iovs, count, 2, out) == Errno.SUCCESS
            assert guest.read(buf, guest.u32(out)) == b"2345"
            assert guest.call("fd_fdstat_set_rights", fd, int(Rights.FD_READ | Rights.FD_WRITE), 0) == Errno.SUCCESS
            assert guest.call("fd_pread", fd, iovs, count, 2, out) == Errno.NOTCAPABLE
            assert guest.call("fd_pwrite", fd, iovs, count, 2, out) == Errno.NOTCAPABLE
    assert (tmp_path / "f").read_bytes() == b"0123456789"


# -- regression: Zig's directory handles hand down the host's rights --------------------

# What Zig's std asks for every directory it opens: base = inheriting = these
# directory rights, no FD_READ or FD_WRITE (std/Io/Threaded.zig, dirOpenDirWasi).
ZIG_DIR_RIGHTS = int(
    Rights.FD_FILESTAT_GET | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_SET_TIMES | Rights.FD_READDIR
    | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_CREATE_FILE | Rights.PATH_LINK_SOURCE | Rights.PATH_LINK_TARGET
    | Rights.PATH_OPEN | Rights.PATH_READLINK | Rights.PATH_RENAME_SOURCE | Rights.PATH_RENAME_TARGET
    | Rights.PATH_FILESTAT_GET | Rights.PATH_FILESTAT_SET_SIZE | Rights.PATH_FILESTAT_SET_TIMES
    | Rights.PATH_SYMLINK | Rights.PATH_REMOVE_DIRECTORY | Rights.PATH_UNLINK_FILE
)
ZIG_WRITE_RIGHTS = int(Rights.FD_WRITE | Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_FILESTAT_SET_SIZE)


def test_zig_style_directory_handles_inherit_the_preopens_rights(tmp_path: Path) -> None:
    """Zig opens subdirectories with inheriting rights that grant no file
    access at all; enforcing them literally made ``dir.createFile`` and
    ``Dir.copyFile`` fail with AccessDenied (wasmtime does not enforce them).
    Such a request now inherits the parent's rights, so the preopen's limits
    still hold: nothing can be written below a read-only preopen."""
    (tmp_path / "rw" / "sub").mkdir(parents=True)
    (tmp_path / "ro" / "sub").mkdir(parents=True)
    (tmp_path / "ro" / "sub" / "old.txt").write_bytes(b"old")
    config = WasiConfig()
    config.preopen_dir(tmp_path / "rw", "rw")
    config.preopen_dir(tmp_path / "ro", "ro", readonly=True)
    directory = int(wasi_abi.Oflags.DIRECTORY)
    create = int(wasi_abi.Oflags.CREAT)
    with FakeGuest(config) as guest:
        errno, sub = guest.open(b"sub", dirfd=3, oflags=directory, rights=ZIG_DIR_RIGHTS, inheriting=ZIG_DIR_RIGHTS)
        assert errno == Errno.SUCCESS
        assert guest.fdstat(sub)[1][3] & Rights.FD_WRITE  # what fd 3 hands down
        errno, fd = guest.open(b"new.txt", dirfd=sub, oflags=create, rights=ZIG_WRITE_RIGHTS, inheriting=0)
        assert errno == Errno.SUCCESS
        assert guest.write(fd, b"made by zig") == (Errno.SUCCESS, 11)

        errno, ro_sub = guest.open(b"sub", dirfd=4, oflags=directory, rights=ZIG_DIR_RIGHTS,
                                   inheriting=ZIG_DIR_RIGHTS)
        assert errno == Errno.SUCCESS
        assert not guest.fdstat(ro_sub)[1][3] & Rights.FD_WRITE
        assert guest.open(b"new.txt", dirfd=ro_sub, oflags=create, rights=ZIG_WRITE_RIGHTS)[0] == Errno.NOTCAPABLE
        assert guest.open(b"old.txt", dirfd=ro_sub, rights=ZIG_WRITE_RIGHTS)[0] == Errno.NOTCAPABLE
        # a request that does grant some access is still honoured as an attenuation
        errno, read_only = guest.open(b"sub", dirfd=3, oflags=directory, rights=ZIG_DIR_RIGHTS,
                                      inheriting=int(Rights.FD_READ))
        assert errno == Errno.SUCCESS
        assert guest.open(b"new.txt", dirfd=read_only, rights=ZIG_WRITE_RIGHTS)[0] == Errno.NOTCAPABLE
    assert (tmp_path / "rw" / "sub" / "new.txt").read_bytes() == b"made by zig"
    assert sorted(os.listdir(tmp_path / "ro" / "sub")) == ["old.txt"]

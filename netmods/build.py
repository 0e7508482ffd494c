"""Build the guest network modules (WASI preview1, wasm32-wasi).

    python netmods/build.py             rebuild every .wasm beside its source, then check it
    python netmods/build.py --verify    fail if a committed .wasm differs from a fresh build
    python netmods/build.py --imports   print each .wasm's size and imports
    python netmods/build.py --test      compile and run common/test_http.c natively
                                        (gcc, AddressSanitizer + UBSan)
    python netmods/build.py --native DIR
                                        native builds of the C modules (gcc + the POSIX shim
                                        common/wasi_native.c) into DIR, for loopback tests

Compilers: ``python -m ziglang cc --target=wasm32-wasi -O2`` for C and
``python -m ziglang build-exe -target wasm32-wasi -O ReleaseSmall`` for Zig.
C modules are built with -g0 and --strip-debug (the name section stays, so
traps can name guest functions). The output is deterministic for a given
ziglang version (ZIG_VERSION); --verify reports a difference otherwise.

After each build the module's imports are parsed from its binary and compared
with EXPECTED_IMPORTS (names and wasm signatures), so an accidental new host
dependency, or a signature that no longer matches the ABI in
docs/sockets-abi.md, fails the build.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ZIG_VERSION = "0.17.1"  # the ziglang release the committed .wasm files were built with

COMMON_HTTP = ["common/http.c", "common/http_conn.c", "common/http_app.c", "common/netio.c"]
C_WARNINGS = ["-std=gnu11", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Werror"]
WASM_C_FLAGS = ["--target=wasm32-wasi", "-O2", "-g0", "-Wl,--strip-debug"] + C_WARNINGS
NATIVE_C_FLAGS = ["-O1", "-g", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all"] + C_WARNINGS

I32 = "i32"
P1 = "wasi_snapshot_preview1"


def sig(nparams: int, results: int = 1) -> str:
    """A wasm signature of nparams i32 params and `results` i32 results, as text."""
    return f"({', '.join([I32] * nparams)}) -> ({', '.join([I32] * results)})"


# Every import, as (module, name, signature). The socket signatures are the ABI.
_ENV = {(P1, "environ_get", sig(2)), (P1, "environ_sizes_get", sig(2))}
_ARGS = {(P1, "args_get", sig(2)), (P1, "args_sizes_get", sig(2))}
_EXIT = {(P1, "proc_exit", sig(1, 0))}
_STDERR = {(P1, "fd_write", sig(4))}
_CLOSE = {(P1, "fd_close", sig(1))}
_POLL = {(P1, "poll_oneoff", sig(4))}
_FDSTAT = {(P1, "fd_fdstat_get", sig(2))}
_SERVER_SOCK = {
    (P1, "sock_accept", sig(3)),    # preview1: (fd, fdflags, *fd)
    (P1, "sock_recv", sig(6)),
    (P1, "sock_send", sig(5)),
    (P1, "sock_shutdown", sig(2)),
}
EXPECTED_IMPORTS: dict[str, set[tuple[str, str, str]]] = {
    "echo": _ENV | _EXIT | _STDERR | _CLOSE | _POLL | _FDSTAT
    | {(P1, "sock_accept", sig(3)), (P1, "sock_recv", sig(6)), (P1, "sock_send", sig(5))},
    "http_server": _ENV | _EXIT | _STDERR | _CLOSE | _POLL | _FDSTAT | _SERVER_SOCK,
    "http_server_poll": _ENV | _EXIT | _STDERR | _CLOSE | _POLL | _FDSTAT | _SERVER_SOCK
    | {(P1, "fd_fdstat_set_flags", sig(2)), (P1, "clock_time_get", "(i32, i64, i32) -> (i32)")},
    "http_client": _ENV | _ARGS | _EXIT | _STDERR | _CLOSE | _POLL
    | {
        (P1, "sock_open", sig(3)),          # WasmEdge V1: (af, type, *fd)
        (P1, "sock_connect", sig(3)),       # WasmEdge V1: (fd, *WasiAddress, port)
        (P1, "sock_getaddrinfo", sig(8)),
        (P1, "sock_recv", sig(6)),
        (P1, "sock_send", sig(5)),
    },
}


@dataclass(frozen=True)
class Module:
    name: str
    language: str           # "c" or "zig"
    sources: tuple[str, ...]

    @property
    def wasm(self) -> Path:
        return HERE / self.name / f"{self.name}.wasm"


MODULES = [
    Module("echo", "zig", ("echo/echo.zig",)),
    Module("http_server", "c", ("http_server/http_server.c", *COMMON_HTTP)),
    Module("http_server_poll", "c", ("http_server_poll/http_server_poll.c", *COMMON_HTTP)),
    Module("http_client", "c", ("http_client/http_client.c", *COMMON_HTTP)),
]


class BuildError(Exception):
    pass


def run_tool(cmd: list[str], cwd: Path = HERE) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def zig(*args: str) -> list[str]:
    return [sys.executable, "-m", "ziglang", *args]


# --------------------------------------------------------------------------
# Reading a module's import section (https://webassembly.github.io/spec/core/binary/modules.html)
# --------------------------------------------------------------------------

_VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
             0x70: "funcref", 0x6F: "externref"}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise BuildError(f"truncated module at byte {self.pos}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u32(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
            if shift > 35:
                raise BuildError(f"bad LEB128 at byte {self.pos}")

    def name(self) -> str:
        n = self.u32()
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        return raw.decode("utf-8")


def wasm_imports(data: bytes) -> list[tuple[str, str, str]]:
    """The imports of a module as (module, name, description), in order.

    Function imports are described by their signature, e.g. "(i32, i32) -> (i32)".
    """
    if data[:8] != b"\0asm\x01\0\0\0":
        raise BuildError("not a wasm module (bad magic or version)")
    r = _Reader(data)
    r.pos = 8
    types: list[str] = []
    imports: list[tuple[str, str, str]] = []
    while r.pos < len(data):
        section_id = r.byte()
        size = r.u32()
        end = r.pos + size
        if section_id == 1:  # type
            for _ in range(r.u32()):
                if r.byte() != 0x60:
                    raise BuildError("unexpected type form")
                params = [_VALTYPES.get(r.byte(), "?") for _ in range(r.u32())]
                results = [_VALTYPES.get(r.byte(), "?") for _ in range(r.u32())]
                types.append(f"({', '.join(params)}) -> ({', '.join(results)})")
        elif section_id == 2:  # import
            for _ in range(r.u32()):
                module, name, kind = r.name(), r.name(), r.byte()
                if kind == 0:
                    imports.append((module, name, types[r.u32()]))
                else:
                    imports.append((module, name, f"non-function import kind {kind}"))
                    break  # other kinds are not expected here; stop decoding
            return imports
        r.pos = end
    return imports


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------

def check_zig_version() -> None:
    version = run_tool(zig("version")).stdout.strip()
    if version != ZIG_VERSION:
        print(f"warning: ziglang {version}, the committed .wasm files were built with "
              f"{ZIG_VERSION}; expect differences", file=sys.stderr)


def compile_module(module: Module, out: Path) -> None:
    """Builds one module to `out` (a .wasm path; the name matters to the linker)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if module.language == "c":
        run_tool(zig("cc", *WASM_C_FLAGS, "-o", str(out), *module.sources))
    else:
        with tempfile.TemporaryDirectory() as cache:
            run_tool(zig("build-exe", "-target", "wasm32-wasi", "-O", "ReleaseSmall",
                         "--cache-dir", cache, f"-femit-bin={out}", *module.sources))


def check_imports(module: Module, wasm: Path) -> None:
    got = set(wasm_imports(wasm.read_bytes()))
    want = EXPECTED_IMPORTS[module.name]
    if got != want:
        extra = sorted(got - want)
        missing = sorted(want - got)
        raise BuildError(f"{module.name}: imports differ from EXPECTED_IMPORTS\n"
                         f"  unexpected: {extra}\n  missing: {missing}")


def build_all(out_dir: Path | None = None) -> list[Path]:
    """Builds every module (beside its source, or into out_dir) and checks imports."""
    outputs = []
    for module in MODULES:
        out = module.wasm if out_dir is None else out_dir / module.name / f"{module.name}.wasm"
        compile_module(module, out)
        check_imports(module, out)
        outputs.append(out)
    return outputs


def verify() -> int:
    """Rebuilds into a scratch directory and compares with the committed files."""
    differing = []
    with tempfile.TemporaryDirectory() as tmp:
        build_all(Path(tmp))
        for module in MODULES:
            fresh = Path(tmp) / module.name / f"{module.name}.wasm"
            if not module.wasm.exists() or not filecmp.cmp(fresh, module.wasm, shallow=False):
                differing.append(module.name)
    if differing:
        print(f"differs from a fresh build: {', '.join(differing)}", file=sys.stderr)
        return 1
    print("all .wasm files match a fresh build")
    return 0


def print_imports() -> None:
    for module in MODULES:
        if not module.wasm.exists():
            print(f"{module.name}: not built")
            continue
        data = module.wasm.read_bytes()
        print(f"{module.wasm.relative_to(HERE)}: {len(data)} bytes")
        for mod, name, desc in wasm_imports(data):
            print(f"    {mod}.{name} {desc}")


def run_native_tests() -> int:
    """Compiles common/test_http.c with the sanitizers and runs it."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BuildError("no native C compiler (gcc) found")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "test_http"
        run_tool([cc, *NATIVE_C_FLAGS, "-o", str(exe), "common/test_http.c",
                  "common/http.c", "common/http_conn.c", "common/http_app.c"])
        return subprocess.run([str(exe)], cwd=HERE).returncode


def build_native(out_dir: Path) -> list[Path]:
    """Native builds of the C modules over the POSIX shim, for loopback tests."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BuildError("no native C compiler (gcc) found")
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = []
    for module in MODULES:
        if module.language != "c":
            continue
        exe = out_dir / module.name
        run_tool([cc, *NATIVE_C_FLAGS, "-o", str(exe), *module.sources,
                  "common/wasi_native.c"])
        outputs.append(exe)
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--verify", action="store_true",
                       help="fail if a committed .wasm differs from a fresh build")
    group.add_argument("--imports", action="store_true", help="print sizes and imports")
    group.add_argument("--test", action="store_true", help="run the native HTTP core tests")
    group.add_argument("--native", metavar="DIR", type=Path,
                       help="build native test binaries of the C modules into DIR")
    args = parser.parse_args(argv)
    os.chdir(HERE)
    try:
        if args.test:
            return run_native_tests()
        if args.native:
            for exe in build_native(args.native.resolve()):
                print(exe)
            return 0
        if args.imports:
            print_imports()
            return 0
        check_zig_version()
        if args.verify:
            return verify()
        build_all()
        print_imports()
        return 0
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

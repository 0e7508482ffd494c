"""Rebuild the WASI test guests. The prebuilt .wasm files are committed, so
the tests never need a toolchain except to build the *native* reference
programs they compare against (and skip, with the reason, without one).

    python tests/guests/build.py              # every guest whose toolchain is here
    python tests/guests/build.py files ztour  # by name (C, Zig or Rust)
    python tests/guests/build.py --native squash -o /tmp/squash   # host build

Guests and toolchains:

- ``*.c`` here: zig's bundled clang and wasi-libc (``pip install ziglang``),
  ``python -m ziglang cc --target=wasm32-wasi -O2 -s``; native: gcc.
- ``zig/*.zig``: Zig's own std, ``python -m ziglang build-exe -target
  wasm32-wasi -O ReleaseSmall``; native: the same zig for the host (Debug).
- ``rust/*.rs``: Rust's std, ``rustc --target wasm32-wasip1`` (or
  ``wasm32-wasi`` on rustc < 1.78). The first rustc that has the target's std
  wins: ``$RUSTC``, ``rustc`` on PATH, then ``/usr/bin/rustc`` (Debian:
  ``apt-get install rustc libstd-rust-dev-wasm32``); native: that rustc, else
  any (unoptimized).
- ``cxx/*.cpp``: C++ with Wasm exception handling, ``python -m ziglang c++
  --target=wasm32-wasi -fwasm-exceptions -mexception-handling``, twice: the
  legacy instructions (try/catch/rethrow, clang's default) into ``NAME.wasm``
  and the current ones (try_table/throw_ref) into ``NAME-exnref.wasm``. Zig
  ships libc++abi built without exceptions, so the exception runtime
  (libc++abi's cxa_exception.cpp and cxa_personality.cpp, libunwind's
  Unwind-wasm.c, from zig's own source tree, and the ``__cpp_exception``
  tag) is compiled with them; native: g++.

A guest that is not a WASI command (a reactor or a library of exports, like
the GuestHeap guests) says so in a comment line of its source, ``//
build-flags: ...``: those flags go after the defaults (the last ``-target``
wins), for example ``-mexec-model=reactor -Wl,--export=malloc`` (C),
``-target wasm32-freestanding -fno-entry -rdynamic`` (Zig) or
``--crate-type cdylib`` (Rust).

A guest whose toolchain is missing is skipped with a message, not an error.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
from typing import Optional

HERE = pathlib.Path(__file__).resolve().parent
FLAGS = ["--target=wasm32-wasi", "-O2", "-s", "-Wall", "-Wextra", "-Werror"]
NATIVE_FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror"]
ZIG_FLAGS = ["-O", "ReleaseSmall"]
# Native reference builds only need to be correct: Debug compiles fastest (and checks more).
ZIG_NATIVE_FLAGS = ["-O", "Debug"]
RUST_FLAGS = ["--edition", "2021", "-D", "warnings"]
RUST_WASM_FLAGS = ["-C", "opt-level=s", "-C", "strip=symbols"]
RUST_WASM_TARGETS = ("wasm32-wasip1", "wasm32-wasi")


class ToolchainMissing(RuntimeError):
    """The compiler a guest needs is not installed (the message says which)."""


def _rust_flags(source: pathlib.Path) -> list[str]:
    # --remap-path-prefix: panic messages name "./rtour.rs", not the build machine's path.
    return [*RUST_FLAGS, f"--remap-path-prefix={source.parent}=."]


# -- finding sources --------------------------------------------------------------


def source_of(name: str) -> pathlib.Path:
    """The source of guest ``name``: ``name.c``, ``zig/name.zig``, ``rust/name.rs`` or ``cxx/name.cpp``."""
    candidates = (HERE / f"{name}.c", HERE / "zig" / f"{name}.zig", HERE / "rust" / f"{name}.rs",
                  HERE / "cxx" / f"{name}.cpp")  # fmt: skip
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no guest named {name!r} (looked for {', '.join(str(c.relative_to(HERE)) for c in candidates)})")


def all_sources() -> list[pathlib.Path]:
    return (sorted(HERE.glob("*.c")) + sorted(HERE.glob("zig/*.zig")) + sorted(HERE.glob("rust/*.rs"))
            + sorted(HERE.glob("cxx/*.cpp")))  # fmt: skip


# -- toolchains -------------------------------------------------------------------


def _zig() -> list[str]:
    try:
        import ziglang  # noqa: F401
    except ImportError:
        raise ToolchainMissing("zig not found: pip install ziglang") from None
    return [sys.executable, "-m", "ziglang"]


def zig_version() -> str:
    return subprocess.run([*_zig(), "version"], check=True, capture_output=True, text=True).stdout.strip()


def _rustc_candidates() -> list[str]:
    found = [os.environ.get("RUSTC"), shutil.which("rustc"), "/usr/bin/rustc"]
    unique: list[str] = []
    for path in found:
        if path and os.path.exists(path) and path not in unique:
            unique.append(path)
    return unique


def _has_target(rustc: str, target: str) -> bool:
    """True when ``rustc`` knows ``target`` *and* has its std installed."""
    probe = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True)
    if probe.returncode != 0:
        return False
    return (pathlib.Path(probe.stdout.strip()) / "lib" / "rustlib" / target / "lib").is_dir()


@functools.lru_cache(maxsize=None)
def rust_wasm_toolchain() -> Optional[tuple[str, str]]:
    """(rustc, target) able to build WASI programs with std, or None."""
    for rustc in _rustc_candidates():
        for target in RUST_WASM_TARGETS:
            if _has_target(rustc, target):
                return rustc, target
    return None


def native_rustc() -> Optional[str]:
    """A rustc for host programs (the WASI one first: same std version)."""
    wasm = rust_wasm_toolchain()
    if wasm is not None:
        return wasm[0]
    candidates = _rustc_candidates()
    return candidates[0] if candidates else None


def rustc_version(rustc: str) -> str:
    return subprocess.run([rustc, "--version"], check=True, capture_output=True, text=True).stdout.strip()


def native_compiler(cxx: bool = False) -> Optional[str]:
    """Path of the host C (gcc) or C++ (g++) compiler used by :func:`build_native`, or None."""
    return shutil.which("g++" if cxx else "gcc")


# -- C++ with Wasm exceptions -----------------------------------------------------

CXX_FLAGS = ["--target=wasm32-wasi", "-O2", "-s", "-Wall", "-Wextra", "-Werror", "-fwasm-exceptions",
             "-mexception-handling"]  # fmt: skip
#: The current instructions (try_table, throw_ref) instead of the legacy ones.
CXX_EXNREF_FLAGS = ["-mllvm", "-wasm-use-legacy-eh=false"]
# The tag C++ exceptions are thrown with (libunwind's Unwind-wasm.c throws it).
CPP_EXCEPTION_TAG = ".globl __cpp_exception\n.tagtype __cpp_exception i32\n__cpp_exception:\n"


def _exception_runtime(work: pathlib.Path, extra: list[str], quiet: bool) -> list[pathlib.Path]:
    """Objects of the C++ exception runtime built with Wasm exceptions."""
    import ziglang

    lib = pathlib.Path(ziglang.__file__).parent / "lib"
    defines = ["-D_LIBCXXABI_BUILDING_LIBRARY", "-D_LIBCPP_BUILDING_LIBRARY", "-D_LIBUNWIND_HIDE_SYMBOLS",
               "-D_LIBCXXABI_HAS_NO_THREADS", "-D_LIBUNWIND_HAS_NO_THREADS"]  # fmt: skip
    includes = [f"-I{lib / 'libcxxabi' / 'include'}", f"-I{lib / 'libunwind' / 'include'}", f"-I{lib / 'libcxx' / 'src'}"]
    flags = ["--target=wasm32-wasi", "-O2", "-fwasm-exceptions", "-mexception-handling", *extra, *defines, *includes]
    objects = []
    for source, language in ((lib / "libcxxabi" / "src" / "cxa_exception.cpp", "c++"),
                             (lib / "libcxxabi" / "src" / "cxa_personality.cpp", "c++"),
                             (lib / "libunwind" / "src" / "Unwind-wasm.c", "cc")):  # fmt: skip
        obj = work / (source.stem + ".o")
        std = ["-std=c++20"] if language == "c++" else []
        _run([*_zig(), language, *flags, *std, "-c", str(source), "-o", str(obj)], quiet)
        objects.append(obj)
    tag = work / "cpp_exception_tag.s"
    tag.write_text(CPP_EXCEPTION_TAG, encoding="ascii")
    _run([*_zig(), "cc", "--target=wasm32-wasi", "-mexception-handling", "-c", str(tag), "-o", str(work / "tag.o")],
         quiet)  # fmt: skip
    return [*objects, work / "tag.o"]


def _build_cxx(source: pathlib.Path, output: pathlib.Path, quiet: bool) -> pathlib.Path:
    """NAME.wasm (legacy instructions) and NAME-exnref.wasm (current ones)."""
    import tempfile

    for target, extra in ((output, []), (output.with_name(output.stem + "-exnref.wasm"), CXX_EXNREF_FLAGS)):
        with tempfile.TemporaryDirectory() as work:
            runtime = _exception_runtime(pathlib.Path(work), extra, quiet)
            _run([*_zig(), "c++", *CXX_FLAGS, *extra, str(source), *map(str, runtime), "-o", str(target)], quiet)
    return output


# -- building ---------------------------------------------------------------------


def _run(cmd: list[str], quiet: bool) -> None:
    if not quiet:
        print(" ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, check=True, capture_output=quiet, text=True)
    except subprocess.CalledProcessError as exc:
        detail = f":\n{exc.stderr}" if quiet and exc.stderr else ""
        raise RuntimeError(f"{cmd[0]} failed (exit {exc.returncode}) building {cmd}{detail}") from None


def extra_flags(source: pathlib.Path) -> list[str]:
    """The flags of the source's ``// build-flags: ...`` line, if any."""
    found = re.search(r"^//\s*build-flags:(.*)$", source.read_text(encoding="utf-8"), re.MULTILINE)
    return shlex.split(found.group(1)) if found else []


def build(source: pathlib.Path, output: Optional[pathlib.Path] = None, quiet: bool = False) -> pathlib.Path:
    """Build ``source`` for WASI into ``output`` (default: ``.wasm`` beside it).
    Raises :class:`ToolchainMissing` when its compiler is not installed."""
    output = output or source.with_suffix(".wasm")
    extra = extra_flags(source)
    if source.suffix == ".c":
        cmd = [*_zig(), "cc", *FLAGS, *extra, str(source), "-o", str(output)]
    elif source.suffix == ".zig":
        cmd = [*_zig(), "build-exe", "-target", "wasm32-wasi", *ZIG_FLAGS, *extra, str(source),
               f"-femit-bin={output}"]  # fmt: skip
    elif source.suffix == ".cpp":
        return _build_cxx(source, output, quiet)
    elif source.suffix == ".rs":
        toolchain = rust_wasm_toolchain()
        if toolchain is None:
            raise ToolchainMissing(
                "no rustc with a WASI std (wasm32-wasip1 or wasm32-wasi); on Debian: "
                "apt-get install rustc libstd-rust-dev-wasm32"
            )
        rustc, target = toolchain
        cmd = [rustc, "--target", target, *_rust_flags(source), *RUST_WASM_FLAGS, *extra, str(source), "-o",
               str(output)]  # fmt: skip
    else:
        raise ValueError(f"don't know how to build {source}")
    _run(cmd, quiet)
    return output


def build_native(name: str, output: pathlib.Path) -> pathlib.Path:
    """Compile guest ``name`` (C, Zig or Rust source here) for the host into
    ``output``, so tests can compare the Wasm build's output with it.
    Raises :class:`ToolchainMissing` (a RuntimeError) when the compiler is
    missing, RuntimeError with the compiler's message when it fails."""
    source = source_of(name)
    if source.suffix in (".c", ".cpp"):
        compiler = native_compiler(cxx=source.suffix == ".cpp")
        if compiler is None:
            raise ToolchainMissing(f"{'g++' if source.suffix == '.cpp' else 'gcc'} not found on PATH; cannot build the native reference program")
        cmd = [compiler, *NATIVE_FLAGS, str(source), "-o", str(output)]
    elif source.suffix == ".zig":
        cmd = [*_zig(), "build-exe", *ZIG_NATIVE_FLAGS, str(source), f"-femit-bin={output}"]
    else:
        rustc = native_rustc()
        if rustc is None:
            raise ToolchainMissing("rustc not found; cannot build the native reference program")
        cmd = [rustc, *_rust_flags(source), str(source), "-o", str(output)]
    _run(cmd, quiet=True)
    return output


def main(argv: list[str]) -> int:
    if argv[:1] == ["--native"]:
        if len(argv) != 4 or argv[2] != "-o":
            print("usage: build.py --native NAME -o OUTPUT", file=sys.stderr)
            return 2
        print(build_native(argv[1], pathlib.Path(argv[3])))
        return 0
    try:
        sources = [source_of(n) for n in argv] if argv else all_sources()
    except FileNotFoundError as exc:
        print(f"build.py: {exc}", file=sys.stderr)
        return 2
    skipped = 0
    for source in sources:
        try:
            build(source)
        except ToolchainMissing as exc:
            print(f"skipping {source.relative_to(HERE)}: {exc}", file=sys.stderr)
            skipped += 1
    # Naming a guest whose toolchain is missing is an error; "build all" is not.
    return 1 if skipped and argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

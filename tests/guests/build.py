"""Rebuild the WASI test guests: every ``*.c`` here -> ``*.wasm`` beside it.

    python tests/guests/build.py            # all guests
    python tests/guests/build.py files      # just files.c
    python tests/guests/build.py --native squash -o /tmp/squash   # host build (gcc)

Uses zig's bundled clang and wasi-libc (``pip install ziglang``):
``python -m ziglang cc --target=wasm32-wasi -O2 -s``. The prebuilt .wasm
files are committed, so the tests never need zig.

:func:`build_native` compiles a portable guest (one that uses only the C
library, like ``squash.c``) for the host with ``gcc``, so tests can compare
the Wasm build's output with the native one's.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
from typing import Optional

HERE = pathlib.Path(__file__).resolve().parent
FLAGS = ["--target=wasm32-wasi", "-O2", "-s", "-Wall", "-Wextra", "-Werror"]
NATIVE_FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror"]


def build(source: pathlib.Path) -> pathlib.Path:
    output = source.with_suffix(".wasm")
    cmd = [sys.executable, "-m", "ziglang", "cc", *FLAGS, str(source), "-o", str(output)]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return output


def native_compiler() -> Optional[str]:
    """Path of the host C compiler used by :func:`build_native` (gcc), or None."""
    return shutil.which("gcc")


def build_native(name: str, output: pathlib.Path) -> pathlib.Path:
    """Compile guest ``name`` (``name.c`` here) for the host into ``output``.
    Raises RuntimeError when gcc is missing, CalledProcessError when it fails."""
    compiler = native_compiler()
    if compiler is None:
        raise RuntimeError("gcc not found on PATH; cannot build the native reference program")
    cmd = [compiler, *NATIVE_FLAGS, str(HERE / f"{name}.c"), "-o", str(output)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return output


def main(argv: list[str]) -> int:
    if argv[:1] == ["--native"]:
        if len(argv) != 4 or argv[2] != "-o":
            print("usage: build.py --native NAME -o OUTPUT", file=sys.stderr)
            return 2
        print(build_native(argv[1], pathlib.Path(argv[3])))
        return 0
    sources = [HERE / f"{n}.c" for n in argv] if argv else sorted(HERE.glob("*.c"))
    for source in sources:
        build(source)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

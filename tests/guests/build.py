"""Rebuild the WASI test guests: every ``*.c`` here -> ``*.wasm`` beside it.

    python tests/guests/build.py            # all guests
    python tests/guests/build.py files      # just files.c

Uses zig's bundled clang and wasi-libc (``pip install ziglang``):
``python -m ziglang cc --target=wasm32-wasi -O2 -s``. The prebuilt .wasm
files are committed, so the tests never need zig.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
FLAGS = ["--target=wasm32-wasi", "-O2", "-s", "-Wall", "-Wextra", "-Werror"]


def build(source: pathlib.Path) -> pathlib.Path:
    output = source.with_suffix(".wasm")
    cmd = [sys.executable, "-m", "ziglang", "cc", *FLAGS, str(source), "-o", str(output)]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return output


def main(names: list[str]) -> int:
    sources = [HERE / f"{n}.c" for n in names] if names else sorted(HERE.glob("*.c"))
    for source in sources:
        build(source)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Build the CGI handler guests of handler mode (``asyncwasm serve --handler``).

    python netmods/handlers/build.py              every handler, beside its source
    python netmods/handlers/build.py lua          some, by name (cgi_tour minimal zig_hello lua)

Handlers and toolchains (PyPI ``ziglang``, the version in ZIG_VERSION):

- ``cgi_tour.c``, ``minimal.c``: ``python -m ziglang cc --target=wasm32-wasi -O2 -s``.
- ``zig_hello.zig``: ``python -m ziglang build-exe -target wasm32-wasi -O ReleaseSmall``.
- ``lua/lua.wasm``: the Lua 5.4 interpreter (``lua.c``, the stock command
  line) from the Lua sources that PyPI's ``lupa`` sdist bundles
  (``third-party/lua54``), fetched with ``pip download`` into a temporary
  directory, plus ``lua/lua_wasi.h``/``lua_wasi.c`` (errors end the program:
  wasm32-wasi has no setjmp/longjmp without the exception-handling
  proposal). Nothing of Lua's source tree is kept in the repository. Lua is
  MIT-licensed (Copyright (C) 1994-2025 Lua.org, PUC-Rio).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ZIG_VERSION = "0.17.1"
LUPA_VERSION = "2.8"  # bundles Lua 5.4.8
C_FLAGS = ["--target=wasm32-wasi", "-O2", "-s", "-std=gnu11", "-Wall", "-Wextra", "-Werror"]
LUA_FLAGS = ["--target=wasm32-wasi", "-O2", "-s", "-std=gnu99", "-Wno-deprecated-declarations",
             "-D_WASI_EMULATED_SIGNAL", "-D_WASI_EMULATED_PROCESS_CLOCKS", "-DLUA_USE_C89"]
LUA_LIBS = ["-lwasi-emulated-signal", "-lwasi-emulated-process-clocks"]
# Lua's sources minus the other programs and the test library.
LUA_SKIP = {"luac.c", "onelua.c", "ltests.c"}


def zig(*args: str) -> list[str]:
    return [sys.executable, "-m", "ziglang", *args]


def run(cmd: list[str], cwd: Path = HERE) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"build failed: {' '.join(cmd[:6])} ...\n{proc.stdout}{proc.stderr}")


def build_c(name: str) -> Path:
    out = HERE / f"{name}.wasm"
    run(zig("cc", *C_FLAGS, "-o", str(out), f"{name}.c"))
    return out


def build_zig(name: str) -> Path:
    out = HERE / f"{name}.wasm"
    with tempfile.TemporaryDirectory() as cache:
        run(zig("build-exe", "-target", "wasm32-wasi", "-O", "ReleaseSmall", "--cache-dir", cache,
                f"-femit-bin={out}", f"{name}.zig"))
    return out


def build_lua() -> Path:
    out = HERE / "lua" / "lua.wasm"
    with tempfile.TemporaryDirectory() as tmp:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"lupa=={LUPA_VERSION}", "-d", tmp])
        sdist = next(Path(tmp).glob("lupa-*.tar.gz"))
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if "/third-party/lua54/" in m.name and m.isfile()]
            archive.extractall(tmp, members=members, filter="data")
        source = next(Path(tmp).glob("lupa-*/third-party/lua54"))
        files = sorted(str(p) for p in source.glob("*.c") if p.name not in LUA_SKIP)
        run(zig("cc", *LUA_FLAGS, "-Iinclude", "-include", "lua_wasi.h", f"-I{source}", "-o", str(out),
                *files, "lua_wasi.c", *LUA_LIBS), cwd=HERE / "lua")
    return out


BUILDERS = {
    "cgi_tour": lambda: build_c("cgi_tour"),
    "minimal": lambda: build_c("minimal"),
    "zig_hello": lambda: build_zig("zig_hello"),
    "lua": build_lua,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"handlers to build (default: all of {', '.join(BUILDERS)})")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BUILDERS]
    if unknown:
        parser.error(f"no handler named {unknown[0]!r} (known: {', '.join(BUILDERS)})")
    version = subprocess.run(zig("version"), capture_output=True, text=True).stdout.strip()
    if version != ZIG_VERSION:
        print(f"warning: zig {version}; the committed .wasm files were built with {ZIG_VERSION}", file=sys.stderr)
    for name in args.names or BUILDERS:
        out = BUILDERS[name]()
        print(f"{out.relative_to(HERE)}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

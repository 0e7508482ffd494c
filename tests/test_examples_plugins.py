"""examples/plugins/host.py: loads plug-ins written in C, Zig and Rust under
their policies, calls them concurrently with strings and bytes, survives
the ones that trap, spin and hog memory, refuses the one that imports
what it was not granted, and prints per-plug-in statistics."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import asyncwasm

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugins"


def _load_host():  # examples/plugins/host.py, under a name of its own
    spec = importlib.util.spec_from_file_location("plugins_example_host", EXAMPLE / "host.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


host = _load_host()


def _rows(output: str) -> dict[str, list[str]]:
    """The statistics table: plug-in -> its columns."""
    table = output.split("plug-in    lang", 1)[1].splitlines()[1:]
    return {line.split()[0]: line.split() for line in table if line.strip() and not line.startswith("the host")}


def test_the_example_runs_as_documented() -> None:
    # The example imports the asyncwasm these tests import (a sanitized copy, say).
    package_root = str(Path(asyncwasm.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(EXAMPLE / "host.py")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "sneaky: refused: it imports host.time_ms, which its policy does not grant (allowed: log)" in out
    assert "loaded 6 plug-ins: crash (C), greet (Rust), hog (C), spin (C), upper (C), wordcount (Zig)" in out
    assert "  [upper] upper-cased 8 of 15 bytes" in out  # host.log read from the caller's memory
    results = {(m[1], m[2]): m[3] for m in re.finditer(r"^(\w+) +('.*?'|b'.*?'|'.*?\.\.\.) +(ok|trapped|out of fuel|timed out|failed) +(.*)$", out, re.M)}  # noqa: E501
    assert len(results) >= 30, out
    assert re.search(r"^upper +'Hello, plug-ins!' +ok +'HELLO, PLUG-INS!'$", out, re.M)
    assert re.search(r"^upper +b'raw .x00.x01.x02 bytes .xff' +ok +'RAW .x00.x01.x02 BYTES \ufffd'$", out, re.M)
    assert re.search(r"^wordcount +'grüße aus dem Wasm-Land' +ok +'4 words, longest: Wasm-Land'$", out, re.M)
    assert re.search(r"^greet +'Hello, plug-ins!' +ok +'Hello, Hello, plug-ins!!'$", out, re.M)  # host.config
    assert re.search(r"^upper +'lorem ipsum.*out of fuel +used its \d+ units of fuel$", out, re.M)
    assert len(re.findall(r"^crash .* trapped +out of bounds memory access", out, re.M)) == 5
    assert len(re.findall(r"^hog .* trapped +unreachable .*\(memory \d+ of 2048 KiB\)$", out, re.M)) == 5
    assert len(re.findall(r"^spin .* timed out +stopped after 0.3 s$", out, re.M)) == 5
    rows = _rows(out)
    assert set(rows) == {"crash", "greet", "hog", "spin", "upper", "wordcount"}
    # calls, ok, trapped, out of fuel, timed out, failed
    assert rows["greet"][1:8] == ["Rust", "5", "5", "0", "0", "0", "0"]
    assert rows["crash"][2:8] == ["5", "0", "5", "0", "0", "0"]
    assert rows["spin"][2:8] == ["5", "0", "0", "0", "5", "0"]
    assert rows["upper"][2:8] == ["5", "4", "0", "1", "0", "0"]
    assert rows["hog"][-2:] == ["2,048", "KiB"]  # it filled its memory cap, and no more
    assert out.rstrip().endswith("the host is still here: every call ended, however its plug-in behaved")


def test_a_plugin_folder_with_a_bad_policy_and_a_default_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("upper", "wordcount"):
        shutil.copy(EXAMPLE / "plugins" / f"{name}.wasm", tmp_path)
    (tmp_path / "upper.json").write_text('{"memory": "1MiB", "sandbox": "none"}')
    # wordcount has no policy file: the defaults (1 MiB, 1,000,000 fuel, nothing imported),
    # and its memory needs more than 1 MiB: refused at load, not at its first call
    assert host.main(["--plugins", str(tmp_path), "a bb ccc"]) == 0
    out = capsys.readouterr().out
    assert "upper: refused: upper.json: unknown policy keys ['sandbox']" in out
    assert "wordcount: refused: memory 0 needs 17 pages, above the limit of 16 pages" in out
    (tmp_path / "upper.json").write_text('{"imports": ["log"]}')
    (tmp_path / "wordcount.json").write_text('{"memory": "2MiB"}')
    assert host.main(["--plugins", str(tmp_path), "a bb ccc"]) == 0
    out = capsys.readouterr().out
    assert "loaded 2 plug-ins: upper (?), wordcount (?)" in out  # no sources beside them
    assert re.search(r"^wordcount +'a bb ccc' +ok +'3 words, longest: ccc'$", out, re.M)
    assert re.search(r"^upper +'a bb ccc' +ok +'A BB CCC'$", out, re.M)


def test_policies_read_sizes_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"memory": "64KiB", "fuel": null, "timeout": 2, "imports": ["log", "wasi"]}')
    policy = host.Policy.load(path)
    assert (policy.memory, policy.fuel, policy.timeout, policy.imports) == (65536, None, 2.0, {"log", "wasi"})
    assert policy.limits().max_memory_pages == 1 and policy.limits().fuel is None
    assert host.Policy.load(tmp_path / "missing.json") == host.Policy()

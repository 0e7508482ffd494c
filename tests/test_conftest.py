"""The collection check in conftest.py catches tests pytest would never run."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import misnamed_test_reason

REPO_ROOT = Path(__file__).resolve().parents[1]


_counter = itertools.count()


def _reason(tmp_path: Path, source: str, name: str) -> object:
    """misnamed_test_reason for ``name`` defined in a real module file
    (the check reads function source)."""
    module_name = f"fake_tests_{next(_counter)}"
    path = tmp_path / f"{module_name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return misnamed_test_reason(name, getattr(module, name), module_name)


def test_flags_names_that_say_test(tmp_path: Path) -> None:
    assert "says test" in str(_reason(tmp_path, "def check_test_grow(): pass", "check_test_grow"))
    assert "says test" in str(_reason(tmp_path, "def grow_test(): pass", "grow_test"))


def test_flags_public_functions_that_assert(tmp_path: Path) -> None:
    source = """
    def preopen_nonexistent(tmp_path):
        assert tmp_path
    """
    assert "asserts" in str(_reason(tmp_path, source, "preopen_nonexistent"))


def test_accepts_tests_helpers_and_ordinary_words(tmp_path: Path) -> None:
    assert _reason(tmp_path, "def test_grow(): assert 1", "test_grow") is None
    assert _reason(tmp_path, "def _check(x): assert x", "_check") is None
    assert _reason(tmp_path, "def latest_version(): return 1", "latest_version") is None
    assert _reason(tmp_path, "def build(): return 1", "build") is None


def test_collection_fails_on_a_misnamed_test(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_pycollect_makeitem\n")
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            def test_runs():
                assert True

            def preopen_nonexistent():
                assert False, "never runs without the check"

            class TestGroup:
                def grow_test(self):
                    pass
            """
        )
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr  # interrupted: collection error
    assert "'preopen_nonexistent' looks like a test (it asserts)" in proc.stdout

"""Shared pytest configuration.

Besides fixtures, this file guards against tests that silently never run: a
public function in a test module that lacks the ``test`` prefix pytest
collects, yet either has "test" as a word of its name (``check_test_grow``,
``grow_test``) or contains an ``assert`` statement (``preopen_nonexistent``),
makes collection of that module fail. Name helpers with a leading ``_``.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import textwrap
from typing import Any, Optional

import pytest

# "test" at the start of a word inside an identifier: test_x, x_test, x_test_y,
# but not "latest" or "contest".
_LOOKS_LIKE_TEST = re.compile(r"(?:^|_)tests?(?:_|$)|^test")


def misnamed_test_reason(name: str, obj: Any, module_name: str) -> Optional[str]:
    """Why ``name`` (a module- or class-level attribute of a test module)
    looks like a test that pytest will never collect, or None when it is fine."""
    if not inspect.isfunction(obj) or getattr(obj, "__module__", None) != module_name:
        return None  # not a function defined in this test module
    if name.startswith(("test", "_")):
        return None  # collected by pytest, or private on purpose
    if _LOOKS_LIKE_TEST.search(name):
        why = "its name says test"
    elif _has_assert(obj):
        why = "it asserts"
    else:
        return None
    return (
        f"{name!r} looks like a test ({why}) but pytest will never run it: "
        f"rename it 'test_...' or, if it is a helper, '_{name}'"
    )


def _has_assert(func: Any) -> bool:
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return False
    return any(isinstance(node, ast.Assert) for node in ast.walk(tree))


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> None:
    """Fail collection of a test module that defines a misnamed test."""
    if isinstance(collector, (pytest.Module, pytest.Class)):
        module = collector.getparent(pytest.Module)
        module_name = module.obj.__name__ if module is not None else ""
        reason = misnamed_test_reason(name, obj, module_name)
        if reason is not None:
            raise collector.CollectError(reason)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under scripts/asan-tests.sh (ASYNCWASM_ASAN=1) ASan's quarantine keeps
    freed memory resident, so RSS growth says nothing about leaks there."""
    if os.environ.get("ASYNCWASM_ASAN") != "1":
        return
    skip = pytest.mark.skip(reason="RSS is meaningless under ASan's quarantine (scripts/asan-tests.sh)")
    for item in items:
        if item.get_closest_marker("rss") is not None:
            item.add_marker(skip)

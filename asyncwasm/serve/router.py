"""Routes for handler mode: which module answers which path, with what limits.

    >>> router = Router([Route("/api/...", "api.wasm", timeout=5.0),
    ...                  Route("/", "home.wasm")])
    >>> match = router.match(b"/api/users/7")
    >>> match.route.path, match.script_name, match.path_info
    ('/api/...', b'/api', b'/users/7')
    >>> router = load_routes("routes.toml")          # the same, from a TOML file

A route's ``path`` is an exact path (``/health``) or a prefix ending in
``/...`` (``/api/...`` matches ``/api`` and everything under ``/api/``;
``/...`` matches everything). The longest match wins; an exact path beats a
prefix of the same length. Matching uses the percent-decoded path with its
dot segments removed, so ``/api/../admin`` is ``/admin``.

Rule: a router is checked when it is made. Modules are compiled once, here
(a ``str`` module is a file path); a bad value raises :class:`RouteError`
naming the route and the key, and :func:`load_routes` adds the file:
``routes.toml: route 2 (/api/...): key 'fuel': expected an integer, not 'x'``.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Union

from .._errors import ModuleError
from ..module import Module
from ..flagvalues import parse_size, size_to_pages
from ..wasi.config import Preopen
from ..wasi.context import WASI_MODULE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Route", "Router", "RouteMatch", "RouteError", "load_routes", "remove_dot_segments"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_MAX_QUEUE = 256


class RouteError(ValueError):
    """A route (or routes file) that cannot be served; the message is one
    line naming the route and the key."""


@dataclass(frozen=True)
class Route:
    """One route: ``module`` answers requests whose path matches ``path``.

    - ``module``: a compiled :class:`~asyncwasm.Module`, or a ``.wasm`` path;
      a WASI command (``_start``) importing only ``wasi_snapshot_preview1``.
    - ``argv``: the handler's arguments (default: ``[the module's file name]``).
    - ``env``: extra environment variables (the CGI meta-variables win).
    - ``dirs``: directories the handler sees, as :class:`~asyncwasm.wasi.Preopen`
      values or ``(host, guest, readonly)`` tuples.
    - ``fuel``: fuel per request (exhausted: 503); ``max_memory``: bytes of
      linear memory (rounded down to 64 KiB pages).
    - ``timeout``: seconds per request, from the start of the instance (504).
    - ``max_concurrency``: instances of this route at once; up to
      ``max_queue`` more requests wait for one (at most ``timeout`` seconds),
      beyond that they get 503 with ``Retry-After``.
    """

    path: str
    module: Union[Module, str]
    argv: Optional[Sequence[str]] = None
    env: Mapping[str, str] = field(default_factory=dict)
    dirs: Sequence[Any] = ()
    fuel: Optional[int] = None
    max_memory: Optional[int] = None
    timeout: float = DEFAULT_TIMEOUT
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_queue: int = DEFAULT_MAX_QUEUE

    @property
    def prefix(self) -> Optional[bytes]:
        """The prefix a ``/...`` route matches (``b"/api"``), None for an exact path."""
        if self.path.endswith("/..."):
            return self.path[:-4].encode()
        return None

    @property
    def name(self) -> str:
        """The module's file name (``argv[0]`` by default)."""
        if isinstance(self.module, str):
            return os.path.basename(self.module)
        return self.module.name or "handler.wasm"

    @property
    def max_memory_pages(self) -> Optional[int]:
        return None if self.max_memory is None else size_to_pages(self.max_memory)

    @property
    def preopens(self) -> list[Preopen]:
        return [d if isinstance(d, Preopen) else Preopen(*d) for d in self.dirs]


class RouteMatch(NamedTuple):
    route: Route
    script_name: bytes  # the matched prefix, or the whole path of an exact route
    path_info: bytes    # the rest of the path


class Router:
    """Routes by longest match (see the module docstring). Checks every
    route and compiles its module when made; raises :class:`RouteError`."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes: list[Route] = []
        seen: dict[str, int] = {}
        for number, route in enumerate(routes, start=1):
            where = _where(number, route.path if isinstance(route, Route) else None)
            if not isinstance(route, Route):
                raise RouteError(f"{where}: not a Route ({type(route).__name__})")
            route = _checked(route, where)
            if route.path in seen:
                raise RouteError(f"{where}: key 'path': duplicate of route {seen[route.path]}")
            seen[route.path] = number
            self.routes.append(route)
        self._exact = {r.path.encode(): r for r in self.routes if r.prefix is None}
        # Longest prefix first: the first hit is the longest match.
        self._prefixed = sorted(((r.prefix, r) for r in self.routes if r.prefix is not None),
                                key=lambda pair: len(pair[0]), reverse=True)

    def match(self, path: bytes) -> Optional[RouteMatch]:
        """The route for a decoded, dot-segment-free ``path``, or None (404)."""
        exact = self._exact.get(path)
        if exact is not None:  # as long as the path itself: no prefix is longer
            return RouteMatch(exact, path, b"")
        for prefix, route in self._prefixed:
            if not prefix or path == prefix or path.startswith(prefix) and path[len(prefix):len(prefix) + 1] == b"/":
                return RouteMatch(route, prefix, path[len(prefix):])
        return None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)


def remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 section 5.2.4 on an absolute path: ``/a/./b/../c`` -> ``/a/c``."""
    if b"." not in path:
        return path
    out: list[bytes] = []
    segments = path.split(b"/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == b"..":
            if out:
                out.pop()
            if last:
                out.append(b"")
        elif segment == b".":
            if last:
                out.append(b"")
        else:
            out.append(segment)
    return b"/" + b"/".join(out)


def _where(number: int, path: Optional[str]) -> str:
    return f"route {number}" + (f" ({path})" if isinstance(path, str) else "")


def _expect(where: str, key: str, value: Any, kinds: tuple[type, ...], what: str) -> None:
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise RouteError(f"{where}: key '{key}': expected {what}, not {value!r}")


def _checked(route: Route, where: str) -> Route:
    """``route`` with its module compiled, every value checked."""
    _expect(where, "path", route.path, (str,), "a path starting with '/'")
    path = route.path
    body = path[:-4] if path.endswith("/...") else path
    if not path.startswith("/") or "..." in body or "?" in path or "#" in path or "//" in path:
        raise RouteError(f"{where}: key 'path': expected an exact path or a prefix ending in '/...', "
                         f"not {path!r}")
    if route.argv is not None:
        if isinstance(route.argv, str) or not all(isinstance(a, str) for a in route.argv):
            raise RouteError(f"{where}: key 'argv': expected a list of strings, not {route.argv!r}")
    if not isinstance(route.env, Mapping):
        raise RouteError(f"{where}: key 'env': expected a table of strings, not {route.env!r}")
    for key, value in route.env.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key \
                or "\0" in key + value:
            raise RouteError(f"{where}: key 'env': {key!r} = {value!r} is not a variable "
                             "(string name without '=', string value)")
    for key in ("fuel", "max_memory"):
        value = getattr(route, key)
        if value is not None:
            _expect(where, key, value, (int,), "a positive integer")
            if value <= 0:
                raise RouteError(f"{where}: key '{key}': expected a positive integer, not {value!r}")
    if route.max_memory is not None:
        try:
            if size_to_pages(route.max_memory) == 0:
                raise ValueError("less than one 64 KiB page")
        except ValueError as exc:
            raise RouteError(f"{where}: key 'max_memory': {exc}") from None
    _expect(where, "timeout", route.timeout, (int, float), "a number of seconds")
    if not 0 < route.timeout < math.inf:
        raise RouteError(f"{where}: key 'timeout': expected a positive number of seconds, not {route.timeout!r}")
    _expect(where, "max_concurrency", route.max_concurrency, (int,), "an integer >= 1")
    if route.max_concurrency < 1:
        raise RouteError(f"{where}: key 'max_concurrency': expected an integer >= 1, not {route.max_concurrency!r}")
    _expect(where, "max_queue", route.max_queue, (int,), "an integer >= 0")
    if route.max_queue < 0:
        raise RouteError(f"{where}: key 'max_queue': expected an integer >= 0, not {route.max_queue!r}")
    for preopen in _preopens(route, where):
        if not os.path.isdir(preopen.host_path):
            raise RouteError(f"{where}: key 'dirs': {preopen.host_path}: not a directory")
    argv = list(route.argv) if route.argv is not None else [route.name]
    return replace(route, module=_compiled(route, where), argv=argv, timeout=float(route.timeout))


def _preopens(route: Route, where: str) -> list[Preopen]:
    try:
        result = route.preopens
    except TypeError:
        raise RouteError(f"{where}: key 'dirs': expected Preopen values or (host, guest, readonly) "
                         f"tuples, not {route.dirs!r}") from None
    for preopen in result:
        if not isinstance(preopen.guest_path, str) or not preopen.guest_path.startswith("/"):
            raise RouteError(f"{where}: key 'dirs': guest path {preopen.guest_path!r} must be absolute")
    return result


def _compiled(route: Route, where: str) -> Module:
    module = route.module
    if isinstance(module, str):
        try:
            module = Module.from_file(module)
        except IsADirectoryError:
            raise RouteError(f"{where}: key 'module': {route.module}: is a directory") from None
        except OSError as exc:
            raise RouteError(f"{where}: key 'module': {route.module}: {exc.strerror or exc}") from None
        except ModuleError as exc:
            raise RouteError(f"{where}: key 'module': {route.module}: not a valid module: "
                             f"{str(exc).splitlines()[0]}") from None
    elif not isinstance(module, Module):
        raise RouteError(f"{where}: key 'module': expected a path or an asyncwasm.Module, "
                         f"not {type(module).__name__}")
    label = route.module if isinstance(route.module, str) else "the module"
    if "_start" not in {e.name for e in module.exports}:
        raise RouteError(f"{where}: key 'module': {label} exports no _start (a handler is a WASI command)")
    foreign = [f"{i.module}.{i.name}" for i in module.imports if i.module != WASI_MODULE]
    if foreign:
        raise RouteError(f"{where}: key 'module': {label} imports {foreign[0]}; a handler may import "
                         f"only {WASI_MODULE}")
    return module


# -- the routes file ---------------------------------------------------------------

_KEYS = {f.name for f in fields(Route)}
_DIR_KEYS = {"host", "guest", "readonly"}


def load_routes(path: Union[str, "os.PathLike[str]"]) -> Router:
    """The :class:`Router` of a TOML routes file (see the README's "Handler
    mode"); :class:`RouteError` naming the file, the route and the key.
    ``module`` and ``dirs``' host paths are relative to the file."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise RouteError(f"{name}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RouteError(f"{name}: not valid TOML: {exc}") from None
    base = os.path.dirname(os.path.abspath(name))
    try:
        unknown = sorted(set(document) - {"route"})
        if unknown:
            raise RouteError(f"unknown key '{unknown[0]}' (a routes file holds [[route]] tables)")
        tables = document.get("route")
        if not isinstance(tables, list) or not tables:
            raise RouteError("no routes: add [[route]] tables with path and module")
        return Router([_route_from_table(number, table, base) for number, table in enumerate(tables, start=1)])
    except RouteError as exc:
        raise RouteError(f"{name}: {exc}") from None


def _route_from_table(number: int, table: Any, base: str) -> Route:
    path = table.get("path") if isinstance(table, dict) else None
    where = _where(number, path)
    if not isinstance(table, dict):
        raise RouteError(f"{where}: expected a [[route]] table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise RouteError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(_KEYS))})")
    for key in ("path", "module"):
        if key not in table:
            raise RouteError(f"{where}: missing key '{key}'")
    values = dict(table)
    _expect(where, "module", values["module"], (str,), "a path to a .wasm file")
    values["module"] = os.path.join(base, values["module"])
    if "max_memory" in values and isinstance(values["max_memory"], str):
        try:
            values["max_memory"] = parse_size(values["max_memory"])
        except ValueError as exc:
            raise RouteError(f"{where}: key 'max_memory': {exc}") from None
    if "argv" in values:
        _expect(where, "argv", values["argv"], (list,), "a list of strings")
    if "env" in values:
        _expect(where, "env", values["env"], (dict,), "a table of strings")
    if "dirs" in values:
        values["dirs"] = [_dir_from_table(where, item, base) for item in _list(where, "dirs", values["dirs"])]
    return Route(**values)


def _list(where: str, key: str, value: Any) -> list[Any]:
    _expect(where, key, value, (list,), "a list")
    return list(value)


def _dir_from_table(where: str, item: Any, base: str) -> Preopen:
    if not isinstance(item, dict) or not {"host", "guest"} <= set(item) or set(item) - _DIR_KEYS:
        raise RouteError(f"{where}: key 'dirs': expected {{ host = \"...\", guest = \"/...\", "
                         f"readonly = true }} tables, not {item!r}")
    host, guest, readonly = item["host"], item["guest"], item.get("readonly", False)
    if not isinstance(host, str) or not isinstance(guest, str) or not isinstance(readonly, bool):
        raise RouteError(f"{where}: key 'dirs': host and guest must be strings, readonly a boolean: {item!r}")
    return Preopen(os.path.join(base, host), guest, readonly)

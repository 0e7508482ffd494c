"""The CGI/1.1 adapter (RFC 3875), sans-IO: request -> environment; stdout -> response.

    >>> env = cgi_environ(RequestMeta(b"GET", b"/api/users/7?full=1", headers, b"1.1"),
    ...                   script_name="/api", conn=ConnInfo(("10.0.0.2", 51000), ("10.0.0.1", 8080)))
    >>> parser = ResponseParser()
    >>> parser.feed(b"Status: 201 Created\\nContent-Type: text/plain\\n\\nhello")
    b'hello'
    >>> parser.head.status, parser.head.headers
    (201, [(b'Content-Type', b'text/plain')])

Nothing here does I/O: :mod:`.http_conn` moves the bytes. The rules:

Rule (environment, RFC 3875 section 4.1): every meta-variable is a byte
string ``KEY=VALUE`` (the WASI environment). ``SCRIPT_NAME`` is the route's
prefix, ``PATH_INFO`` the rest of the path, percent-decoded (4.1.5: it is
"not URL-encoded"), ``QUERY_STRING`` the raw query. Every request header
becomes ``HTTP_<NAME>`` (upper case, ``-`` -> ``_``; repeated fields joined
with ``, ``), except ``Content-Type``/``Content-Length`` (they are
``CONTENT_TYPE``/``CONTENT_LENGTH``), ``Proxy`` (``HTTP_PROXY`` would be read
as a proxy setting by many HTTP clients: "httpoxy") and names holding
anything but letters, digits and ``-`` (``X_User`` would otherwise pass for
``X-User``). A chunked body has no ``CONTENT_LENGTH``: the handler reads
stdin to end of file. A path whose decoding gives a NUL byte, which no
environment can carry, is refused (:class:`BadRequest`).

Rule (response, RFC 3875 section 6): stdout starts with header lines
ending in LF or CRLF, then an empty line, then the body. ``Status: NNN
reason`` sets the status (default 200, or 302 with an absolute
``Location``); a ``Location`` that is a local path with no ``Status`` and
no body headers is a *local redirect* the server follows itself
(:attr:`ResponseHead.local_redirect`). Hop-by-hop headers are the
server's business and are dropped. Anything else malformed before the
empty line (a line without a colon, a bad name, a bad ``Status``, a bad
``Content-Length``, a header block over the limit, end of output before the
empty line) is a :class:`CGIError`: the server answers 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Sequence
from urllib.parse import unquote_to_bytes

from .. import __version__

__all__ = ["RequestMeta", "ConnInfo", "BadRequest", "CGIError", "ResponseHead", "ResponseParser",
           "cgi_environ", "ConnEnviron", "split_head", "split_target", "SERVER_SOFTWARE", "MAX_HEAD_BYTES"]

SERVER_SOFTWARE = f"asyncwasm/{__version__}"
#: Most bytes of CGI header lines a handler may write before its empty line.
MAX_HEAD_BYTES = 64 * 1024

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# Headers the server sets or that describe the connection, not the response.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                         b"te", b"trailer", b"upgrade"})
_BLANK_LINE = re.compile(rb"\n\r?\n")
_SERVER_SOFTWARE_VAR = b"SERVER_SOFTWARE=" + SERVER_SOFTWARE.encode()


class BadRequest(ValueError):
    """The request cannot be given to a handler (the server answers 400)."""


class CGIError(ValueError):
    """The handler's output is not a CGI response (the server answers 500)."""


class RequestMeta(NamedTuple):
    """What the environment is made of: h11's request fields as bytes."""

    method: bytes
    target: bytes
    headers: Sequence[tuple[bytes, bytes]]  # names lower-case, as h11 gives them
    http_version: bytes = b"1.1"
    chunked: bool = False                   # the body comes chunked: no CONTENT_LENGTH


@dataclass(frozen=True)
class ConnInfo:
    """The connection a request came on: peer and local ``(host, port)``,
    and whether it is TLS (``HTTPS=on``)."""

    remote: tuple[str, int]
    local: tuple[str, int]
    https: bool = False


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """``/a/b?x=1`` -> ``(b"/a/b", b"x=1")``; an absolute-form target
    (``http://host/a``) gives its path. :class:`BadRequest` for a target
    that is not a path (``*``, authority-form)."""
    path, _, query = target.partition(b"?")
    if path.startswith((b"http://", b"https://")):
        slash = path.find(b"/", path.find(b"//") + 2)
        path = path[slash:] if slash >= 0 else b"/"
    if not path.startswith(b"/"):
        raise BadRequest(f"request target {target[:80]!r} is not a path")
    return path, query


def decode_path(path: bytes) -> bytes:
    """Percent-decode a path (PATH_INFO is not URL-encoded); BadRequest if
    that yields a NUL byte."""
    decoded = unquote_to_bytes(path) if b"%" in path else path
    if b"\0" in decoded:
        raise BadRequest("the path decodes to a NUL byte")
    return decoded


def cgi_environ(request: RequestMeta, *, script_name: bytes, path_info: bytes, query: bytes,
                conn: ConnInfo, extra: Sequence[bytes] = ()) -> list[bytes]:
    """The CGI meta-variables of ``request`` as ``KEY=VALUE`` bytes, after
    ``extra`` (the route's own variables, which the meta-variables override).

    ``script_name``/``path_info`` are the route prefix and the rest of the
    decoded path; ``query`` the raw query string. (A server answering many
    requests of one connection and route makes the :class:`ConnEnviron`
    once and calls its :meth:`~ConnEnviron.environ` per request.)"""
    return ConnEnviron(conn, script_name, extra).environ(
        request.method, request.target, request.headers, request.http_version, request.chunked, path_info, query)


# The meta-variables that are the same for every request of one connection
# and route (ConnEnviron.fixed), and those made per request: a route's own
# variable of one of these names is overridden by the request's.
_CONN_KEYS = frozenset({b"GATEWAY_INTERFACE", b"SERVER_SOFTWARE", b"SERVER_PORT", b"REMOTE_ADDR",
                        b"REMOTE_PORT", b"HTTPS", b"SCRIPT_NAME"})
_REQUEST_KEYS = frozenset({b"SERVER_PROTOCOL", b"SERVER_NAME", b"REQUEST_METHOD", b"REQUEST_URI",
                           b"PATH_INFO", b"QUERY_STRING", b"CONTENT_TYPE", b"CONTENT_LENGTH"})


_HOST, _CONTENT_TYPE, _CONTENT_LENGTH = b"HTTP_HOST", b"CONTENT_TYPE", b"CONTENT_LENGTH"
# Header name -> its variable (b"" for none); the names requests use, learned.
_HEADER_KEYS: dict[bytes, bytes] = {b"host": _HOST, b"content-type": _CONTENT_TYPE,
                                    b"content-length": _CONTENT_LENGTH}
_MAX_HEADER_KEYS = 512


def _header_key(name: bytes) -> bytes:
    """The variable of a (lower-case) header name: ``HTTP_<NAME>``, or
    b"" for ``Proxy`` and names with anything but letters, digits and ``-``."""
    key = b"" if name == b"proxy" or not name.replace(b"-", b"").isalnum() else b"HTTP_" + name.upper().replace(b"-", b"_")
    if len(_HEADER_KEYS) < _MAX_HEADER_KEYS:  # (a client inventing names cannot grow it without end)
        _HEADER_KEYS[name] = key
    return key


class ConnEnviron:
    """The CGI environment of one connection and route, with the variables
    every request of it shares made once: :meth:`environ` adds a request's.

        >>> base = ConnEnviron(conn, b"/api", route_env)
        >>> env = base.environ(b"GET", b"/api/x?a=1", headers, b"1.1", False, b"/x", b"a=1")

    ``extra`` (the route's own variables) come first; a meta-variable of
    the same name wins."""

    __slots__ = ("script_name", "fixed", "local_name", "_merge")

    def __init__(self, conn: ConnInfo, script_name: bytes, extra: Sequence[bytes] = ()) -> None:
        self.script_name = script_name
        self.local_name = request_host(conn.local[0])
        keys = [item.partition(b"=")[0] for item in extra]
        fixed = [item for key, item in zip(keys, extra) if key not in _CONN_KEYS]
        fixed += [b"GATEWAY_INTERFACE=CGI/1.1", _SERVER_SOFTWARE_VAR, b"SERVER_PORT=%d" % conn.local[1],
                  b"REMOTE_ADDR=" + conn.remote[0].encode(), b"REMOTE_PORT=%d" % conn.remote[1],
                  b"SCRIPT_NAME=" + script_name]
        if conn.https:
            fixed.append(b"HTTPS=on")
        self.fixed = fixed
        # Only a route variable that a request's variable may override needs a merge per request.
        self._merge = any(key in _REQUEST_KEYS or key.startswith(b"HTTP_") for key in keys)

    def environ(self, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]], http_version: bytes,
                chunked: bool, path_info: bytes, query: bytes) -> list[bytes]:
        """The whole environment of one request (``headers``: lower-case
        names, as h11 gives them; ``chunked``: no ``CONTENT_LENGTH``)."""
        host = b""
        variables: dict[bytes, bytes] = {}
        for name, value in headers:
            key = _HEADER_KEYS.get(name)
            if key is None:
                key = _header_key(name)
            if key in variables:  # a repeated field: one variable
                if key is _HOST or key is _CONTENT_TYPE or key is _CONTENT_LENGTH:
                    variables[key] = value
                else:
                    variables[key] += (b"; " if key == b"HTTP_COOKIE" else b", ") + value
            else:
                variables[key] = value
            if key is _HOST:
                host = value
        variables.pop(b"", None)  # the headers no variable may carry
        if chunked:
            variables.pop(_CONTENT_LENGTH, None)
        env = self.fixed + [
            b"SERVER_PROTOCOL=HTTP/" + http_version,
            b"SERVER_NAME=" + (_host_name(host) or self.local_name),
            b"REQUEST_METHOD=" + method,
            b"REQUEST_URI=" + target,
            b"PATH_INFO=" + path_info,
            b"QUERY_STRING=" + query,
        ]
        env += [key + b"=" + value for key, value in variables.items()]
        if not self._merge:
            return env
        merged: dict[bytes, bytes] = {}
        for item in env:
            key, _, value = item.partition(b"=")
            merged[key] = value
        return [key + b"=" + value for key, value in merged.items()]


def request_host(address: str) -> bytes:
    """A local address as a SERVER_NAME (IPv6 without brackets)."""
    return address.encode("ascii", "replace")


def _host_name(host: bytes) -> bytes:
    """The name part of a Host header: ``example.org:8080`` -> ``example.org``,
    ``[::1]:80`` -> ``::1``."""
    if host.startswith(b"["):
        return host[1:host.find(b"]")] if b"]" in host else b""
    return host.rpartition(b":")[0] if b":" in host else host


@dataclass
class ResponseHead:
    """A parsed CGI header block.

    ``status``/``reason``: from ``Status`` (default 200, or 302 for a client
    redirect); ``headers``: the rest, in order, as written (no hop-by-hop);
    ``content_length``: the handler's ``Content-Length``, if any;
    ``local_redirect``: the path (and query) of a local redirect, which the
    server answers by handling a GET of that URL instead."""

    status: int = 200
    reason: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_length: Optional[int] = None
    local_redirect: Optional[bytes] = None


class ResponseParser:
    """Splits a handler's stdout into the header block and the body.

    Feed it bytes as the handler writes them: :meth:`feed` returns the body
    bytes found so far (``b""`` while the header block is incomplete) and
    sets :attr:`head` once the empty line has been seen; it raises
    :class:`CGIError` for a malformed block. Call :meth:`finish` at the end of
    output: :class:`CGIError` if the block never ended.

    Strategy: the block is kept whole until its empty line (it is at most
    ``max_head_bytes``), then parsed once; a body costs nothing after that."""

    def __init__(self, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self.max_head_bytes = max_head_bytes
        self.head: Optional[ResponseHead] = None
        self._pending = bytearray()

    def feed(self, data: bytes) -> bytes:
        if self.head is not None:
            return data
        if not self._pending:
            whole = split_head(data, self.max_head_bytes)
            if whole is not None:
                self.head, body = whole
                return body
        scan_from = max(0, len(self._pending) - 2)  # the empty line may have begun in the last bytes
        self._pending += data
        if self._pending[:1] == b"\n" or self._pending[:2] == b"\r\n":
            raise CGIError("the header block is empty (output starts with an empty line)")
        match = _BLANK_LINE.search(self._pending, scan_from)
        if match is None:
            if len(self._pending) > self.max_head_bytes:
                raise CGIError(f"the header block is longer than {self.max_head_bytes} bytes")
            return b""
        if match.start() > self.max_head_bytes:
            raise CGIError(f"the header block is longer than {self.max_head_bytes} bytes")
        block = bytes(self._pending[:match.start()])
        body = bytes(self._pending[match.end():])
        self._pending = bytearray()
        self.head = parse_head(block)
        return body

    def finish(self) -> None:
        if self.head is None:
            if not self._pending:
                raise CGIError("the handler wrote nothing (a CGI response needs at least one header line)")
            raise CGIError("the output ended before the empty line that ends the header block")


def split_head(data: bytes, max_head_bytes: int = MAX_HEAD_BYTES) -> Optional[tuple[ResponseHead, bytes]]:
    """The head and the body bytes of output whose first write holds the
    whole header block (most handlers: no :class:`ResponseParser` needed),
    or None when it does not (feed a parser); :class:`CGIError` for a
    malformed block. The head may be one made for an earlier output of the
    same block (read it, do not change it)."""
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        return None  # the parser says why that is wrong
    match = _BLANK_LINE.search(data)
    if match is None or match.start() > max_head_bytes:
        return None
    block = data[:match.start()]
    head = _heads.get(block)
    if head is None:
        head = parse_head(block)
        if len(block) <= _MAX_CACHED_BLOCK:
            if len(_heads) >= _MAX_CACHED_HEADS:
                _heads.clear()
            _heads[block] = head
    return head, data[match.end():]


# Header blocks parsed lately: a handler mostly writes the same block every
# time. split_head's heads may be shared: read them, do not change them.
_heads: dict[bytes, ResponseHead] = {}
_MAX_CACHED_HEADS = 256
_MAX_CACHED_BLOCK = 1024


def parse_head(block: bytes) -> ResponseHead:
    """A complete header block (without its empty line) -> ResponseHead."""
    head = ResponseHead()
    status: Optional[bytes] = None
    location: Optional[bytes] = None
    others = 0
    for raw in block.split(b"\n"):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            raise CGIError(f"header line without a colon: {line[:80]!r}")
        if not _TOKEN.fullmatch(name):
            raise CGIError(f"bad header name {name[:80]!r}")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise CGIError(f"bad value for header {name.decode()!r}")
        lower = name.lower()
        if lower == b"status":
            if status is not None:
                raise CGIError("two Status header lines")
            status = value
            continue
        if lower == b"location":
            location = value
        elif lower == b"content-length":
            if not value.isdigit():
                raise CGIError(f"bad Content-Length {value[:40]!r}")
            head.content_length = int(value)
        if lower in _HOP_BY_HOP:
            continue
        if lower != b"location":
            others += 1
        head.headers.append((name, value))
    if status is not None:
        code, _, reason = status.partition(b" ")
        if len(code) != 3 or not code.isdigit() or not 200 <= int(code) <= 999:
            raise CGIError(f"bad Status {status[:40]!r} (want 'NNN reason', NNN >= 200)")
        head.status, head.reason = int(code), reason.strip()
    elif location is not None:
        if location.startswith(b"/") and not location.startswith(b"//") and others == 0:
            head.local_redirect = location
        elif b":" in location.split(b"/", 1)[0]:
            head.status, head.reason = 302, b"Found"
        else:
            raise CGIError(f"Location {location[:80]!r} is neither a local path nor an absolute URI")
    return head

"""Handler mode's sans-IO parts: the CGI adapter, routes, the access log."""

from __future__ import annotations

import io
import os
import pathlib

import pytest

from asyncwasm.serve.access_log import AccessLog, AccessRecord
from asyncwasm.serve.cgi import (BadRequest, CGIError, ConnEnviron, ConnInfo, RequestMeta, ResponseParser, cgi_environ,
                                 decode_path, split_head, split_target)
from asyncwasm.serve.router import Route, RouteError, Router, load_routes, remove_dot_segments

HANDLERS = pathlib.Path(__file__).resolve().parent.parent / "netmods" / "handlers"
TOUR = str(HANDLERS / "cgi_tour.wasm")
CONN = ConnInfo(("10.0.0.2", 51000), ("10.0.0.1", 8080))


def _env(meta: RequestMeta, **kw) -> dict[bytes, bytes]:
    args = dict(script_name=b"/api", path_info=b"/users/7", query=b"full=1&x=%20", conn=CONN)
    args.update(kw)
    return dict(item.split(b"=", 1) for item in cgi_environ(meta, **args))


# -- environment -------------------------------------------------------------------


def test_environ_has_the_rfc3875_meta_variables():
    headers = [(b"host", b"example.org:8080"), (b"content-type", b"text/plain"), (b"content-length", b"5"),
               (b"x-custom", b"a"), (b"x-custom", b"b"), (b"cookie", b"a=1"), (b"cookie", b"b=2"),
               (b"user-agent", b"curl/8")]
    env = _env(RequestMeta(b"POST", b"/api/users/7?full=1&x=%20", headers, b"1.1"))
    assert env[b"GATEWAY_INTERFACE"] == b"CGI/1.1"
    assert env[b"SERVER_PROTOCOL"] == b"HTTP/1.1"
    assert env[b"SERVER_SOFTWARE"].startswith(b"asyncwasm/")
    assert env[b"SERVER_NAME"] == b"example.org" and env[b"SERVER_PORT"] == b"8080"
    assert env[b"REQUEST_METHOD"] == b"POST"
    assert env[b"SCRIPT_NAME"] == b"/api" and env[b"PATH_INFO"] == b"/users/7"
    assert env[b"QUERY_STRING"] == b"full=1&x=%20"
    assert env[b"REQUEST_URI"] == b"/api/users/7?full=1&x=%20"
    assert env[b"REMOTE_ADDR"] == b"10.0.0.2" and env[b"REMOTE_PORT"] == b"51000"
    assert env[b"CONTENT_TYPE"] == b"text/plain" and env[b"CONTENT_LENGTH"] == b"5"
    assert env[b"HTTP_X_CUSTOM"] == b"a, b"
    assert env[b"HTTP_COOKIE"] == b"a=1; b=2"
    assert env[b"HTTP_USER_AGENT"] == b"curl/8" and env[b"HTTP_HOST"] == b"example.org:8080"
    assert b"HTTP_CONTENT_TYPE" not in env and b"HTTP_CONTENT_LENGTH" not in env
    assert b"HTTPS" not in env


def test_environ_refuses_spoofable_headers_and_marks_https():
    headers = [(b"proxy", b"http://evil:3128"), (b"x_user", b"admin"), (b"transfer-encoding", b"chunked")]
    env = _env(RequestMeta(b"POST", b"/", headers, b"1.1", chunked=True),
               conn=ConnInfo(("::1", 5), ("::1", 443), https=True))
    assert b"HTTP_PROXY" not in env          # httpoxy
    assert b"HTTP_X_USER" not in env         # x_user would pass for x-user
    assert b"CONTENT_LENGTH" not in env      # chunked: stdin to end of file
    assert env[b"HTTPS"] == b"on"
    assert env[b"SERVER_NAME"] == b"::1" and env[b"SERVER_PORT"] == b"443"


def test_route_env_is_overridden_by_meta_variables():
    env = _env(RequestMeta(b"GET", b"/", [], b"1.0"), extra=[b"APP_MODE=prod", b"REQUEST_METHOD=PUT"])
    assert env[b"APP_MODE"] == b"prod" and env[b"REQUEST_METHOD"] == b"GET"
    assert env[b"SERVER_PROTOCOL"] == b"HTTP/1.0"


def test_one_connection_environ_serves_many_requests_each_its_own():
    base = ConnEnviron(CONN, b"/api", [b"APP=1", b"REMOTE_ADDR=spoof", b"HTTP_X_MODE=route", b"PATH_INFO=x"])
    fixed = list(base.fixed)
    first = base.environ(b"POST", b"/api/a?q=1", [(b"x-mode", b"request"), (b"content-length", b"3"),
                                                  (b"x-one", b"1")], b"1.1", False, b"/a", b"q=1")
    second = base.environ(b"GET", b"/api/b", [], b"1.0", False, b"/b", b"")
    assert base.fixed == fixed  # requests add to a copy
    for env in (first, second):
        keys = [item.partition(b"=")[0] for item in env]
        assert len(keys) == len(set(keys))  # each variable once
    first_env, second_env = (dict(item.split(b"=", 1) for item in env) for env in (first, second))
    assert first_env[b"HTTP_X_MODE"] == b"request" and first_env[b"HTTP_X_ONE"] == b"1"
    assert first_env[b"CONTENT_LENGTH"] == b"3" and first_env[b"PATH_INFO"] == b"/a"
    assert second_env[b"HTTP_X_MODE"] == b"route"  # the route's value when the request has none
    assert b"HTTP_X_ONE" not in second_env and b"CONTENT_LENGTH" not in second_env
    assert (second_env[b"REQUEST_METHOD"], second_env[b"PATH_INFO"], second_env[b"QUERY_STRING"]) == (b"GET", b"/b", b"")
    assert second_env[b"SERVER_NAME"] == b"10.0.0.1" and second_env[b"SERVER_PROTOCOL"] == b"HTTP/1.0"
    assert first_env[b"REMOTE_ADDR"] == second_env[b"REMOTE_ADDR"] == b"10.0.0.2"
    assert first_env[b"APP"] == b"1" and first_env[b"SCRIPT_NAME"] == b"/api"


def test_split_head_takes_a_whole_block_or_leaves_it_to_the_parser():
    head, body = split_head(b"Status: 201 Made\nX-A: 1\n\nbody")
    assert (head.status, head.reason, head.headers, body) == (201, b"Made", [(b"X-A", b"1")], b"body")
    assert split_head(b"X-A: 1\n") is None                      # no empty line yet
    assert split_head(b"\nbody") is None                        # the parser says what is wrong
    assert split_head(b"X-A: " + b"a" * 200 + b"\n\n", 100) is None
    with pytest.raises(CGIError, match="colon"):
        split_head(b"no colon\n\n")
    with pytest.raises(CGIError, match="colon"):  # a malformed block is refused every time
        split_head(b"no colon\n\n")
    again, rest = split_head(b"Status: 201 Made\nX-A: 1\n\nmore")
    assert (again.status, again.headers, rest) == (201, [(b"X-A", b"1")], b"more")


def test_targets_and_paths():
    assert split_target(b"/a/b?x=1?y") == (b"/a/b", b"x=1?y")
    assert split_target(b"http://host:80/p?q") == (b"/p", b"q")
    assert split_target(b"http://host") == (b"/", b"")
    with pytest.raises(BadRequest):
        split_target(b"*")
    assert decode_path(b"/a%20b/%C3%A9") == "/a b/é".encode()
    with pytest.raises(BadRequest, match="NUL"):
        decode_path(b"/a%00b")
    assert remove_dot_segments(b"/a/./b/../c") == b"/a/c"
    assert remove_dot_segments(b"/api/../admin") == b"/admin"
    assert remove_dot_segments(b"/../../x") == b"/x"
    assert remove_dot_segments(b"/a/b/..") == b"/a/"
    assert remove_dot_segments(b"/a.b/c") == b"/a.b/c"


# -- response parsing ---------------------------------------------------------------


def test_parser_splits_head_and_body_across_writes():
    parser = ResponseParser()
    assert parser.feed(b"Status: 201 Created\r\nContent-Type: text/plain\r\nX-A: 1\r") == b""
    assert parser.head is None
    assert parser.feed(b"\n\r") == b""
    assert parser.feed(b"\nhello") == b"hello"
    head = parser.head
    assert (head.status, head.reason) == (201, b"Created")
    assert head.headers == [(b"Content-Type", b"text/plain"), (b"X-A", b"1")]
    assert parser.feed(b" more") == b" more"


def test_parser_lf_only_defaults_and_content_length():
    parser = ResponseParser()
    assert parser.feed(b"Content-Type: text/html\nContent-Length: 3\nConnection: keep-alive\n\nabc") == b"abc"
    assert parser.head.status == 200 and parser.head.content_length == 3
    assert (b"Connection", b"keep-alive") not in parser.head.headers  # hop-by-hop: the server's


def test_parser_redirects():
    local = ResponseParser()
    local.feed(b"Location: /other?x=1\n\n")
    assert local.head.local_redirect == b"/other?x=1"
    client = ResponseParser()
    client.feed(b"Location: https://example.org/\n\n")
    assert client.head.status == 302 and client.head.local_redirect is None
    explicit = ResponseParser()
    explicit.feed(b"Status: 301 Moved\nLocation: /x\nContent-Type: text/plain\n\n")
    assert explicit.head.status == 301 and explicit.head.local_redirect is None


@pytest.mark.parametrize("output, message", [
    (b"no colon here\n\n", "without a colon"),
    (b"Bad Name: x\n\n", "bad header name"),
    (b"Status: abc\n\n", "bad Status"),
    (b"Status: 100 Continue\n\n", "bad Status"),
    (b"Status: 200\nStatus: 201\n\n", "two Status"),
    (b"Content-Length: ten\n\n", "bad Content-Length"),
    (b"X: a\x01b\n\n", "bad value"),
    (b"\nbody", "empty"),
    (b"Location: relative/path\n\n", "neither a local path"),
])
def test_parser_rejects_malformed_header_blocks(output, message):
    with pytest.raises(CGIError, match=message):
        ResponseParser().feed(output)


def test_parser_limits_and_end_of_output():
    parser = ResponseParser(max_head_bytes=100)
    with pytest.raises(CGIError, match="longer than 100"):
        parser.feed(b"X-Long: " + b"a" * 200)
    with pytest.raises(CGIError, match="longer than 100"):  # the whole block in one write, too
        ResponseParser(max_head_bytes=100).feed(b"X-Long: " + b"a" * 200 + b"\n\nbody")
    unfinished = ResponseParser()
    unfinished.feed(b"Content-Type: text/plain\n")
    with pytest.raises(CGIError, match="before the empty line"):
        unfinished.finish()
    with pytest.raises(CGIError, match="wrote nothing"):
        ResponseParser().finish()


# -- routes ---------------------------------------------------------------------------


def test_router_longest_match_and_exact_paths():
    router = Router([Route("/...", TOUR), Route("/api/...", TOUR), Route("/api/v2/...", TOUR),
                     Route("/api", TOUR), Route("/health", TOUR)])
    assert router.match(b"/api/users").route.path == "/api/..."
    assert router.match(b"/api/users")[1:] == (b"/api", b"/users")
    assert router.match(b"/api/v2/x")[1:] == (b"/api/v2", b"/x")
    assert router.match(b"/api").route.path == "/api"           # exact beats the same-length prefix
    assert router.match(b"/apix").route.path == "/..."          # a prefix matches whole segments
    assert router.match(b"/health")[1:] == (b"/health", b"")
    assert router.match(b"/other")[1:] == (b"", b"/other")
    assert Router([Route("/only", TOUR)]).match(b"/nope") is None


def test_route_defaults_after_checking():
    route = Router([Route("/...", TOUR)]).routes[0]
    assert route.argv == ["cgi_tour.wasm"] and route.timeout == 30.0
    assert route.max_concurrency == 64 and not isinstance(route.module, str)


@pytest.mark.parametrize("kwargs, message", [
    (dict(path="api/..."), "key 'path'"),
    (dict(path="/a/.../b"), "key 'path'"),
    (dict(fuel=-1), "key 'fuel'"),
    (dict(fuel="many"), "key 'fuel'"),
    (dict(timeout=0), "key 'timeout'"),
    (dict(max_concurrency=0), "key 'max_concurrency'"),
    (dict(argv="tour"), "key 'argv'"),
    (dict(env={"A=B": "x"}), "key 'env'"),
    (dict(dirs=[("/nonexistent-dir", "/d", True)]), "key 'dirs'"),
    (dict(module="/nonexistent.wasm"), "key 'module'"),
])
def test_route_errors_name_the_route_and_key(kwargs, message):
    values = dict(path="/x/...", module=TOUR)
    values.update(kwargs)
    with pytest.raises(RouteError, match=message) as info:
        Router([Route(**values)])
    assert str(info.value).startswith("route 1")


def _write(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "routes.toml"
    path.write_text(text)
    return str(path)


def test_load_routes_resolves_paths_relative_to_the_file(tmp_path):
    (tmp_path / "static").mkdir()
    os.symlink(TOUR, tmp_path / "tour.wasm")
    router = load_routes(_write(tmp_path, """
        [[route]]
        path = "/api/..."
        module = "tour.wasm"
        argv = ["api", "--web"]
        env = { KEY = "value" }
        dirs = [ { host = "static", guest = "/static", readonly = true } ]
        fuel = 100_000_000
        max_memory = "64MiB"
        timeout = 5.0
        max_concurrency = 8
        max_queue = 2
    """))
    route = router.routes[0]
    assert route.argv == ["api", "--web"] and dict(route.env) == {"KEY": "value"}
    assert route.preopens[0].host_path == str(tmp_path / "static") and route.preopens[0].readonly
    assert route.max_memory_pages == 1024 and route.fuel == 100_000_000
    assert (route.timeout, route.max_concurrency, route.max_queue) == (5.0, 8, 2)


@pytest.mark.parametrize("text, message", [
    ('[[route]]\npath = "/a"\nmodule = "{tour}"\ncolour = "red"\n', "route 1 (/a): unknown key 'colour'"),
    ('[[route]]\npath = "/a"\n', "route 1 (/a): missing key 'module'"),
    ('[[route]]\npath = "/a"\nmodule = "{tour}"\nfuel = "x"\n', "route 1 (/a): key 'fuel'"),
    ('[[route]]\npath = "/a"\nmodule = "{tour}"\n[[route]]\npath = "/a"\nmodule = "{tour}"\n',
     "route 2 (/a): key 'path': duplicate of route 1"),
    ('[[route]]\npath = "/a"\nmodule = "missing.wasm"\n', "route 1 (/a): key 'module': .*missing.wasm"),
    ('[[route]]\npath = "/a"\nmodule = "{tour}"\nmax_memory = "lots"\n', "route 1 (/a): key 'max_memory'"),
    ('[[route]]\npath = "/a"\nmodule = "{tour}"\ndirs = [ {{ host = "nope", guest = "/n" }} ]\n',
     "route 1 (/a): key 'dirs'"),
    ('title = "x"\n', "unknown key 'title'"),
    ('[[route]\n', "not valid TOML"),
    ('', "no routes"),
])
def test_routes_file_errors_are_one_line_naming_file_route_and_key(tmp_path, text, message):
    path = _write(tmp_path, text.format(tour=TOUR))
    with pytest.raises(RouteError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        load_routes(path)
    assert str(info.value).startswith(path + ": ")
    assert "\n" not in str(info.value)


def test_a_module_that_is_not_a_handler_is_refused(tmp_path):
    (tmp_path / "lib.wasm").write_bytes(b"\0asm\1\0\0\0")
    with pytest.raises(RouteError, match="exports no _start"):
        load_routes(_write(tmp_path, '[[route]]\npath = "/"\nmodule = "lib.wasm"\n'))


# -- access log ----------------------------------------------------------------------


def test_access_log_formats_and_escapes():
    out = io.StringIO()
    record = AccessRecord("127.0.0.1", b'GET /a"b\x01 HTTP/1.1', 200, 21, b"-", b"curl/8.0", 1e9)
    AccessLog(out, "common").write(record)
    AccessLog(out, "combined").write(AccessRecord("::1", b"HEAD / HTTP/1.0", 404, 0, b"http://r/", b"ua", 1e9))
    common, combined = out.getvalue().splitlines()
    assert common == '127.0.0.1 - - [09/Sep/2001:01:46:40 +0000] "GET /a\\"b\\x01 HTTP/1.1" 200 21'
    assert combined == '::1 - - [09/Sep/2001:01:46:40 +0000] "HEAD / HTTP/1.0" 404 - "http://r/" "ua"'
    with pytest.raises(ValueError):
        AccessLog(out, "json")

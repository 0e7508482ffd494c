"""The HTTP connection's own response writer (asyncwasm/serve/http_conn.py):
h11 parses the requests, the connection serializes the responses itself.

Each test drives ``serve_connection`` over an in-memory stream with a Python
handler and reads the raw bytes back with an independent h11 client, so a
framing mistake (a missing chunk terminator, a body on a HEAD, a wrong
``Connection``, answers out of order) fails here."""

from __future__ import annotations

from typing import Awaitable, Callable, Optional

import h11
import pytest
import trio
import trio.testing

from asyncwasm.serve.cgi import ConnInfo
from asyncwasm.serve.http_conn import Exchange, HttpLimits, serve_connection

INFO = ConnInfo(("127.0.0.1", 40000), ("127.0.0.1", 8080))


async def _route(exchange: Exchange) -> None:
    """Answers by path: /len/N (Content-Length), /chunks/N (no length: chunked),
    /204, /more and /less (a body that breaks its Content-Length), /fail
    (an exception after the head), /echo (reads the body, sends it back)."""
    path = exchange.request.target.decode()
    if path.startswith("/len/"):
        body = path[5:].encode() * 3
        await exchange.send_head(200, b"", [(b"Content-Length", b"%d" % len(body))], body)
    elif path.startswith("/chunks/"):
        await exchange.send_head(200, b"", [(b"Content-Type", b"text/plain")])
        for part in path[8:].split(","):
            await exchange.send_body(part.encode())
    elif path == "/204":
        await exchange.send_head(204, b"", [])
    elif path == "/more":
        await exchange.send_head(200, b"", [(b"Content-Length", b"2")], b"ab")
        await exchange.send_body(b"c")
    elif path == "/less":
        await exchange.send_head(200, b"", [(b"Content-Length", b"5")], b"ab")
    elif path == "/fail":
        await exchange.send_head(200, b"", [], b"partial")
        raise RuntimeError("the handler broke after its head")
    elif path == "/echo":
        body = b""
        while chunk := await _whole(exchange.receive_body(65536)):
            body += chunk
        await exchange.send_head(200, b"", [(b"Content-Length", b"%d" % len(body))], body)
    else:
        await exchange.respond_error(404)
        return
    await exchange.end()


async def _whole(chunk: "bytes | Awaitable[bytes]") -> bytes:
    return chunk if isinstance(chunk, bytes) else await chunk


async def _exchange_raw(data: bytes, handle: Callable[[Exchange], Awaitable[None]] = _route,
                        *, then: Optional[bytes] = None) -> tuple[bytes, bool]:
    """Send ``data`` (and ``then``, after the first answer bytes); read until
    the server closes or goes quiet: (bytes received, whether it closed)."""
    client, server = trio.testing.memory_stream_pair()
    log: list[str] = []
    received = bytearray()
    closed = False
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: serve_connection(server, INFO, handle, HttpLimits(read_timeout=2.0),
                                                        log=log.append))
            await client.send_all(data)
            if then is not None:
                received += await client.receive_some(65536)
                await client.send_all(then)
            while True:
                with trio.move_on_after(0.3):
                    chunk = await client.receive_some(65536)
                    if not chunk:
                        closed = True
                        break
                    received += chunk
                    continue
                break
            nursery.cancel_scope.cancel()
    return bytes(received), closed


def _parse(raw: bytes, requests: list[tuple[str, str]], http_version: str = "1.1") -> list[tuple[int, dict, bytes]]:
    """The responses in ``raw`` as an h11 client reads them, for ``requests`` (method, target)."""
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(raw)
    conn.receive_data(b"")
    answers = []
    for method, target in requests:
        conn.send(h11.Request(method=method, target=target, headers=[("Host", "t")], http_version=http_version))
        conn.send(h11.EndOfMessage())
        status, headers, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status, headers = event.status_code, {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event!r} after {answers}")
        answers.append((status, headers, body))
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
    return answers


def _get(target: str, method: str = "GET", version: str = "1.1", extra: str = "") -> bytes:
    return f"{method} {target} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


async def test_pipelined_requests_are_answered_in_order_with_their_own_framing():
    requests = [("GET", "/len/ab"), ("GET", "/chunks/x,yz,"), ("HEAD", "/len/q"), ("HEAD", "/chunks/a"),
                ("GET", "/204"), ("GET", "/nowhere"), ("GET", "/len/end")]
    raw, closed = await _exchange_raw(b"".join(_get(t, m) for m, t in requests))
    assert not closed  # keep-alive
    answers = _parse(raw, requests)
    assert [a[0] for a in answers] == [200, 200, 200, 200, 204, 404, 200]
    assert answers[0][2] == b"ababab" and answers[0][1]["content-length"] == "6"
    assert answers[1][2] == b"xyz" and answers[1][1]["transfer-encoding"] == "chunked"
    assert answers[2][2] == b"" and answers[2][1]["content-length"] == "3"  # HEAD: the GET's headers, no body
    assert answers[3][2] == b"" and "content-length" not in answers[3][1]
    assert answers[4][2] == b"" and "transfer-encoding" not in answers[4][1]
    assert answers[6][2] == b"endendend"
    assert all("connection" not in a[1] and "date" in a[1] for a in answers)
    assert raw.endswith(b"\r\n\r\nendendend")  # nothing after the last answer


async def test_chunked_body_on_the_wire():
    raw, _ = await _exchange_raw(_get("/chunks/hello,,world"))
    head, body = raw.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"  # an empty write is no chunk


async def test_connection_close_is_honoured_and_later_pipelined_requests_are_not_answered():
    raw, closed = await _exchange_raw(_get("/len/a", extra="Connection: keep-alive, close\r\n") + _get("/len/b"))
    assert closed
    assert raw.count(b"HTTP/1.1 ") == 1 and b"\r\nConnection: close\r\n" in raw and raw.endswith(b"aaa")


@pytest.mark.parametrize("target, body", [("/len/z", b"zzz"), ("/chunks/a,b", b"ab")])
async def test_http10_gets_one_response_then_close(target, body):
    raw, closed = await _exchange_raw(_get(target, version="1.0") + _get("/len/b", version="1.0"))
    assert closed
    head, got = raw.split(b"\r\n\r\n", 1)
    assert got == body  # no chunks for HTTP/1.0: the body ends with the connection
    assert b"Connection: close" in head and b"Transfer-Encoding" not in head
    assert raw.count(b"HTTP/1.1 ") == 1


async def test_more_body_than_the_content_length_closes_the_connection_after_it():
    raw, closed = await _exchange_raw(_get("/more") + _get("/len/b"))
    assert closed and raw.count(b"HTTP/1.1 ") == 1 and raw.endswith(b"\r\n\r\nab")  # never the extra byte


@pytest.mark.parametrize("target", ["/less", "/fail"])
async def test_a_response_that_cannot_be_completed_closes_the_connection(target):
    raw, closed = await _exchange_raw(_get(target) + _get("/len/b"))
    assert closed
    assert raw.count(b"HTTP/1.1 ") == 1  # the pipelined request is not answered
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target=target, headers=[("Host", "t")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")
    events = []
    with pytest.raises(h11.RemoteProtocolError):  # the client sees a truncated body, never a wrong one
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            events.append(event)
    assert isinstance(events[0], h11.Response)


async def test_an_unread_body_is_drained_and_the_connection_goes_on():
    post = b"POST /len/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    raw, closed = await _exchange_raw(post + _get("/len/b"))
    assert not closed
    assert [a[2] for a in _parse(raw, [("POST", "/len/a"), ("GET", "/len/b")])] == [b"aaa", b"bbb"]


async def test_expect_continue():
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    raw, closed = await _exchange_raw(head, then=b"12345")
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ") and raw.endswith(b"\r\n\r\n12345")
    assert not closed
    # answered without reading the body: the client may never send it, so the connection closes
    raw, closed = await _exchange_raw(head.replace(b"/echo", b"/len/x"))
    assert closed and b"100 Continue" not in raw
    assert b"\r\nConnection: close\r\n" in raw and raw.endswith(b"xxx")


async def test_a_head_that_is_no_valid_http_is_refused_before_any_byte():
    async def bad(exchange: Exchange) -> None:
        await exchange.send_head(200, b"", [(b"X-Evil", b"a\r\nSet-Cookie: b=c")])

    raw, closed = await _exchange_raw(_get("/"), bad)
    assert closed and raw == b""

    async def twice(exchange: Exchange) -> None:
        await exchange.send_head(200, b"", [(b"Content-Length", b"1"), (b"content-length", b"2")], b"x")

    raw, closed = await _exchange_raw(_get("/"), twice)
    assert closed and raw == b""

"""A pure-Python HTTP/1.1 server on trio + h11 doing netmods/http_server's work.

    python benchmarks/h11_server.py --listen 127.0.0.1:8081

The baseline of the HTTP benchmark (benchmarks/http_load.py): the same
routes and answers as netmods/http_server (``GET|HEAD /`` -> 200
``hello from asyncwasm\\n``, ``POST /echo`` -> 200 with the request body,
``GET /stats`` -> JSON counters, 404/405 otherwise, 400 on malformed
requests), keep-alive and chunked request bodies handled by h11, one trio
task per connection. Written the way a careful trio user would write it,
not tuned against the Wasm server.

Prints ``listening on HOST:PORT`` on stderr once bound (port 0: a free port).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

import h11
import trio

HELLO = b"hello from asyncwasm\n"
MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 15.0


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0
        self.active = 0
        self.bad_requests = 0


def _headers(body: bytes, content_type: bytes = b"text/plain", extra: Optional[list] = None) -> list:
    return [(b"Content-Type", content_type), (b"Content-Length", str(len(body)).encode())] + (extra or [])


def route(method: bytes, target: bytes, body: bytes, stats: Stats) -> tuple[int, list, bytes]:
    """(status, headers, body) for one request."""
    path = target.split(b"?", 1)[0]
    if path == b"/":
        if method not in (b"GET", b"HEAD"):
            return 405, _headers(b"method not allowed\n", extra=[(b"Allow", b"GET, HEAD")]), b"method not allowed\n"
        return 200, _headers(HELLO), HELLO
    if path == b"/echo":
        if method != b"POST":
            return 405, _headers(b"method not allowed\n", extra=[(b"Allow", b"POST")]), b"method not allowed\n"
        return 200, _headers(body, b"application/octet-stream"), body
    if path == b"/stats":
        data = json.dumps({"requests": stats.requests, "connections": stats.connections, "active": stats.active,
                           "bad_requests": stats.bad_requests}, separators=(",", ":")).encode()
        return 200, _headers(data, b"application/json"), data
    return 404, _headers(b"not found\n"), b"not found\n"


async def handle(stream: trio.SocketStream, stats: Stats) -> None:
    stats.connections += 1
    stats.active += 1
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    try:
        while True:
            try:
                with trio.fail_after(IDLE_TIMEOUT):
                    request, body = await _read_request(stream, conn)
            except (h11.RemoteProtocolError, _TooLarge) as exc:
                stats.bad_requests += 1
                status = 413 if isinstance(exc, _TooLarge) else 400
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    text = b"bad request\n" if status == 400 else b"payload too large\n"
                    await _send(stream, conn, status, _headers(text, extra=[(b"Connection", b"close")]), text)
                return
            if request is None:
                return
            stats.requests += 1
            status, headers, payload = route(request.method, request.target, body, stats)
            if request.method == b"HEAD":
                payload = b""
            await _send(stream, conn, status, headers, payload)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, h11.LocalProtocolError):
        pass
    finally:
        stats.active -= 1
        await stream.aclose()


class _TooLarge(Exception):
    pass


async def _read_request(stream: trio.SocketStream, conn: h11.Connection) -> tuple[Optional[h11.Request], bytes]:
    request: Optional[h11.Request] = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            conn.receive_data(await stream.receive_some(65536))
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise _TooLarge()
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None, b""


async def _send(stream: trio.SocketStream, conn: h11.Connection, status: int, headers: list, body: bytes) -> None:
    data = conn.send(h11.Response(status_code=status, headers=headers))
    if body:
        data += conn.send(h11.Data(data=body))
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)


async def serve(host: str, port: int, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
    stats = Stats()
    listeners = await trio.open_tcp_listeners(port, host=host, backlog=1024)
    address = listeners[0].socket.getsockname()
    print(f"listening on {address[0]}:{address[1]}", file=sys.stderr, flush=True)
    task_status.started(address)
    await trio.serve_listeners(lambda stream: handle(stream, stats), listeners)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8081", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        trio.run(serve, host, int(port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A pure trio + h11 server answering every request with one fixed response.

    python benchmarks/h11_fixed_server.py --listen 127.0.0.1:0

The baseline of the handler-mode benchmark (benchmarks/handler_load.py):
the bytes ``asyncwasm serve --handler netmods/handlers/minimal.wasm``
sends (``Date``, ``Content-Type: text/plain``, ``Content-Length: 21``,
``hello from asyncwasm\\n``), made by the Python code a careful trio user
would write: one task per connection, h11 parsing each request, the whole
response in one ``send_all``, keep-alive, the request body read and
dropped. Prints ``listening on HOST:PORT`` on stderr once bound.
"""

from __future__ import annotations

import argparse
import sys
import time

import h11
import trio

BODY = b"hello from asyncwasm\n"
HEADERS = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % len(BODY))]
IDLE_TIMEOUT = 15.0
_date = [0, b""]


def http_date() -> bytes:
    now = int(time.time())
    if _date[0] != now:
        _date[:] = [now, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode()]
    return _date[1]


async def handle(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    try:
        while True:
            with trio.move_on_after(IDLE_TIMEOUT):
                event = conn.next_event()
                while not isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    event = conn.next_event()
            if not isinstance(event, h11.EndOfMessage):
                return
            response = h11.Response(status_code=200, reason=b"OK", headers=[(b"Date", http_date()), *HEADERS])
            await stream.send_all(conn.send(response) + conn.send(h11.Data(data=BODY))
                                  + conn.send(h11.EndOfMessage()))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def main(host: str, port: int) -> None:
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    await trio.serve_listeners(handle, listeners)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8082", metavar="HOST:PORT")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    try:
        trio.run(main, host, int(port))
    except KeyboardInterrupt:
        pass

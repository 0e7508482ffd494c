"""A load generator that makes an exact number of requests, each after a
pause: every request finds the server waiting (one wake-up per request),
and the work done is the same from run to run, so a server's instruction
counts (callgrind) compare between builds.

    python benchmarks/paced_client.py PORT --connections 32 --requests 100 --pause 0.002

Each round sends ``GET /`` on every connection, reads every answer
(``Content-Length`` bodies, keep-alive), then sleeps ``pause`` seconds.
Prints the number of requests answered. Used by ``serve_inprocess.py
--requests``; plain blocking sockets, so it costs the server nothing.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def read_answer(sock: socket.socket, buffer: bytearray) -> None:
    """Read one answer (head + ``Content-Length`` body) from ``sock``; what
    follows it stays in ``buffer``."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end]).lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip() == b"content-length":
                    length = int(value)
            if len(buffer) >= end + 4 + length:
                if not head.startswith(b"http/1.1 200"):
                    raise RuntimeError(f"unexpected answer: {head[:40]!r}")
                del buffer[:end + 4 + length]
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        buffer += chunk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--requests", "-n", type=int, default=100, help="per connection")
    parser.add_argument("--pause", type=float, default=0.002, help="seconds between rounds")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    socks = [socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout) for _ in range(args.connections)]
    buffers = [bytearray() for _ in socks]
    answered = 0
    for _ in range(args.requests):
        for sock in socks:
            sock.sendall(REQUEST)
        for sock, buffer in zip(socks, buffers):
            read_answer(sock, buffer)
            answered += 1
        time.sleep(args.pause)
    for sock in socks:
        sock.close()
    print(answered)
    return 0


if __name__ == "__main__":
    sys.exit(main())

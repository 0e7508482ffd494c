"""No state survives from one handler request to the next (issue 13).

A WAT handler first checks that it starts clean -- every byte of its memory
zero but its data segment, which is intact; two pages; its mutable global
at its initial value; its table slot empty; stdin without flags; no fd past
the preopen -- and exits with a code naming the first thing that was not
(500, logged). Then it answers, and dirties all of it: grows the memory and
fills every byte with 0xAB, sets the global, fills the table slot, sets
stdin NONBLOCK and leaves a file open. Requests alternate between a version
that dirties its 2 pages (few enough host pages for the engine to zero
them in place for the next instance) and one that grows to 40 and dirties
them all (too many: discarded), and both share one pooled reservation."""

from __future__ import annotations

import pathlib

import h11
import trio
import trio.testing

from asyncwasm.serve import HandlerServer, Route, Router
from asyncwasm.serve.cgi import ConnInfo
from asyncwasm.wasi.config import Preopen

from .wat import wat

_HANDLER = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $setflags (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2 64)
  (global $g (mut i32) (i32.const 7))
  (table 2 funcref)
  (elem declare func $_start)
  ;; 16: marker, 20: the answer (32 bytes), 52: the file name
  (data (i32.const 16) "DATAContent-Type: text/plain\n\nclean\nf")
  (func $fail (param i32) (call $exit (local.get 0)) (unreachable))
  (func $_start (export "_start") (local $i i32)
    ;; every byte zero, but the data segment [16, 53)
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (local.get $i) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.and (i32.ne (i32.load8_u (local.get $i)) (i32.const 0))
                     (i32.or (i32.lt_u (local.get $i) (i32.const 16)) (i32.ge_u (local.get $i) (i32.const 53))))
          (then (call $fail (i32.const 1))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (if (i32.ne (i32.load (i32.const 16)) (i32.const 0x41544144)) (then (call $fail (i32.const 2))))
    (if (i32.ne (memory.size) (i32.const 2)) (then (call $fail (i32.const 3))))
    (if (i32.ne (global.get $g) (i32.const 7)) (then (call $fail (i32.const 4))))
    (if (i32.eqz (ref.is_null (table.get (i32.const 1)))) (then (call $fail (i32.const 5))))
    (if (call $fdstat (i32.const 0) (i32.const 1024)) (then (call $fail (i32.const 6))))
    (if (i32.load16_u (i32.const 1026)) (then (call $fail (i32.const 6))))
    (if (i32.ne (call $fdstat (i32.const 4) (i32.const 1024)) (i32.const 8)) (then (call $fail (i32.const 7))))
    ;; clean: answer
    (i32.store (i32.const 1100) (i32.const 20))
    (i32.store (i32.const 1104) (i32.const 32))
    (drop (call $fd_write (i32.const 1) (i32.const 1100) (i32.const 1) (i32.const 1108)))
    ;; then dirty everything
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 52) (i32.const 1) (i32.const 0)
                         (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 1200))
      (then (call $fail (i32.const 8))))
    (if (i32.ne (i32.load (i32.const 1200)) (i32.const 4)) (then (call $fail (i32.const 9))))
    (if (call $setflags (i32.const 0) (i32.const 4)) (then (call $fail (i32.const 10))))
    (global.set $g (i32.const 99))
    (table.set (i32.const 1) (ref.func $_start))
    (drop (memory.grow (i32.const GROW)))
    (memory.fill (i32.const 0) (i32.const 0xAB) (i32.mul (memory.size) (i32.const 65536))))
)
"""


async def test_a_request_sees_nothing_of_the_one_before(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_bytes(b"a file the handler leaves open")
    routes = []
    for name, grow in (("small", 0), ("big", 38)):
        module = tmp_path / f"{name}.wasm"
        module.write_bytes(wat(_HANDLER.replace("GROW", str(grow))))
        routes.append(Route(f"/{name}/...", str(module), dirs=[Preopen(str(tmp_path), "/data", True)]))
    log: list[str] = []
    server = HandlerServer(Router(routes), log=log.append)
    await server.check()
    order = ["small", "small", "big", "small", "big", "big", "small"]
    client, stream = trio.testing.memory_stream_pair()
    answers = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve_stream, stream, ConnInfo(("127.0.0.1", 1), ("127.0.0.1", 2)))
            conn = h11.Connection(h11.CLIENT)
            for name in order:
                await client.send_all(conn.send(h11.Request(method="GET", target=f"/{name}/", headers=[("Host", "t")]))
                                      + conn.send(h11.EndOfMessage()))
                status, body = 0, b""
                while not isinstance(event := conn.next_event(), h11.EndOfMessage):
                    if event is h11.NEED_DATA:
                        conn.receive_data(await client.receive_some(65536))
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        body += event.data
                conn.start_next_cycle()
                answers.append((name, status, body))
            nursery.cancel_scope.cancel()
    assert answers == [(name, 200, b"clean\n") for name in order], log

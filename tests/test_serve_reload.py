"""Module delivery in one process: a Server on a ModuleSource (a file, or a
URL on an HTTP/HTTPS publisher made in the test) reloaded under continuous
keep-alive load; watch (rename and in-place writes); signatures; fallback;
every bad input refused with one line while the serving version goes on.
Loopback only; every test is bounded by trio.fail_after."""

from __future__ import annotations

import hashlib
import os

import h11
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from asyncwasm.serve import Handoff, ModuleSource, Server
from asyncwasm.serve.source import Refused
from asyncwasm.signing import parse_public_key, sign_bytes
from cryptography.hazmat.primitives import serialization

from .modserver import publisher
from .modvariants import greeting, variant
from .test_serve_server import h11_request
from .test_serve_swap import Load
from .tlscerts import make_pki

TIMEOUT = 60
EMBEDDED = b"hello from asyncwasm\n"


def _key() -> tuple[Ed25519PrivateKey, object]:
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, parse_public_key(pem, "test key")


async def _start(nursery: trio.Nursery, source: ModuleSource, *, instances: int = 2) -> tuple[Server, list[str], int]:
    log: list[str] = []
    handoff = Handoff.bind(["127.0.0.1:0"])
    server = Server(source, handoff, instances=instances, drain=10, start_timeout=10,
                    stdout=bytearray(), stderr=bytearray(), log=log.append)
    await nursery.start(server.run)
    return server, log, handoff.addresses()[0][1]


async def _get(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        status, _, body = await h11_request(stream, h11.Connection(h11.CLIENT), "GET", "/")
        assert status == 200
        return body


async def _until(predicate, what: str, log: list[str]) -> None:
    with trio.move_on_after(20):
        while not predicate():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"no {what}:\n" + "\n".join(log))


def _lines(log: list[str], text: str) -> list[str]:
    return [line for line in log if text in line]


async def test_signed_https_source_polled_and_swapped_under_load(tmp_path):
    pki = make_pki(tmp_path)
    private, trusted = _key()
    with publisher(tls=pki, host="localhost") as pub:
        pub.put("/app.wasm", variant("v1"))
        pub.put("/app.wasm.sig", sign_bytes(private, variant("v1")))
        source = ModuleSource(pub.url("/app.wasm"), trust_keys=[trusted], poll=0.1, ca_file=str(pki.ca), timeout=5)
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                server, log, port = await _start(nursery, source, instances=3)
                assert server.version.signer == trusted.id and server.version.origin == pub.url("/app.wasm")
                load = Load(port, clients=6, per_connection=10)
                await load.run(nursery)
                await load.until(60)
                for tag in ("v2", "v3"):
                    pub.put(f"/app.wasm.sig", sign_bytes(private, variant(tag)))
                    pub.put(f"/app.wasm", variant(tag))
                    digest = hashlib.sha256(variant(tag)).hexdigest()
                    await _until(lambda: server.version.sha256 == digest, f"swap to {tag}", log)
                    assert source.settled.sha256 == digest and source.settled.data == b""  # bytes not kept
                    count = len(load.answers)
                    await load.until(count + 60)
                await load.finish()
                await _until(lambda: server.reloader.counts["unchanged"] >= 2, "polls with nothing new", log)
                server.shutdown()
    assert load.failures == []
    assert set(load.answers) == {greeting("v1"), greeting("v2"), greeting("v3")}
    assert all(len(seen) <= 1 for seen in load.connections)
    swapped = _lines(log, "swapped in")
    assert len(swapped) == 2 and all(f"key {trusted.id}" in line and "reload (poll)" in line for line in swapped)
    assert server.reloader.counts["swapped"] == 2
    # polls between publications were conditional and answered 304
    conditional = [headers for path, headers in pub.requests if path == "/app.wasm" and "if-none-match" in headers]
    assert conditional
    assert not _lines(log, "unchanged")  # polls that found nothing new are counted, not logged


async def test_watch_sees_rename_and_in_place_writes(tmp_path):
    path = tmp_path / "app.wasm"
    path.write_bytes(variant("v1"))
    source = ModuleSource(path, watch=True, watch_interval=0.02, debounce=0.3)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, log, port = await _start(nursery, source)
            assert await _get(port) == greeting("v1")
            # atomic replace: write elsewhere, rename over
            staged = tmp_path / "app.wasm.new"
            staged.write_bytes(variant("v2"))
            os.replace(staged, path)
            await _until(lambda: len(_lines(log, "swapped in")) == 1, "swap after rename", log)
            assert await _get(port) == greeting("v2")
            # in place, in pieces with pauses shorter than the debounce
            data = variant("v3")
            with open(path, "r+b") as f:
                f.truncate(0)
                for start in range(0, len(data), 4096):
                    f.write(data[start:start + 4096])
                    f.flush()
                    await trio.sleep(0.01)
            await _until(lambda: len(_lines(log, "swapped in")) == 2, "swap after in-place write", log)
            assert await _get(port) == greeting("v3")
            # touched, same bytes: an attempt, unchanged, nothing swapped
            os.utime(path, None)
            await _until(lambda: _lines(log, "unchanged"), "unchanged attempt", log)
            assert server.generation == 3
            server.shutdown()
    assert all("reload (watch) from" in line for line in _lines(log, "reload ("))
    assert not _lines(log, "refused")


async def test_signature_refusals_keep_the_serving_version(tmp_path):
    private, trusted = _key()
    other, _ = _key()
    path = tmp_path / "app.wasm"
    sig = tmp_path / "app.wasm.sig"
    path.write_bytes(variant("v1"))
    sig.write_bytes(sign_bytes(private, variant("v1")))
    source = ModuleSource(path, trust_keys=[trusted])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, log, port = await _start(nursery, source)
            cases = [
                ("bad signature", variant("v2"), sign_bytes(private, variant("v2"))[:-10] + b"AAAAAAAAA\n"),
                ("modified bytes", variant("v2"), sign_bytes(private, variant("v1"))),
                ("untrusted key", variant("v2"), sign_bytes(other, variant("v2"))),
                ("wrong length", variant("v2"), bytes(63)),
                ("unsigned", variant("v2"), None),
            ]
            for name, data, signature in cases:
                path.write_bytes(data)
                if signature is None:
                    sig.unlink()
                else:
                    sig.write_bytes(signature)
                attempt = await server.reloader.check_now("test")
                assert attempt.outcome == "signature", (name, attempt.line)
                assert "signature" in attempt.line and attempt.line.count("\n") == 0
                assert await _get(port) == greeting("v1"), name
            sig.write_bytes(sign_bytes(private, variant("v2")))
            attempt = await server.reloader.check_now("test")
            assert attempt.outcome == "swapped" and f"key {trusted.id}" in attempt.line
            assert await _get(port) == greeting("v2")
            server.shutdown()
    assert server.reloader.counts["signature"] == 5
    assert len(_lines(log, "refused (signature)")) == 5


async def test_fallback_at_start_then_the_source_arrives(tmp_path):
    path = tmp_path / "late.wasm"
    source = ModuleSource(path, watch=True, watch_interval=0.02, debounce=0.05, fallback=variant("fallback"))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, log, port = await _start(nursery, source)
            start = _lines(log, "starting on the embedded fallback")
            assert len(start) == 1 and "late.wasm refused (fetch_failed)" in start[0]
            assert "No such file" in start[0]
            assert await _get(port) == greeting("fallback")
            path.write_bytes(variant("v1"))
            await _until(lambda: _lines(log, "swapped in"), "swap to the source", log)
            assert await _get(port) == greeting("v1")
            server.shutdown()


async def test_a_2_gib_file_is_refused_without_being_read(tmp_path):
    path = tmp_path / "huge.wasm"
    with open(path, "wb") as f:
        f.truncate(2 << 30)  # sparse: no disk used
    source = ModuleSource(path, max_size=256 << 20)
    with pytest.raises(Refused, match="2147483648 bytes, more than the 268435456-byte limit") as info:
        with trio.fail_after(5):
            await source.fetch()
    assert info.value.outcome == "fetch_failed"


async def test_without_fallback_a_bad_source_is_an_error(tmp_path):
    path = tmp_path / "bad.wasm"
    path.write_bytes(b"\0asm\1\0\0\0\xff")
    server = Server(ModuleSource(path), Handoff.bind(["127.0.0.1:0"]), log=lambda line: None)
    with pytest.raises(Refused, match="not a valid module") as info:
        await server.load()
    assert info.value.outcome == "invalid"
    server.handoff.close()


@pytest.mark.parametrize("behaviour, outcome, message", [
    (404, "fetch_failed", "HTTP 404"), (500, "fetch_failed", "HTTP 500"),
    ("truncate", "fetch_failed", "truncated"), ("huge", "fetch_failed", "2147483648 bytes, more than"),
    ("endless", "fetch_failed", "stopped reading"), ("hang", "fetch_failed", "no data for 0.3 s"),
    ("not wasm", "invalid", "not a valid module"), ("traps", "rolled_back", "trapped: unreachable"),
])
async def test_bad_publications_over_http_are_one_line_each(behaviour, outcome, message):
    from .test_serve_swap import TRAPS

    with publisher() as pub:
        pub.put("/app.wasm", variant("v1"))
        source = ModuleSource(pub.url("/app.wasm"), timeout=0.3, max_size=1 << 20)
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                server, log, port = await _start(nursery, source)
                if behaviour == "not wasm":
                    pub.put("/app.wasm", b"<html>not a module</html>")
                elif behaviour == "traps":
                    pub.put("/app.wasm", TRAPS)
                else:
                    pub.put("/app.wasm", variant("v2"))
                    pub.behave("/app.wasm", behaviour)
                attempt = await server.reloader.check_now("test")
                assert attempt.outcome == outcome and message in attempt.line, attempt.line
                assert await _get(port) == greeting("v1")
                assert server.generation == 1 and len(server.generations) == 1
                server.shutdown()
    refused = _lines(log, "refused")
    assert len(refused) == 1 and f"refused ({outcome})" in refused[0]


async def test_signatures_over_http_missing_or_unreachable():
    private, trusted = _key()
    with publisher() as pub:
        pub.put("/app.wasm", variant("v1"))
        source = ModuleSource(pub.url("/app.wasm"), trust_keys=[trusted], timeout=2)
        with pytest.raises(Refused, match=r"no signature: .*HTTP 404") as missing:
            await source.fetch()
        assert missing.value.outcome == "signature" and missing.value.version.size == len(variant("v1"))
        pub.put("/app.wasm.sig", sign_bytes(private, variant("v1")))
        pub.behave("/app.wasm.sig", 500)
        with pytest.raises(Refused, match=r"HTTP 500") as broken:
            await source.fetch()
        assert broken.value.outcome == "fetch_failed"
        pub.put("/app.wasm.sig", sign_bytes(private, variant("v1")))
        version = await source.fetch()
        assert version is not None and version.signer == trusted.id
        assert pub.requests[-1][0] == "/app.wasm.sig"

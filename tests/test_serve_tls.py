"""TLS termination (asyncwasm.serve.tls, tls_connection, the handoff's
handshakes): the sans-IO session, certificate errors, and served guests
behind TLS with real clients (stdlib ssl, an h11 client over pyOpenSSL,
curl): TLS 1.2 and 1.3, ALPN, SNI, plain HTTP or garbage sent to the TLS
port, a client that never finishes the handshake, a poll_oneoff guest
serving many TLS connections. Certificates are made in the test.
Loopback only; every test is bounded by trio.fail_after."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import h11
import pytest
import trio
from OpenSSL import SSL

from asyncwasm.serve import Handoff, Server, TlsConfig
from asyncwasm.serve.embedded import embedded_module
from asyncwasm.serve.tls import TlsConfigError, TlsError
from asyncwasm.serve.tls_connection import PLAIN_HTTP_REPLY, TlsConnection

from .test_serve_server import HELLO, h11_request, netmod, raw_exchange
from .tlscerts import make_pki

TIMEOUT = 30


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


# -- configuration ------------------------------------------------------------------------


def test_config_describes_the_certificate(pki):
    tls = TlsConfig(str(pki.cert), str(pki.key))
    assert f"CN={pki.name}" in tls.describe() and "TLS >= 1.2" in tls.describe()


def test_bad_certificates_and_keys_are_one_line_errors(pki, tmp_path):
    other = make_pki(tmp_path, prefix="other-")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        ((tmp_path / "missing.pem", pki.key), "cannot read the TLS certificate"),
        ((tmp_path, pki.key), "cannot read the TLS certificate"),  # a directory
        ((pki.cert, tmp_path / "missing.pem"), "cannot read the TLS key"),
        ((garbage, pki.key), "not a PEM certificate"),
        ((pki.cert, garbage), "not a PEM private key"),
        ((pki.cert, other.key), "does not match the certificate"),
    ]
    for (cert, key), message in cases:
        with pytest.raises(TlsConfigError) as info:
            TlsConfig(str(cert), str(key))
        assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(TlsConfigError, match="1.2 or 1.3"):
        TlsConfig(str(pki.cert), str(pki.key), min_version="1.1")


def test_reload_keeps_the_old_pair_when_the_new_one_is_bad(pki, tmp_path):
    tls = TlsConfig(str(pki.cert), str(pki.key))
    first = tls.context
    other = make_pki(tmp_path, name="second", prefix="other-")
    pki.key.write_bytes(other.key.read_bytes())  # the key of another certificate
    assert "does not match" in tls.reload()
    assert tls.context is first and tls.subject == pki.name
    pki.cert.write_bytes(other.cert.read_bytes())
    assert tls.reload() is None
    assert tls.context is not first and tls.subject == "second" and tls.reloads == 1


# -- the sans-IO session ------------------------------------------------------------------


def _client_session(pki, *, alpn=(b"http/1.1",), server_name=b"localhost") -> SSL.Connection:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.load_verify_locations(str(pki.ca))
    ctx.set_verify(SSL.VERIFY_PEER, lambda *args: args[-1])
    if alpn:
        ctx.set_alpn_protos(list(alpn))
    conn = SSL.Connection(ctx, None)
    conn.set_tlsext_host_name(server_name)
    conn.set_connect_state()
    return conn


def _pump(client: SSL.Connection, server) -> None:
    """Move ciphertext both ways until neither side has any to send."""
    for _ in range(20):
        moved = False
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        try:
            data = client.bio_read(65536)
        except SSL.WantReadError:
            data = b""
        if data:
            server.receive(data)
            moved = True
        server.do_handshake()
        out = server.take_outgoing()
        if out:
            client.bio_write(out)
            moved = True
        if not moved:
            return


@pytest.mark.parametrize("alpn, chosen", [((b"http/1.1",), "http/1.1"), ((b"h2", b"http/1.1"), "http/1.1"),
                                          ((b"h2",), None), ((), None)])
def test_session_handshake_alpn_sni_and_data_without_sockets(pki, alpn, chosen):
    tls = TlsConfig(str(pki.cert), str(pki.key))
    server = tls.session()
    client = _client_session(pki, alpn=alpn)
    assert server.recv(100) is None  # nothing yet
    _pump(client, server)
    assert server.handshake_done
    assert server.alpn == chosen and server.server_name == "localhost" and server.version == "TLSv1.3"
    client.sendall(b"ping" * 5000)
    server.receive(client.bio_read(65536))
    got = b""
    while len(got) < 20000:
        got += server.recv(65536)
    assert got == b"ping" * 5000
    client.bio_write(server.encrypt(b"pong"))
    assert client.recv(100) == b"pong"
    big = bytes(range(256)) * 300  # several records, one read of the output
    client.bio_write(server.encrypt(big))
    assert server.take_outgoing() == b""
    got = b""
    while len(got) < len(big):
        got += client.recv(65536)
    assert got == big
    client.shutdown()  # close_notify
    server.receive(client.bio_read(65536))
    assert server.recv(100) == b"" and server.closed_by_peer


def test_session_rejects_garbage_and_recognizes_plain_http(pki):
    tls = TlsConfig(str(pki.cert), str(pki.key))
    for data, plain in ((b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True), (b"\x16\x03\x01\x00\x05hello", False),
                        (bytes(range(256)), False)):
        session = tls.session()
        session.receive(data)
        with pytest.raises(TlsError) as info:
            session.do_handshake()
        assert session.looks_like_plain_http() == plain
        assert ("plain HTTP" in str(info.value)) == plain


# -- served guests behind TLS -----------------------------------------------------------------


async def _start(nursery, pki, *, module=None, instances=2, timeout=10.0, min_version="1.2", env=None):
    log: list[str] = []
    tls = TlsConfig(str(pki.cert), str(pki.key), handshake_timeout=timeout, min_version=min_version)
    handoff = Handoff.bind(["127.0.0.1:0"], tls=tls, log=log.append)
    server = Server(module or embedded_module(), handoff, instances=instances, env=env,
                    stdout=bytearray(), stderr=bytearray(), log=log.append)
    await nursery.start(server.run)
    return server, handoff.addresses()[0][1], log


def _stdlib_get(pki, port: int, version: ssl.TLSVersion, body: bytes = b"") -> tuple[str, str, bytes]:
    """(TLS version, ALPN, response) of one request with the stdlib client."""
    ctx = pki.client_context(version=version)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            if body:
                conn.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                             % len(body) + body)
            else:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return conn.version(), conn.selected_alpn_protocol(), reply


async def test_stdlib_clients_over_tls_1_2_and_1_3(pki):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port, log = await _start(nursery, pki)
            for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
                got, alpn, reply = await trio.to_thread.run_sync(_stdlib_get, pki, port, version)
                assert (got, alpn) == (name, "http/1.1")
                assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(HELLO)
            body = bytes(range(256)) * 1200  # 300 KiB: many records, both buffers fill
            _, _, reply = await trio.to_thread.run_sync(_stdlib_get, pki, port, ssl.TLSVersion.TLSv1_3, body)
            assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(body)
            stats = server.handoff.statistics()
            assert stats["handshakes_ok"] == 3 and stats["accepted"] == 3
            assert stats["received"] > len(body) and stats["sent"] > len(body)  # ciphertext, records included
            assert server.supervisor.restarts == 0
            server.shutdown()


async def test_min_version_1_3_refuses_a_1_2_client(pki):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port, log = await _start(nursery, pki, min_version="1.3")
            with pytest.raises(ssl.SSLError):
                await trio.to_thread.run_sync(_stdlib_get, pki, port, ssl.TLSVersion.TLSv1_2)
            got, _, _ = await trio.to_thread.run_sync(_stdlib_get, pki, port, ssl.TLSVersion.TLSv1_3)
            assert got == "TLSv1.3"
            while server.handoff.handshakes_failed["protocol"] == 0:
                await trio.sleep(0.01)
            server.shutdown()


class _PyOpenSSLStream(trio.abc.Stream):
    """A client TLS stream over pyOpenSSL memory BIOs (the h11 client's transport)."""

    def __init__(self, stream: trio.SocketStream, conn: SSL.Connection) -> None:
        self.stream, self.conn = stream, conn

    async def _flush(self) -> None:
        try:
            data = self.conn.bio_read(1 << 20)
        except SSL.WantReadError:
            return
        await self.stream.send_all(data)

    async def handshake(self) -> None:
        while True:
            try:
                self.conn.do_handshake()
                await self._flush()
                return
            except SSL.WantReadError:
                await self._flush()
                self.conn.bio_write(await self.stream.receive_some(65536))

    async def send_all(self, data) -> None:
        self.conn.sendall(bytes(data))
        await self._flush()

    async def receive_some(self, max_bytes=None) -> bytes:
        while True:
            try:
                return self.conn.recv(max_bytes or 65536)
            except SSL.WantReadError:
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    return b""
                self.conn.bio_write(chunk)
            except SSL.ZeroReturnError:
                return b""

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def test_h11_client_over_pyopenssl_keep_alive(pki):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port, log = await _start(nursery, pki)
            raw = await trio.open_tcp_stream("127.0.0.1", port)
            stream = _PyOpenSSLStream(raw, _client_session(pki))
            await stream.handshake()
            conn = h11.Connection(h11.CLIENT)
            assert (await h11_request(stream, conn, "GET", "/"))[::2] == (200, HELLO)
            for size in (0, 1, 16_384, 16_385, 100_000):  # record-sized edges
                body = bytes([size % 251]) * size
                status, headers, echoed = await h11_request(stream, conn, "POST", "/echo", body)
                assert (status, echoed) == (200, body)
            await stream.aclose()
            server.shutdown()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl(pki):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port, log = await _start(nursery, pki)
            for flags in (["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3"]):
                out = await trio.run_process(
                    ["curl", "-sS", "--http1.1", "--cacert", str(pki.ca), *flags, "-w", "|%{http_version}",
                     f"https://localhost:{port}/"], capture_stdout=True, capture_stderr=True)
                assert out.stdout == HELLO + b"|1.1", out.stderr
            server.shutdown()


async def test_handshake_failures_are_counted_logged_once_and_never_reach_an_instance(pki):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port, log = await _start(nursery, pki, instances=1, timeout=0.3)
            handoff = server.handoff
            # plain HTTP to the TLS port: told to use https, in plain HTTP
            reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reply == PLAIN_HTTP_REPLY
            # garbage
            reply = await raw_exchange(port, b"\x00" * 64)
            assert not reply.startswith(b"HTTP")  # an alert at most
            # a client that connects and says nothing: dropped at the timeout
            start = trio.current_time()
            assert await raw_exchange(port, b"") == b""
            assert 0.25 < trio.current_time() - start < 3
            # a client that leaves in the middle of its ClientHello
            await raw_exchange(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", half_close=True)
            while sum(handoff.handshakes_failed.values()) < 4:
                await trio.sleep(0.01)
            assert handoff.handshakes_failed == {"plain_http": 1, "protocol": 1, "timeout": 1, "aborted": 1}
            failures = [line for line in log if line.startswith("TLS handshake from 127.0.0.1:")]
            assert len(failures) == 4, log
            assert any("plain HTTP" in line for line in failures) and any("within 0.3 s" in line for line in failures)
            # none of them reached the instance: it is still waiting, never restarted, and serves
            assert handoff.handshakes_ok == 0 and handoff.waiting == 1 and server.supervisor.restarts == 0
            got, _, reply = await trio.to_thread.run_sync(_stdlib_get, pki, port, ssl.TLSVersion.TLSv1_3)
            assert reply.endswith(HELLO)
            assert handoff.statistics()["active"] == 0
            server.shutdown()


async def test_poll_guest_serves_many_tls_connections(pki):
    # netmods' http_server_poll: one instance, poll_oneoff over every
    # connection; its readiness must count plaintext already decrypted.
    count = 40
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server, port, log = await _start(nursery, pki, module=netmod("http_server_poll"), instances=1,
                                             env={"HTTP_MAX_CONNS": "4096"})
            ctx = pki.client_context()
            done = []

            async def client(i: int) -> None:
                raw = await trio.open_tcp_stream("127.0.0.1", port)
                stream = trio.SSLStream(raw, ctx, server_hostname="localhost")
                conn = h11.Connection(h11.CLIENT)
                for round_ in range(3):
                    body = b"%d/%d " % (i, round_) * (1 + 2000 * (i % 3))
                    status, _, echoed = await h11_request(stream, conn, "POST", "/echo", body)
                    assert (status, echoed) == (200, body)
                done.append(i)
                await stream.aclose()

            async with trio.open_nursery() as clients:
                for i in range(count):
                    clients.start_soon(client, i)
            assert sorted(done) == list(range(count))
            assert server.handoff.handshakes_ok == count
            server.shutdown()


async def test_tls_connection_is_a_trio_stream(pki):
    # What the HTTP handler mode builds on: a handshaken connection used
    # with receive_some/send_all, no guest involved.
    tls = TlsConfig(str(pki.cert), str(pki.key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            async def client() -> bytes:
                raw = await trio.open_tcp_stream("127.0.0.1", port)
                stream = trio.SSLStream(raw, pki.client_context(), server_hostname="localhost")
                await stream.send_all(b"x" * 100_000)
                got = b""
                while len(got) < 5:
                    got += await stream.receive_some(10)
                await stream.aclose()
                return got

            result = []
            nursery.start_soon(lambda: _store(result, client()))
            await trio.lowlevel.wait_readable(listener)
            sock, _ = listener.accept()
            conn = TlsConnection(sock, tls.session())
            await conn.handshake(5)
            received = b""
            while len(received) < 100_000:
                received += await conn.receive_some(65536)
            assert received == b"x" * 100_000
            await conn.send_all(b"hello")
            assert await conn.receive_some() == b""  # the client's close_notify
            await conn.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await conn.receive_some()
    assert result == [b"hello"]
    listener.close()


async def _store(out: list, awaitable) -> None:
    out.append(await awaitable)


def test_tls_flags_of_the_command_are_checked(pki, tmp_path):
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    other = make_pki(tmp_path, prefix="other-")
    cases = [(["--tls-cert", str(pki.cert)], "--tls-key is needed with --tls-cert"),
             (["--tls-key", str(pki.key)], "--tls-cert is needed with --tls-key"),
             (["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(pki.key)], "cannot read the TLS certificate"),
             (["--tls-cert", str(pki.cert), "--tls-key", str(other.key)], "does not match the certificate")]
    for flags, message in cases:
        out = subprocess.run([sys.executable, "-m", "asyncwasm", "serve", "--listen", "127.0.0.1:0", *flags],
                             capture_output=True, text=True, cwd=root, timeout=TIMEOUT,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2, out.stderr
        assert len(lines) == 1 and message in lines[0] and "error:" in lines[0], out.stderr


def _peer_name(conn: ssl.SSLSocket) -> str:
    subject = dict(item for rdn in conn.getpeercert()["subject"] for item in rdn)
    return subject["commonName"]


def _open(pki, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return pki.client_context().wrap_socket(raw, server_hostname="localhost")


def _request(conn: ssl.SSLSocket) -> bytes:
    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = b""
    while not reply.endswith(HELLO):
        chunk = conn.recv(65536)
        assert chunk, reply
        reply += chunk
    return reply


def two_pkis(tmp_path):
    """Two certificates (CN first, second) from different CAs that a client
    trusts both of, and the live cert and key files, holding the first."""
    first = make_pki(tmp_path, name="first")
    second = make_pki(tmp_path, name="second", prefix="second-")
    bundle = tmp_path / "both-ca.pem"
    bundle.write_bytes(first.ca.read_bytes() + second.ca.read_bytes())
    first.ca = second.ca = bundle
    cert, key = tmp_path / "live-cert.pem", tmp_path / "live-key.pem"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    return first, second, cert, key


def test_sighup_reloads_the_certificate_for_new_connections(tmp_path):
    import signal

    from .test_serve_cli import serve as serve_process

    first, second, cert, key = two_pkis(tmp_path)
    with serve_process(tmp_path, "--instances", "2", "--tls-cert", str(cert), "--tls-key", str(key)) as proc:
        port = int(proc.wait_for(r"listening on https://127\.0\.0\.1:(\d+)/")[0].group(1))
        assert "TLS: certificate CN=first" in proc.log
        old = _open(first, port)
        assert _peer_name(old) == "first" and _request(old).startswith(b"HTTP/1.1 200 ")
        cert.write_bytes(second.cert.read_bytes())
        key.write_bytes(second.key.read_bytes())
        proc.popen.send_signal(signal.SIGHUP)
        proc.wait_for("SIGHUP: TLS reloaded: certificate CN=second")
        with _open(second, port) as new:
            assert _peer_name(new) == "second" and _request(new).startswith(b"HTTP/1.1 200 ")
        assert _request(old).startswith(b"HTTP/1.1 200 ")  # the open connection is unaffected
        old.close()
        key.write_bytes(first.key.read_bytes())  # a key that does not match: kept the second pair
        proc.popen.send_signal(signal.SIGHUP)
        proc.wait_for("SIGHUP: TLS reload failed, keeping the previous certificate: the TLS key")
        with _open(second, port) as new:
            assert _peer_name(new) == "second"
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(TIMEOUT) == 0


async def _settle(result):
    return result if isinstance(result, int) else await result


async def test_the_guest_sees_one_plaintext_socket(pki):
    # WASI calls on a TLS connection, as a guest makes them: sock_accept,
    # poll_oneoff (one fd, and the many-fd epoll path with plaintext already
    # decrypted but the socket drained), sock_recv with PEEK, fd_read,
    # NONBLOCK, sock_send, sock_shutdown.
    from .guests.harness import FakeGuest
    from .test_wasi_poll import _events, _poll, clock_sub, fd_sub

    from asyncwasm.wasi import WasiConfig
    from asyncwasm.wasi.abi import Errno, Eventtype, Fdflags

    tls = TlsConfig(str(pki.cert), str(pki.key))
    handoff = Handoff.bind(["127.0.0.1:0"], tls=tls)
    port = handoff.addresses()[0][1]
    with FakeGuest(WasiConfig(listeners=[handoff])) as guest, trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handoff.accept_loop)
            client = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", port), pki.client_context(),
                                    server_hostname="localhost")
            nursery.start_soon(client.do_handshake)
            ro_fd = guest.alloc(4)
            assert await _settle(guest.call("sock_accept", 3, 0, ro_fd)) == Errno.SUCCESS
            fd = guest.u32(ro_fd)
            # Nothing yet: poll waits, and wakes for the first plaintext.
            result, out, nevents = _poll(guest, fd_sub(1, fd))
            assert not isinstance(result, int)
            await client.send_all(b"first record")
            assert await result == Errno.SUCCESS
            assert [(e[0], e[2], e[3]) for e in _events(guest, out, nevents)] == [(1, Eventtype.FD_READ, 12)]
            # PEEK leaves it; a small read takes part; the rest stays decrypted in the host.
            buf = guest.alloc(64)
            iovs, count = guest.iovecs([(buf, 5)])
            got, flags = guest.alloc(4), guest.alloc(2)
            assert guest.call("sock_recv", fd, iovs, count, 1, got, flags) == Errno.SUCCESS  # RECV_PEEK
            assert guest.read(buf, guest.u32(got)) == b"first"
            assert guest.call("sock_recv", fd, iovs, count, 0, got, flags) == Errno.SUCCESS
            assert guest.read(buf, guest.u32(got)) == b"first"
            # The socket has nothing more, yet the fd is readable: the many-fd path asks the entry.
            subs = fd_sub(2, fd) + b"".join(fd_sub(10 + i, 3) for i in range(3)) + clock_sub(9, 5_000_000_000)
            result, out, nevents = _poll(guest, subs)
            result = await _settle(result)
            assert result == Errno.SUCCESS
            assert [(e[0], e[3]) for e in _events(guest, out, nevents)] == [(2, 7)]
            iovs, count = guest.iovecs([(buf, 64)])
            assert guest.call("fd_read", fd, iovs, count, got) == Errno.SUCCESS
            assert guest.read(buf, guest.u32(got)) == b" record"
            # A NONBLOCK fd with nothing to read: AGAIN.
            assert guest.call("fd_fdstat_set_flags", fd, int(Fdflags.NONBLOCK)) == Errno.SUCCESS
            assert guest.call("sock_recv", fd, iovs, count, 0, got, flags) == Errno.AGAIN
            # Plaintext out, then the write side closes with close_notify.
            ptr, length = guest.put(b"answer")
            iovs, count = guest.iovecs([(ptr, length)])
            assert guest.call("sock_send", fd, iovs, count, 0, got) == Errno.SUCCESS and guest.u32(got) == 6
            assert await client.receive_some(100) == b"answer"
            assert guest.call("sock_shutdown", fd, 2) == Errno.SUCCESS  # WR
            assert await client.receive_some(100) == b""
            assert handoff.statistics()["active"] == 1
            assert guest.call("fd_close", fd) == Errno.SUCCESS
            assert handoff.statistics()["active"] == 0
            await client.aclose()
            handoff.stop_accepting()
    handoff.close()

"""serve/fetch.py against a publisher made in the test (HTTP and HTTPS with
certificates made in the test): bodies, validators and 304s, redirects,
and every misbehaviour refused with one line within its timeout."""

from __future__ import annotations

import pytest
import trio

from asyncwasm.serve.fetch import FetchError, HttpClient
from asyncwasm.serve.tls import check_hostname
from asyncwasm.serve.tls import TlsConfigError, TlsError

from .modserver import publisher
from .tlscerts import make_pki

DATA = bytes(range(256)) * 40


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


@pytest.mark.parametrize("tls, host", [(False, "127.0.0.1"), (True, "127.0.0.1"), (True, "localhost")])
async def test_get_then_conditional_get(pki, tls, host):
    with publisher(tls=pki if tls else None, host=host) as pub:
        pub.put("/app.wasm", DATA)
        client = HttpClient(ca_file=str(pki.ca) if tls else None, timeout=5)
        got = await client.get(pub.url("/app.wasm"))
        assert got.status == 200 and got.body == DATA and got.etag and got.last_modified
        again = await client.get(pub.url("/app.wasm"), etag=got.etag, last_modified=got.last_modified)
        assert again.status == 304 and again.body == b"" and again.etag == got.etag
        headers = pub.requests[-1][1]
        assert headers["if-none-match"] == got.etag and headers["if-modified-since"] == got.last_modified
        assert headers["accept-encoding"] == "identity"
        pub.put("/app.wasm", DATA + b"!")
        changed = await client.get(pub.url("/app.wasm"), etag=got.etag)
        assert changed.status == 200 and changed.body == DATA + b"!" and changed.etag != got.etag


async def test_https_refuses_an_untrusted_or_misnamed_certificate(pki, tmp_path):
    other = make_pki(tmp_path, name="other", prefix="other-")
    with publisher(tls=pki) as pub:
        pub.put("/app.wasm", DATA)
        with pytest.raises(FetchError, match="TLS handshake .* failed: .*certificate verify failed"):
            await HttpClient(ca_file=str(other.ca), timeout=5).get(pub.url("/app.wasm"))
        with pytest.raises(FetchError, match="TLS handshake .* failed"):
            await HttpClient(timeout=5).get(pub.url("/app.wasm"))  # the system store knows no test CA
    with publisher(tls=pki, host="127.0.0.2") as pub:  # an address the certificate does not name
        pub.put("/app.wasm", DATA)
        with pytest.raises(FetchError, match="TLS: the certificate does not name 127.0.0.2"):
            await HttpClient(ca_file=str(pki.ca), timeout=5).get(pub.url("/app.wasm"))
    bad = tmp_path / "bad-ca.pem"
    bad.write_text("garbage")
    with pytest.raises(TlsConfigError, match="bad-ca.pem: not a PEM CA certificate"):
        HttpClient(ca_file=str(bad), timeout=5)  # at once, not at the first fetch


def test_hostname_rules(pki):
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pki.cert.read_bytes())
    for host in ("localhost", "LOCALHOST", "127.0.0.1", "::1", "[::1]"):
        check_hostname(cert, host)
    for host in ("127.0.0.2", "example.org", "sub.localhost", "::2"):
        with pytest.raises(TlsError, match="does not name"):
            check_hostname(cert, host)


def test_wildcards_match_one_leftmost_label(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.org")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.example.org"), x509.DNSName("*.org")]),
                           critical=False).sign(key, hashes.SHA256()))
    check_hostname(cert, "www.example.org")
    for host in ("example.org", "a.b.example.org", "org", "anything.org"):
        with pytest.raises(TlsError):
            check_hostname(cert, host)


async def test_redirects_followed_up_to_five(pki):
    with publisher() as pub:
        pub.put("/final.wasm", DATA)
        for hop in range(5):
            pub.behave(f"/r{hop}", ("redirect", f"/r{hop + 1}" if hop < 4 else "/final.wasm"))
        got = await HttpClient(timeout=5).get(pub.url("/r0"))
        assert got.body == DATA and got.url.endswith("/final.wasm")
        pub.behave("/r5", ("redirect", "/r0"))
        with pytest.raises(FetchError, match="more than 5 redirects"):
            await HttpClient(timeout=5).get(pub.url("/r5"))
    with publisher(tls=pki) as secure:
        secure.behave("/down", ("redirect", "http://127.0.0.1:1/app.wasm"))
        with pytest.raises(FetchError, match="refused a redirect from https"):
            await HttpClient(ca_file=str(pki.ca), timeout=5).get(secure.url("/down"))


@pytest.mark.parametrize("behaviour, message", [
    (404, "HTTP 404"), (500, "HTTP 500"), ("truncate", "truncated: the connection closed after"),
    ("gzip", "gzip-encoded"), ("huge", "2147483648 bytes, more than the 1048576-byte limit"),
    ("endless", "more than the 1048576-byte limit .* stopped reading"),
])
async def test_bad_answers_are_one_line(behaviour, message):
    with publisher() as pub:
        pub.put("/m.wasm", DATA)
        pub.behave("/m.wasm", behaviour)
        with trio.fail_after(10):
            with pytest.raises(FetchError, match=message) as info:
                await HttpClient(timeout=5, max_size=1 << 20).get(pub.url("/m.wasm"))
        assert "\n" not in str(info.value)
        if behaviour == "endless":  # streamed and stopped, not read to the end
            await trio.sleep(0.2)
            assert pub.sent["/m.wasm"] < 16 << 20


async def test_a_hanging_server_times_out():
    with publisher() as pub:
        pub.behave("/slow.wasm", "hang")
        start = trio.current_time()
        with pytest.raises(FetchError, match="no data for 0.3 s"):
            await HttpClient(timeout=0.3).get(pub.url("/slow.wasm"))
        assert trio.current_time() - start < 3


async def test_a_trickling_server_hits_the_deadline():
    with publisher() as pub:
        pub.put("/m.wasm", DATA)
        pub.behave("/m.wasm", ("slow", 0.05))
        with pytest.raises(FetchError, match="did not finish within 0.5 s"):
            await HttpClient(timeout=1, deadline=0.5).get(pub.url("/m.wasm"))


async def test_connection_refused_and_bad_urls():
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with pytest.raises(FetchError, match=f"cannot connect to 127.0.0.1:{port}"):
        await HttpClient(timeout=5).get(f"http://127.0.0.1:{port}/m.wasm")
    for url in ("ftp://example.org/m.wasm", "http:///m.wasm", "http://127.0.0.1:99999/m"):
        with pytest.raises(FetchError):
            await HttpClient(timeout=5).get(url)

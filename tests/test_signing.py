"""asyncwasm.signing and the ``keygen``/``sign`` commands: keys, detached
signatures (raw or base64), verification, and every bad input as one line."""

from __future__ import annotations

import base64
import io
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from asyncwasm import cli
from asyncwasm.serve.embedded import embedded_bytes
from asyncwasm.signing import (
    SignatureError, generate_key, key_id, load_public_key, read_signature, sign_bytes, sign_file, verify,
)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_keygen_and_sign_round_trip_verified_by_cryptography_directly(tmp_path):
    key = tmp_path / "release.key"
    status, out, err = _run("keygen", str(key))
    assert status == 0 and err == ""
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    public_pem = (tmp_path / "release.key.pub.pem").read_bytes()
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    module = tmp_path / "app.wasm"
    module.write_bytes(embedded_bytes())
    status, out, err = _run("sign", "--key", str(key), str(module))
    assert status == 0 and out.startswith(f"{module}.sig")
    sig_text = (tmp_path / "app.wasm.sig").read_bytes()
    assert sig_text.endswith(b"\n") and sig_text.count(b"\n") == 1
    # cryptography alone, none of our code: the .sig is the Ed25519 signature of the bytes
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(sig_text), module.read_bytes())
    trusted = load_public_key(tmp_path / "release.key.pub.pem")
    assert trusted.id in out and len(trusted.id) == 16
    assert trusted.id == key_id(public)
    with pytest.raises(Exception):
        public.verify(base64.b64decode(sig_text), module.read_bytes() + b"\0")


def test_keygen_never_overwrites(tmp_path):
    key = tmp_path / "k"
    assert _run("keygen", str(key))[0] == 0
    before = key.read_bytes()
    status, _, err = _run("keygen", str(key))
    assert status == 1 and "exists" in err and err.count("\n") == 1
    assert key.read_bytes() == before
    (tmp_path / "only.pub.pem").write_text("x")
    status, _, err = _run("keygen", str(tmp_path / "only"))
    assert status == 1 and "only.pub.pem exists" in err and not (tmp_path / "only").exists()


def test_sign_errors_are_one_line(tmp_path):
    private, public = generate_key(tmp_path / "k")
    module = tmp_path / "m.wasm"
    module.write_bytes(embedded_bytes())
    for argv, message in [
        (("sign", "--key", public, str(module)), "not an unencrypted PEM private key"),
        (("sign", "--key", str(tmp_path / "none"), str(module)), "cannot read the private key"),
        (("sign", "--key", private, str(tmp_path / "none.wasm")), "cannot read"),
    ]:
        status, _, err = _run(*argv)
        assert status == 1 and message in err and err.count("\n") == 1, err
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    status, _, err = _run("sign", "--key", private, str(text))
    assert status == 1 and "not a Wasm module" in err and not (tmp_path / "notes.txt.sig").exists()


def test_signature_forms_and_refusals():
    data = embedded_bytes()
    signer = Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate()
    trusted = load_key(signer)
    raw = signer.sign(data)
    assert read_signature(raw) == raw
    assert read_signature(sign_bytes(signer, data)) == raw
    assert read_signature(base64.b64encode(raw) + b"\r\n") == raw
    assert verify(data, raw, [load_key(other), trusted]) is trusted
    with pytest.raises(SignatureError, match="signature does not verify") as modified:
        verify(data[:-1] + b"\1", raw, [trusted])
    with pytest.raises(SignatureError, match="signature does not verify"):
        verify(data, other.sign(data), [trusted])  # an untrusted key
    for bad, message in [(raw[:63], "64 raw bytes"), (raw + b"\0", "64 raw bytes"), (b"", "decodes to 0"),
                         (base64.b64encode(raw[:40]), "decodes to 40 bytes"),
                         (b"not base64 at all!", "neither 64 raw bytes nor base64"),
                         (b"QUFB\nQUFB\n", "one line"), (bytes(5000), "not 5000 bytes")]:
        with pytest.raises(SignatureError, match=message) as info:
            read_signature(bad)
        assert "signature" in str(info.value) and "\n" not in str(info.value)
    assert "\n" not in str(modified.value)


def load_key(private: Ed25519PrivateKey):
    from asyncwasm.signing import parse_public_key

    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return parse_public_key(pem, "test")


def test_garbage_and_wrong_kind_public_keys(tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnot really\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ValueError, match="garbage.pem: not a PEM public key"):
        load_public_key(garbage)
    ec = tmp_path / "ec.pem"
    ec.write_bytes(generate_private_key(SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(ValueError, match="not Ed25519"):
        load_public_key(ec)
    with pytest.raises(ValueError, match="cannot read the public key"):
        load_public_key(tmp_path / "missing.pem")


def test_sign_file_replaces_the_signature_atomically(tmp_path):
    private, _ = generate_key(tmp_path / "k")
    module = tmp_path / "m.wasm"
    module.write_bytes(embedded_bytes())
    first = sign_file(private, module)
    module.write_bytes(embedded_bytes() + b"\0asm")  # not valid, but signable bytes (magic first)
    inode = os.stat(first).st_ino
    sign_file(private, module)
    assert os.stat(first).st_ino != inode  # a new file renamed over the old one
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []

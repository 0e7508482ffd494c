"""Certificates made in the test (with ``cryptography``): a CA and a server
certificate for 127.0.0.1 and localhost, written as PEM files.

    >>> pki = make_pki(tmp_path)                 # pki.cert (chain), pki.key, pki.ca
    >>> ctx = pki.client_context()               # a stdlib ssl client trusting the CA
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Pki:
    ca: Path      # the CA certificate (what clients trust)
    cert: Path    # the server's chain: leaf, then the CA
    key: Path     # the server's private key
    name: str     # the leaf's common name

    def client_context(self, *, alpn: tuple[str, ...] = ("http/1.1",), version: ssl.TLSVersion | None = None
                       ) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(directory: Path, *, name: str = "asyncwasm test server", prefix: str = "") -> Pki:
    """A CA and a leaf for ``localhost``/127.0.0.1/::1, under ``directory``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{name} CA")  # distinct per PKI: a client may trust several
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = Pki(directory / f"{prefix}ca.pem", directory / f"{prefix}cert.pem", directory / f"{prefix}key.pem", name)
    paths.ca.write_bytes(ca.public_bytes(pem))
    paths.cert.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    paths.key.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths

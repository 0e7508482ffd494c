"""Signed modules: Ed25519 keys, detached signatures, verification.

    >>> private, public = generate_key("release.key")    # release.key (0600) and release.key.pub.pem
    >>> sign_file("release.key", "app.wasm")              # writes app.wasm.sig
    'app.wasm.sig'
    >>> key = load_public_key("release.key.pub.pem")      # what a server trusts
    >>> verify(module_bytes, read_signature(sig_bytes), [key]).id
    '3f2a9c0d1b2e4f5a'

Rules (``asyncwasm keygen``, ``asyncwasm sign``, ``asyncwasm serve --trust-key``):

- Keys are Ed25519. A public key is PEM SubjectPublicKeyInfo (``-----BEGIN
  PUBLIC KEY-----``); a private key is unencrypted PEM PKCS#8, written with
  mode 0600 and never over an existing file.
- A signature is detached: the 64-byte Ed25519 signature of the exact
  module bytes, in ``MODULE.sig``, either raw (exactly 64 bytes) or as one
  line of base64 (what :func:`sign_file` writes: it survives text-mode
  transfers and web servers that add a newline).
- A key's id is the first 16 hex digits of the SHA-256 of its 32 raw
  public bytes: short enough for a log line, and the same on every machine.
- Every error is a ``ValueError`` whose one-line message names the file;
  :class:`SignatureError` (a refused module) always contains the word
  "signature".

Verification uses ``cryptography`` (OpenSSL's Ed25519), never a home-made
implementation; nothing here does I/O beyond the named files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from typing import Iterable, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["TrustedKey", "SignatureError", "SIGNATURE_SUFFIX", "key_id", "load_public_key", "parse_public_key",
           "read_signature", "verify", "generate_key", "sign_file", "sign_bytes"]

#: A module's signature file is the module's name plus this.
SIGNATURE_SUFFIX = ".sig"
_SIGNATURE_SIZE = 64
_MAX_SIGNATURE_FILE = 1024  # a base64 line is 88 characters; anything far longer is not a signature
Path = Union[str, "os.PathLike[str]"]


class SignatureError(ValueError):
    """A module refused for its signature (missing, malformed, or not made
    by a trusted key); the message is one line containing "signature"."""


@dataclass(frozen=True)
class TrustedKey:
    """An Ed25519 public key that may sign modules, with its id and where it came from."""

    key: Ed25519PublicKey
    id: str
    origin: str = ""

    def __repr__(self) -> str:
        return f"<TrustedKey {self.id} from {self.origin or '?'}>"


def key_id(key: Union[Ed25519PublicKey, Ed25519PrivateKey]) -> str:
    """The key's id: 16 hex digits of the SHA-256 of its raw public bytes."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_public_key(pem: bytes, origin: str = "") -> TrustedKey:
    """An Ed25519 public key from PEM SubjectPublicKeyInfo; ValueError otherwise."""
    what = origin or "the key"
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: not a PEM public key (expected -----BEGIN PUBLIC KEY-----, "
                         f"an Ed25519 SubjectPublicKeyInfo)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{what}: a {type(key).__name__.removeprefix('_')} key, not Ed25519")
    return TrustedKey(key, key_id(key), origin)


def load_public_key(path: Path) -> TrustedKey:
    """Read ``path`` (``--trust-key``); ValueError with one line naming it."""
    name = os.fspath(path)
    return parse_public_key(_read(name, "public key", limit=64 * 1024), name)


def read_signature(data: bytes, origin: str = "the signature file") -> bytes:
    """The 64 signature bytes from a ``.sig`` file's content: raw, or one
    line of base64. :class:`SignatureError` for anything else."""
    if len(data) == _SIGNATURE_SIZE:
        return data
    text = data.strip()
    if len(data) > _MAX_SIGNATURE_FILE or b"\n" in text:
        raise SignatureError(f"{origin}: a signature file is 64 raw bytes or one line of base64, "
                             f"not {len(data)} bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{origin}: the signature is neither 64 raw bytes nor base64 "
                             f"({len(data)} bytes)") from None
    if len(raw) != _SIGNATURE_SIZE:
        raise SignatureError(f"{origin}: the signature decodes to {len(raw)} bytes, not 64")
    return raw


def verify(data: bytes, signature: bytes, keys: Iterable[TrustedKey]) -> TrustedKey:
    """The trusted key whose signature of ``data`` is ``signature`` (64
    bytes); :class:`SignatureError` when none is."""
    keys = list(keys)
    for trusted in keys:
        try:
            trusted.key.verify(signature, data)
        except InvalidSignature:
            continue
        return trusted
    ids = ", ".join(k.id for k in keys) or "none"
    raise SignatureError(f"the signature does not verify with any trusted key ({ids}): "
                         f"the module was modified or signed by another key")


# -- making keys and signatures (asyncwasm keygen / sign) ------------------------------------


def _read(path: str, what: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ValueError(f"{path}: too large for a {what}")
    return data


def _write_new(path: str, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (never replacing a file: a key lost
    that way cannot be had back)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ValueError(f"{path} exists: not overwritten (remove it first)") from None
    except OSError as exc:
        raise ValueError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_replacing(path: str, data: bytes) -> None:
    """Write ``path`` by rename, so a reader (a watching server) never sees half."""
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None


def generate_key(path: Path) -> tuple[str, str]:
    """A new Ed25519 key pair: the private key at ``path`` (PEM PKCS#8, mode
    0600), the public key at ``PATH.pub.pem``; returns both paths.
    ValueError (one line) when either exists or cannot be written."""
    private_path = os.fspath(path)
    public_path = private_path + ".pub.pem"
    if os.path.lexists(public_path):
        raise ValueError(f"{public_path} exists: not overwritten (remove it first)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except ValueError:
        os.unlink(private_path)
        raise
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from unencrypted PEM; ValueError otherwise."""
    name = os.fspath(path)
    pem = _read(name, "private key", limit=64 * 1024)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{name}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{name}: a {type(key).__name__.removeprefix('_')} key, not Ed25519")
    return key


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The ``.sig`` file content for ``data``: one line of base64."""
    return base64.b64encode(key.sign(data)) + b"\n"


def sign_file(key_path: Path, module_path: Path) -> str:
    """Sign the file ``module_path`` with the private key at ``key_path``;
    writes ``MODULE.sig`` (replaced atomically) and returns its path."""
    key = load_private_key(key_path)
    module = os.fspath(module_path)
    try:
        with open(module, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read {module}: {exc.strerror or exc}") from None
    if not data.startswith(b"\0asm"):
        raise ValueError(f"{module}: not a Wasm module (no \\0asm header): not signed")
    out = module + SIGNATURE_SUFFIX
    _write_replacing(out, sign_bytes(key, data))
    return out

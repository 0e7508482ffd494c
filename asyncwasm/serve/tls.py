"""TLS termination, the protocol core: configuration and a sans-IO session.

    >>> tls = TlsConfig("cert.pem", "key.pem", min_version="1.2")   # loads and checks the pair
    >>> session = tls.session()               # one per connection, no socket
    >>> session.receive(client_hello)          # ciphertext from the peer
    >>> session.do_handshake()                 # True once complete
    >>> session.take_outgoing()                # ciphertext for the peer
    >>> session.encrypt(b"HTTP/1.1 200 OK...") # plaintext in, records out
    >>> session.recv(65536)                    # plaintext out; b"" at the end

Strategy: pyOpenSSL (``OpenSSL.SSL``) over memory BIOs. A :class:`TlsSession`
never touches a socket: ciphertext goes in with :meth:`~TlsSession.receive`
and comes out of :meth:`~TlsSession.take_outgoing`, so tests drive it with
two sessions back to back, and the trio edge
(:mod:`asyncwasm.serve.tls_connection`) moves bytes between it and a
socket. The standard library's ``ssl`` module is not used here.

Rules:

- TLS 1.2 and 1.3 (``min_version`` "1.2" or "1.3"); compression and
  renegotiation off; the server's cipher preference.
- ALPN: ``http/1.1`` is selected when the client offers it; a client that
  offers only other protocols goes on without ALPN (the guest speaks
  HTTP/1.1 anyway). SNI is accepted and recorded (``server_name``).
- The certificate file may hold the chain (leaf first). A pair that cannot
  be read, is not PEM, or whose key does not match the certificate raises
  :class:`TlsConfigError` with a one-line reason.
- :meth:`TlsConfig.reload` re-reads both files for new sessions; a bad new
  pair keeps the old context and returns why. Sessions already open keep
  the context they started with.
- Errors of a session are :class:`TlsError` (one line: what the peer did).

The client side (fetching modules over https, :mod:`.fetch`) uses the same
session in connect state: :func:`client_context` verifies the peer's chain
against the system's trust store or a CA file, and :func:`check_hostname`
matches the leaf certificate to the host name after the handshake.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Optional, Sequence, Union

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

__all__ = ["TlsConfig", "TlsConfigError", "TlsError", "TlsSession", "MIN_VERSIONS", "client_context",
           "check_hostname"]

#: ``--tls-min-version`` values.
MIN_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}

_OPTIONS = SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_CIPHER_SERVER_PREFERENCE
# A TLS record carries at most 16 KiB of data, plus at most this much framing,
# padding and tag (TLS 1.2 CBC is the worst; 1.3 adds 22 bytes).
_RECORD_SIZE = 16384
_RECORD_OVERHEAD = 256
# What a plain-HTTP client sends first: a method and a space.
_HTTP_METHOD = re.compile(rb"^[A-Z]{3,7} ")


class TlsConfigError(ValueError):
    """The certificate or key cannot be used; the message is one line."""


class TlsError(Exception):
    """A session failed (bad handshake, broken record); the message is one line."""


def _first_line(exc: BaseException) -> str:
    """A one-line reason from an OpenSSL error (a list of tuples) or anything else."""
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        return "; ".join(str(entry[-1]) for entry in exc.args[0] if entry)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TlsConfigError(f"cannot read the TLS {what} {path}: {exc.strerror or exc}") from None


class TlsConfig:
    """The server side of TLS for every listener: certificate chain and key
    (PEM files), the lowest version, the handshake timeout, ALPN.

    Loads and checks the pair at once (:class:`TlsConfigError`). Usable
    with :class:`asyncwasm.serve.Server` (``Server(..., tls=config)``)."""

    def __init__(self, cert: str, key: str, *, min_version: str = "1.2", handshake_timeout: float = 10.0,
                 alpn: Sequence[str] = ("http/1.1",)) -> None:
        if min_version not in MIN_VERSIONS:
            raise TlsConfigError(f"unknown TLS version {min_version!r}: use {' or '.join(MIN_VERSIONS)}")
        if not handshake_timeout > 0:
            raise TlsConfigError(f"the TLS handshake timeout must be > 0 seconds, not {handshake_timeout!r}")
        self.cert = cert
        self.key = key
        self.min_version = min_version
        self.handshake_timeout = handshake_timeout
        self.alpn = tuple(name.encode("ascii") for name in alpn)
        self.context = self._load()
        self.reloads = 0

    def _load(self) -> SSL.Context:
        chain = _read(self.cert, "certificate")
        key_pem = _read(self.key, "key")
        try:
            leaf = x509.load_pem_x509_certificate(chain)
        except ValueError:
            raise TlsConfigError(f"{self.cert}: not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            raise TlsConfigError(f"{self.key}: not a PEM private key (or it is encrypted)") from None
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_options(_OPTIONS)
        context.set_min_proto_version(MIN_VERSIONS[self.min_version])
        try:
            context.use_certificate_chain_file(self.cert)
        except SSL.Error as exc:
            raise TlsConfigError(f"{self.cert}: not a usable certificate chain: {_first_line(exc)}") from None
        mismatch = TlsConfigError(f"the TLS key {self.key} does not match the certificate {self.cert}")
        try:
            context.use_privatekey(key)  # type: ignore[arg-type]
            context.check_privatekey()
        except (SSL.Error, TypeError):
            raise mismatch from None
        if self.alpn:
            context.set_alpn_select_callback(self._select_alpn)
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.subject = str(names[0].value) if names else "?"
        self.expires = leaf.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
        return context

    def _select_alpn(self, conn: SSL.Connection, offered: list[bytes]) -> Any:
        for name in self.alpn:
            if name in offered:
                return name
        return SSL.NO_OVERLAPPING_PROTOCOLS

    def reload(self) -> Optional[str]:
        """Read the certificate and key again for new sessions. None when it
        worked; else the reason, and the previous pair stays in use."""
        try:
            self.context = self._load()
        except TlsConfigError as exc:
            return str(exc)
        self.reloads += 1
        return None

    def describe(self) -> str:
        """One line for the log: the certificate's name and expiry."""
        return f"certificate CN={self.subject}, expires {self.expires}, TLS >= {self.min_version}"

    def session(self) -> "TlsSession":
        """A new server session with the current certificate."""
        return TlsSession(self.context)

    def __repr__(self) -> str:
        return f"<TlsConfig {self.cert} (CN={self.subject}) min {self.min_version}>"


def client_context(ca_file: Optional[str] = None) -> SSL.Context:
    """A client context that verifies the server's chain: against
    ``ca_file`` (PEM, one or more CA certificates) when given, else the
    system's trust store. TLS >= 1.2, ALPN ``http/1.1``. The host name is
    checked after the handshake (:func:`check_hostname`).
    :class:`TlsConfigError` when ``ca_file`` cannot be used."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: bool(ok))
    if ca_file is not None:
        _read(ca_file, "CA file")  # a readable file, named in the error otherwise
        try:
            context.load_verify_locations(ca_file)
        except SSL.Error as exc:
            raise TlsConfigError(f"{ca_file}: not a PEM CA certificate file: {_first_line(exc)}") from None
    else:
        context.set_default_verify_paths()
    context.set_alpn_protos([b"http/1.1"])
    return context


def check_hostname(cert: x509.Certificate, host: str) -> None:
    """TlsError unless ``cert`` names ``host`` in its subjectAltName (RFC
    6125: a DNS name, case-insensitive, a ``*`` only as the whole leftmost
    label, matching one label; an IP address only an IP entry; the common
    name is not used)."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise TlsError(f"the certificate has no subjectAltName, so it cannot name {host}") from None
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        if address in names.get_values_for_type(x509.IPAddress):
            return
    else:
        wanted = host.rstrip(".").lower().split(".")
        for name in names.get_values_for_type(x509.DNSName):
            labels = name.rstrip(".").lower().split(".")
            if len(labels) != len(wanted):
                continue
            first_ok = labels[0] == wanted[0] or (labels[0] == "*" and len(labels) > 2)
            if first_ok and labels[1:] == wanted[1:]:
                return
    raise TlsError(f"the certificate does not name {host}")


class TlsSession:
    """One TLS connection without I/O (see the module docstring): the server
    side, or with ``server_hostname`` the client side (SNI sent for a name,
    not for an address).

    ``received``/``sent`` count ciphertext bytes through :meth:`receive` and
    :meth:`take_outgoing`."""

    def __init__(self, context: SSL.Context, *, server_hostname: Optional[str] = None) -> None:
        self._conn = SSL.Connection(context, None)
        if server_hostname is None:
            self._conn.set_accept_state()
        else:
            if not _is_address(server_hostname):
                self._conn.set_tlsext_host_name(server_hostname.encode("idna"))
            self._conn.set_connect_state()
        # Ciphertext arrived since a read last found no whole record: only
        # then can a read give anything (pyOpenSSL says "nothing" with an
        # exception, which costs more than the read).
        self._unread = False
        self.handshake_done = False
        self.closed_by_peer = False  # close_notify received
        self.first_bytes = b""       # the start of what the peer sent, to tell what it speaks

    # -- ciphertext ------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Ciphertext from the peer."""
        if len(self.first_bytes) < 8:
            self.first_bytes += data[: 8 - len(self.first_bytes)]
        self._conn.bio_write(data)
        self._unread = True

    def receive_eof(self) -> None:
        """The peer's transport ended (no more ciphertext will come)."""
        self._conn.bio_shutdown()
        self._unread = True

    def take_outgoing(self) -> bytes:
        """Ciphertext waiting to go to the peer (b"" if none)."""
        conn = self._conn
        out = b""
        while True:
            try:
                chunk = conn.bio_read(65536)
            except SSL.WantReadError:
                return out
            if not chunk:
                return out
            out += chunk

    # -- the handshake -----------------------------------------------------------
    def do_handshake(self) -> bool:
        """Advance the handshake with what was received: True once it is
        complete, False while it needs more from the peer. TlsError when it
        fails (the alert for the peer may be in :meth:`take_outgoing`)."""
        if self.handshake_done:
            return True
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return False
        except SSL.Error as exc:
            raise TlsError(self._failure(exc)) from None
        self.handshake_done = True
        return True

    def _failure(self, exc: BaseException) -> str:
        if self.looks_like_plain_http():
            return "plain HTTP sent to the TLS port"
        if isinstance(exc, SSL.SysCallError):
            return "the client closed the connection during the handshake"
        return _first_line(exc)

    def looks_like_plain_http(self) -> bool:
        """The peer's first bytes are an HTTP request line, not a ClientHello."""
        return bool(_HTTP_METHOD.match(self.first_bytes))

    def peer_certificate(self) -> Optional[x509.Certificate]:
        """The peer's leaf certificate (after the handshake), or None."""
        cert = self._conn.get_peer_certificate()
        return None if cert is None else cert.to_cryptography()

    @property
    def alpn(self) -> Optional[str]:
        """The protocol ALPN selected (``"http/1.1"``), or None."""
        chosen = self._conn.get_alpn_proto_negotiated()
        return chosen.decode("ascii", "replace") if chosen else None

    @property
    def version(self) -> str:
        """``"TLSv1.3"``, ``"TLSv1.2"``..."""
        return self._conn.get_protocol_version_name()

    @property
    def server_name(self) -> Optional[str]:
        """The SNI host name the client asked for, or None."""
        name = self._conn.get_servername()
        return name.decode("ascii", "replace") if name else None

    # -- plaintext ---------------------------------------------------------------
    def recv(self, limit: int) -> Optional[bytes]:
        """Up to ``limit`` plaintext bytes: None when a whole record has not
        arrived yet, b"" once the peer closed (close_notify, or the transport
        ended, which :meth:`receive_eof` said). TlsError for a broken record.

        Records the peer's messages call for (a key update's answer) wait
        in :meth:`take_outgoing` and leave with the next :meth:`encrypt`."""
        if not self._unread and not self._conn.pending():
            return None
        try:
            return self._conn.recv(limit)
        except SSL.WantReadError:
            self._unread = False
            return None
        except SSL.ZeroReturnError:
            self.closed_by_peer = True
            return b""
        except SSL.SysCallError as exc:
            if exc.args and exc.args[0] == -1:  # the transport ended without close_notify
                return b""
            raise TlsError(_first_line(exc)) from None
        except SSL.Error as exc:
            raise TlsError(_first_line(exc)) from None

    def encrypt(self, data: Union[bytes, memoryview]) -> bytes:
        """``data`` as records for the peer, after any ciphertext that was
        waiting (:meth:`take_outgoing`). TlsError once the session is broken."""
        view = memoryview(data)
        done = 0
        conn = self._conn
        try:
            while done < len(view):  # pyOpenSSL enables partial writes: one record per call
                done += conn.send(view[done:])
        except SSL.Error as exc:
            raise TlsError(_first_line(exc)) from None
        # Room for every record's header and tag, so one read usually drains it.
        size = len(view) + _RECORD_OVERHEAD * (len(view) // _RECORD_SIZE + 2)
        out = conn.bio_read(size)
        if len(out) == size:
            out += self.take_outgoing()
        return out

    def close(self) -> None:
        """Queue close_notify for the peer (when the handshake got that far)."""
        if not self.handshake_done:
            return
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass

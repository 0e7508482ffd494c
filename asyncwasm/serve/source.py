"""Where a server's module comes from: a file or an http(s) URL, signed or
not, and when to look at it again.

    >>> source = ModuleSource("https://example.org/app.wasm", trust_keys=["ops.pub.pem"], poll=60)
    >>> version = await source.fetch()     # a Version; None when unchanged since the one in use
    >>> source.settle(version)             # it serves now: later fetches are conditional on it
    >>> trigger = await source.next_change()   # "watch" or "poll": time to fetch again

A :class:`Version` is the exact bytes of one module with their SHA-256, the
place they came from and the id of the key that signed them. Every refusal
is a :class:`Refused` carrying an outcome (a metrics label: ``fetch_failed``,
``signature``, ``invalid``, ``rolled_back``) and one line of reason.

Rules:

- A location starting with ``http://`` or ``https://`` is a URL, fetched
  with :class:`~asyncwasm.serve.fetch.HttpClient` (timeouts, size cap,
  redirects, TLS verified against the system store or ``ca_file``);
  anything else is a path. Its signature is ``LOCATION.sig`` (for a URL:
  ``.sig`` appended to the path).
- With ``trust_keys`` every version must come with a signature by one of
  them, checked (:mod:`asyncwasm.signing`) before anything else looks at
  the bytes: no signature, a malformed one, modified bytes or another
  signer are refused with the outcome ``signature``.
- ``max_size`` caps a module from either kind of source: a file is
  measured before it is read, a body is read no further.
- Unchanged: a 304 to the conditional GET (``If-None-Match`` /
  ``If-Modified-Since`` from the settled version), or the same SHA-256 as
  the settled version, makes :meth:`fetch` return None. The validators are
  remembered only for a version that serves (:meth:`settle`), so a refused
  publication is fetched again next time, as a fixed ``.sig`` must be.
- ``watch`` (paths only): the file and its ``.sig`` are looked at every
  ``watch_interval`` seconds (inode, size, times), so a replacement by
  rename and a write in place are both seen; a change is reported once
  nothing changed for ``debounce`` seconds, so a writer is not read half way
  (if it pauses longer, the half-written module is refused as invalid and
  the next change is checked again). ``poll`` seconds: a check on that
  period whatever the kind of source.
"""

from __future__ import annotations

import hashlib
import math
import os
import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union
from urllib.parse import urlsplit, urlunsplit

import trio

from ..signing import SIGNATURE_SUFFIX, SignatureError, TrustedKey, load_public_key, read_signature, verify
from .fetch import DEFAULT_DEADLINE, DEFAULT_TIMEOUT, FetchError, HttpClient

__all__ = ["ModuleSource", "Version", "Refused", "OUTCOMES", "DEFAULT_MAX_SIZE"]

#: Reload outcomes (``asyncwasm_module_reloads_total{outcome}``): a new
#: version serves; nothing new; the module (or its signature) could not be
#: had; refused for its signature; not a usable module (does not compile,
#: no ``_start``); it did not start (link error, trap or exit before it
#: waited for a connection, too slow); the host failed (a bug, a full
#: disk: logged with the exception). In every case but the first the
#: running version goes on.
OUTCOMES = ("swapped", "unchanged", "fetch_failed", "signature", "invalid", "rolled_back", "error")

DEFAULT_MAX_SIZE = 256 << 20
_SIGNATURE_LIMIT = 1024


@dataclass(frozen=True)
class Version:
    """One module version: its bytes, where they came from, who signed them,
    and the HTTP validators they came with. What is kept of a version that
    serves has no bytes (:meth:`without_data`): the compiled module is
    what runs, and a 256 MiB module need not stay in memory twice."""

    data: bytes = field(repr=False)
    origin: str
    signer: Optional[str] = None
    etag: Optional[str] = None
    last_modified: Optional[str] = None
    sha256: str = ""  #: computed from ``data`` unless given (already computed elsewhere)
    size: int = -1  #: ``len(data)`` unless given

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", _sha256(self.data))
        if self.size < 0:
            object.__setattr__(self, "size", len(self.data))

    def without_data(self) -> "Version":
        """The same version, its bytes dropped (sha256 and size kept)."""
        return dataclasses.replace(self, data=b"")

    @property
    def short(self) -> str:
        """The first 12 hex digits of the SHA-256 (what the log shows)."""
        return self.sha256[:12]

    def describe(self) -> str:
        """``sha256 0123456789ab, 22785 bytes, key 7b314f3b1e5687de`` (or ``unsigned``)."""
        signer = f"key {self.signer}" if self.signer else "unsigned"
        return f"sha256 {self.short}, {self.size} bytes, {signer}"


class Refused(Exception):
    """A version that will not serve: ``outcome`` (one of :data:`OUTCOMES`),
    a one-line message, and the version when its bytes were had."""

    def __init__(self, outcome: str, message: str, version: Optional[Version] = None) -> None:
        assert outcome in OUTCOMES, outcome
        super().__init__(message)
        self.outcome = outcome
        self.version = version


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _signature_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + SIGNATURE_SUFFIX))


_Stat = Optional[tuple[int, int, int, int, int]]


def _stat(path: str) -> _Stat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class ModuleSource:
    """A module's location, its trusted signers and its check schedule (see
    the module docstring). Usable with :class:`~asyncwasm.serve.Server`:
    ``Server(ModuleSource("app.wasm", watch=True), handoff)`` serves it and
    swaps in each new version.

    ``trust_keys``: :class:`~asyncwasm.signing.TrustedKey` objects or paths
    of PEM public keys (a bad file raises ValueError at once).
    ``fallback``: module bytes to serve when the source cannot be had at
    start (``asyncwasm serve`` passes its embedded module).
    ``timeout``/``deadline``/``ca_file``: for URLs (see :mod:`.fetch`)."""

    def __init__(self, location: Union[str, "os.PathLike[str]"], *,
                 trust_keys: Sequence[Union[TrustedKey, str, "os.PathLike[str]"]] = (),
                 watch: bool = False, poll: Optional[float] = None, max_size: int = DEFAULT_MAX_SIZE,
                 timeout: float = DEFAULT_TIMEOUT, deadline: float = DEFAULT_DEADLINE,
                 ca_file: Optional[str] = None, fallback: Optional[bytes] = None,
                 watch_interval: float = 0.1, debounce: float = 0.2) -> None:
        self.location = os.fspath(location)
        self.is_url = _is_url(self.location)
        if "://" in self.location and not self.is_url:
            raise ValueError(f"{self.location}: only http:// and https:// URLs (or a path)")
        if watch and self.is_url:
            raise ValueError(f"{self.location}: --watch follows a file; poll a URL instead")
        if poll is not None and not (poll > 0 and math.isfinite(poll)):
            raise ValueError(f"poll period must be > 0 seconds, not {poll!r}")
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1 byte, not {max_size!r}")
        self.trust_keys = [key if isinstance(key, TrustedKey) else load_public_key(key) for key in trust_keys]
        self.watch = watch
        self.poll = poll
        self.max_size = max_size
        self.fallback = fallback
        self.watch_interval = watch_interval
        self.debounce = debounce
        self.client = HttpClient(ca_file=ca_file, timeout=timeout, deadline=deadline, max_size=max_size) \
            if self.is_url else None
        self.settled: Optional[Version] = None
        self._seen = self._watched() if watch else None
        self._next_poll = math.inf

    def __repr__(self) -> str:
        return f"<ModuleSource {self.location}>"

    @property
    def signature_location(self) -> str:
        return _signature_url(self.location) if self.is_url else self.location + SIGNATURE_SUFFIX

    # -- fetching ----------------------------------------------------------------------------
    async def fetch(self) -> Optional[Version]:
        """The version at the location now, its signature checked; None when
        it is the settled one (unchanged). :class:`Refused` otherwise."""
        if self.is_url:
            data, etag, modified = await self._get()
            if data is None:
                return None
        else:
            data = await trio.to_thread.run_sync(self._read_file)
            etag = modified = None
        digest = await trio.to_thread.run_sync(_sha256, data)  # a big module: not on the event loop
        settled = self.settled
        if settled is not None and digest == settled.sha256:
            # the same bytes (verified when they settled): keep the newer validators
            self.settled = dataclasses.replace(settled, etag=etag, last_modified=modified)
            return None
        signer = await self._check_signature(data, digest) if self.trust_keys else None
        return Version(data, self.location, signer, etag, modified, sha256=digest)

    def settle(self, version: Version) -> None:
        """``version`` serves now: the next fetches are conditional on it."""
        self.settled = version.without_data()

    async def _get(self) -> tuple[Optional[bytes], Optional[str], Optional[str]]:
        assert self.client is not None
        settled = self.settled
        try:
            got = await self.client.get(self.location, etag=settled.etag if settled else None,
                                        last_modified=settled.last_modified if settled else None)
        except FetchError as exc:
            raise Refused("fetch_failed", str(exc)) from None
        if got.status == 304:
            return None, got.etag, got.last_modified
        return got.body, got.etag, got.last_modified

    def _read_file(self) -> bytes:
        path = self.location
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > self.max_size:
                    raise Refused("fetch_failed", f"{path}: {size} bytes, more than the {self.max_size}-byte "
                                  f"limit (--max-module-size)")
                data = f.read(self.max_size + 1)
        except OSError as exc:
            raise Refused("fetch_failed", f"{path}: {exc.strerror or exc}") from None
        if len(data) > self.max_size:
            raise Refused("fetch_failed", f"{path}: more than the {self.max_size}-byte limit (--max-module-size)")
        return data

    async def _check_signature(self, data: bytes, digest: str) -> str:
        where = self.signature_location
        unsigned = Version(data, self.location, sha256=digest)
        if self.client is not None:
            try:
                got = await self.client.get(where, max_size=_SIGNATURE_LIMIT)
            except FetchError as exc:
                outcome = "signature" if exc.status == 404 else "fetch_failed"
                raise Refused(outcome, f"no signature: {exc}", unsigned) from None
            raw = got.body
        else:
            try:
                with open(where, "rb") as f:
                    raw = f.read(_SIGNATURE_LIMIT + 1)
            except OSError as exc:
                raise Refused("signature", f"no signature: {where}: {exc.strerror or exc}", unsigned) from None
        try:
            signature = read_signature(raw, where)
            return (await trio.to_thread.run_sync(verify, data, signature, self.trust_keys)).id
        except SignatureError as exc:
            raise Refused("signature", str(exc), unsigned) from None

    def fallback_version(self) -> Optional[Version]:
        """The fallback as a version (its origin says so), if there is one."""
        if self.fallback is None:
            return None
        return Version(self.fallback, "the embedded fallback")

    # -- when to look again ----------------------------------------------------------------
    def _watched(self) -> tuple[_Stat, _Stat]:
        return _stat(self.location), (_stat(self.signature_location) if self.trust_keys else None)

    async def next_change(self) -> str:
        """Wait until the source should be fetched again: ``"watch"`` (the
        file or its signature changed, then stayed unchanged for
        ``debounce`` seconds) or ``"poll"`` (the period passed). Never
        returns when neither ``watch`` nor ``poll`` is set."""
        if self.poll is not None and self._next_poll == math.inf:
            self._next_poll = trio.current_time() + self.poll
        while True:
            now = trio.current_time()
            if now >= self._next_poll:
                self._next_poll = now + (self.poll or math.inf)
                return "poll"
            if self._seen is None:
                await trio.sleep_until(self._next_poll)
                continue
            await trio.sleep(min(self.watch_interval, self._next_poll - now))
            seen = self._watched()
            if seen == self._seen:
                continue
            while True:  # debounce: until it stays the same
                await trio.sleep(self.debounce)
                again = self._watched()
                if again == seen:
                    break
                seen = again
            self._seen = seen
            if self.poll is not None:
                self._next_poll = trio.current_time() + self.poll
            return "watch"

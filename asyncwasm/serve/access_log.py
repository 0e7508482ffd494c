"""The access log: one line per request, in the common or combined format.

    >>> log = AccessLog(sys.stderr, "combined")
    >>> log.write(AccessRecord("127.0.0.1", b"GET / HTTP/1.1", 200, 21, b"-", b"curl/8.0", 1e9))
    127.0.0.1 - - [09/Sep/2001:01:46:40 +0000] "GET / HTTP/1.1" 200 21 "-" "curl/8.0"

The formats are Apache's (``%h %l %u %t "%r" %>s %b``, and combined adds
``"%{Referer}i" "%{User-agent}i"``): ``-`` for an unknown field and for a
body of 0 bytes; the request line, referer and user agent are escaped as
Apache escapes them (``"``, ``\\``, control and non-ASCII bytes as ``\\xHH``),
so a client cannot forge a log line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .http_conn import Exchange

__all__ = ["AccessLog", "AccessRecord", "FORMATS"]

FORMATS = ("common", "combined")


@dataclass(frozen=True)
class AccessRecord:
    """One request's log fields."""

    remote: str
    request_line: bytes
    status: int
    body_bytes: int
    referer: bytes = b"-"
    user_agent: bytes = b"-"
    when: float = 0.0

    @classmethod
    def of(cls, exchange: "Exchange", started: float) -> "AccessRecord":
        request = exchange.request
        referer = user_agent = b"-"
        for name, value in exchange.headers:
            if name == b"referer":
                referer = value
            elif name == b"user-agent":
                user_agent = value
        line = request.method + b" " + request.target + b" HTTP/" + request.http_version
        return cls(exchange.info.remote[0], line, exchange.status, exchange.body_bytes, referer, user_agent, started)


def _escape(value: bytes) -> str:
    out = []
    for byte in value:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


class AccessLog:
    """Writes :class:`AccessRecord` lines to ``stream`` (flushed per line)."""

    def __init__(self, stream: TextIO, format: str = "common") -> None:
        if format not in FORMATS:
            raise ValueError(f"access log format must be one of {', '.join(FORMATS)}, not {format!r}")
        self.stream = stream
        self.format = format
        self._stamp_second = -1
        self._stamp = ""

    def _time(self, when: float) -> str:
        second = int(when or time.time())
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        return self._stamp

    def line(self, record: AccessRecord) -> str:
        size = str(record.body_bytes) if record.body_bytes else "-"
        text = (f'{record.remote} - - [{self._time(record.when)}] "{_escape(record.request_line)}" '
                f"{record.status} {size}")
        if self.format == "combined":
            text += f' "{_escape(record.referer)}" "{_escape(record.user_agent)}"'
        return text

    def write(self, record: AccessRecord) -> None:
        self.stream.write(self.line(record) + "\n")
        self.stream.flush()

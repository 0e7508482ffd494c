"""Host networking shared by ``asyncwasm run`` and ``asyncwasm serve``:
listen addresses, listening sockets, and what the process may use (open
files, CPUs).

    >>> host, port = parse_address("[::1]:8080")
    >>> sock = open_listener(host, port, backlog=1024)
    >>> format_address(sock.getsockname())
    '[::1]:8080'
    >>> raise_fd_limit()           # soft RLIMIT_NOFILE up to the hard limit
    (1024, 524288)

Both commands stand on this module; neither imports the other.
"""

from __future__ import annotations

import os
import resource
import socket
from typing import Any, Optional

__all__ = ["parse_address", "format_address", "open_listener", "raise_fd_limit", "fd_limit", "open_fds",
           "usable_cpus"]


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> ``(host, port)``; ValueError
    naming the expected form otherwise.

        >>> parse_address("127.0.0.1:8080"), parse_address("[::1]:0")
        (('127.0.0.1', 8080), ('::1', 0))
    """
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}: use [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or ":" in host:
            raise ValueError(f"bad address {text!r}: use HOST:PORT (IPv6 as [ADDR]:PORT)")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bad address {text!r}: use HOST:PORT with a port 0-65535")
    return host, int(port_text)


def format_address(address: Any) -> str:
    """A socket address (``getsockname()``, or ``(host, port)``) as
    ``host:port``, IPv6 in brackets."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_listener(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: a free one), with
    SO_REUSEADDR. Raises OSError when the address cannot be bound."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def fd_limit() -> int:
    """The soft limit on open files of this process (RLIMIT_NOFILE)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_fds() -> Optional[int]:
    """How many fds this process has open now (None where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir itself opened
    except OSError:
        return None


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as Go's runtime does
    at start: the soft limit (often 1024) exists for programs that use
    ``select()``, which nothing here does. Returns ``(before, after)``;
    never fails (a limit that cannot be raised stays as it was)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            # RLIM_INFINITY may exceed the kernel's nr_open: try that ceiling.
            try:
                with open("/proc/sys/fs/nr_open") as f:
                    target = int(f.read())
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError):
                return soft, soft
        return soft, target
    return soft, soft


def usable_cpus(cgroup: str = "/sys/fs/cgroup") -> int:
    """The CPUs this process can keep busy: the ones it may run on, and no
    more than its cgroup's CPU quota allows (a container limited to 2 CPUs
    on a 64-CPU node gets 2; ``os.cpu_count()`` would say 64)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        with open(os.path.join(cgroup, "cpu.max")) as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))  # rounded up
    except (OSError, ValueError):
        pass
    return max(1, count)

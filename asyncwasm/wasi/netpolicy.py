"""NetPolicy: which network operations a guest may perform on its own.

    >>> from asyncwasm.wasi import WasiConfig
    >>> from asyncwasm.wasi.netpolicy import NetPolicy
    >>> policy = NetPolicy(listen=["127.0.0.1:8000-8099"],
    ...                    connect=["10.0.0.0/8:443", "[::1]:*"], dns=True)
    >>> config = WasiConfig(net_policy=policy)

Rule: default deny. ``NetPolicy()`` allows nothing; the host's pre-opened
listeners (``WasiConfig.listeners``) need no rule, and accepting on them,
and receiving and sending on connected sockets, is never checked.

What is checked, and where (host functions in :mod:`asyncwasm.wasi.sock`):

- ``listen`` rules: ``sock_bind`` on the requested address and port, and
  ``sock_listen`` on the socket's current local address (so listening on an
  unbound socket, which the kernel would bind to a wildcard address and a
  random port, needs a rule allowing port 0 on the wildcard address).
  Binding to port 0 (an ephemeral port) needs port 0 to be allowed.
- ``connect`` rules: ``sock_connect``, and ``sock_send_to`` with an address.
- ``dns``: ``sock_getaddrinfo`` with a host name. Numeric addresses and a
  missing node never touch the network and are always allowed.
- ``SO_BINDTODEVICE`` is always refused.

A denied operation returns ``ACCES`` to the guest (the POSIX answer to
"permission denied"; ``NOTCAPABLE`` stays reserved for missing fd rights, as
in the rest of the WASI host) and is logged at WARNING on the
``asyncwasm.wasi.net`` logger.

Rule syntax (strings, or :class:`AddressRule` values):

- ``"127.0.0.1"``, ``"10.0.0.0/8"``, ``"[::1]"``, ``"[2001:db8::/32]"``:
  that address or network, any port;
- ``"...:8080"``, ``"...:8000-8099"``, ``"...:*"``: a port or inclusive range;
- ``"*"`` or ``"*:443"``: every IPv4 and IPv6 address.

IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are matched as the IPv4
address they carry, so an IPv6 socket cannot reach around IPv4 rules.
Rules are matched against where the kernel really goes or listens:

- connecting to the unspecified address (``0.0.0.0``, ``::``) reaches this
  host, so it is judged as loopback (``127.0.0.1``, ``::1``): a rule for
  ``0.0.0.0`` is no way to reach local services without a loopback rule;
- binding an IPv6 socket to ``::`` listens on every IPv4 address too (the
  guests' IPv6 sockets are dual-stack), so it needs the listen rules to
  allow both ``::`` and ``0.0.0.0`` on that port.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Iterable, Union

from .abi import Errno, WasiError

__all__ = ["NetPolicy", "AddressRule", "IPAddress", "LOGGER_NAME"]

LOGGER_NAME = "asyncwasm.wasi.net"
logger = logging.getLogger(LOGGER_NAME)

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_ALL_V4 = ipaddress.ip_network("0.0.0.0/0")
_ALL_V6 = ipaddress.ip_network("::/0")
_ALL_PORTS = (0, 65535)
_V4_ANY = ipaddress.IPv4Address("0.0.0.0")
_V6_ANY = ipaddress.IPv6Address("::")
_V4_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
_V6_LOOPBACK = ipaddress.IPv6Address("::1")


def normalize_ip(address: Union[str, bytes, IPAddress]) -> IPAddress:
    """``address`` as an ip_address object, IPv4-mapped IPv6 as IPv4 and
    the IPv6 scope id dropped.

        >>> normalize_ip("::ffff:127.0.0.1")
        IPv4Address('127.0.0.1')
    """
    if isinstance(address, str):
        address = address.split("%", 1)[0]
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _parse_ports(text: str, rule: str) -> tuple[int, int]:
    if text == "*":
        return _ALL_PORTS
    low, dash, high = text.partition("-")
    try:
        first = int(low)
        last = int(high) if dash else first
    except ValueError:
        raise ValueError(f"bad port range {text!r} in network rule {rule!r}") from None
    if not 0 <= first <= last <= 65535:
        raise ValueError(f"port range {text!r} outside 0-65535 (or reversed) in network rule {rule!r}")
    return first, last


@dataclass(frozen=True)
class AddressRule:
    """Addresses in ``networks`` on ports ``first_port..last_port`` (inclusive)."""

    networks: tuple[IPNetwork, ...]
    first_port: int = 0
    last_port: int = 65535

    @classmethod
    def parse(cls, text: str) -> "AddressRule":
        """Parse one rule string (syntax in the module docstring)."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"network rule must be a non-empty string, not {text!r}")
        host, ports = text, "*"
        if text.startswith("["):
            close = text.find("]")
            if close < 0:
                raise ValueError(f"missing ']' in network rule {text!r}")
            host, rest = text[1:close], text[close + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"expected ':PORTS' after ']' in network rule {text!r}")
                ports = rest[1:]
        elif text.count(":") == 1:
            host, ports = text.split(":")
        elif ":" in text:
            raise ValueError(f"write IPv6 addresses in brackets, e.g. '[::1]:80', in network rule {text!r}")
        if host == "*":
            networks: tuple[IPNetwork, ...] = (_ALL_V4, _ALL_V6)
        else:
            try:
                networks = (ipaddress.ip_network(host, strict=False),)
            except ValueError as exc:
                raise ValueError(f"bad address {host!r} in network rule {text!r} ({exc})") from None
        first, last = _parse_ports(ports, text)
        return cls(networks, first, last)

    def matches(self, ip: IPAddress, port: int) -> bool:
        if not self.first_port <= port <= self.last_port:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)

    def __str__(self) -> str:
        hosts = ",".join(str(n) for n in self.networks)
        ports = "*" if (self.first_port, self.last_port) == _ALL_PORTS else (
            str(self.first_port) if self.first_port == self.last_port else f"{self.first_port}-{self.last_port}")
        return f"{hosts}:{ports}"


def _rules(items: Iterable[Union[str, AddressRule]], what: str) -> tuple[AddressRule, ...]:
    if isinstance(items, (str, bytes)):
        raise TypeError(f"NetPolicy.{what} must be a list of rules, not a single string")
    rules = []
    for item in items:
        if isinstance(item, AddressRule):
            rules.append(item)
        elif isinstance(item, str):
            rules.append(AddressRule.parse(item))
        else:
            raise TypeError(f"NetPolicy.{what} items must be str or AddressRule, not {type(item).__name__}")
    return tuple(rules)


@dataclass(frozen=True)
class NetPolicy:
    """A guest's network permissions (see the module docstring).

    - ``listen``: rules for ``sock_bind`` / ``sock_listen``.
    - ``connect``: rules for ``sock_connect`` / ``sock_send_to``.
    - ``dns``: whether ``sock_getaddrinfo`` may resolve host names.

    Rules may be given as strings; they are parsed (and checked) at once.
    """

    listen: tuple[AddressRule, ...] = field(default=())
    connect: tuple[AddressRule, ...] = field(default=())
    dns: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "listen", _rules(self.listen, "listen"))
        object.__setattr__(self, "connect", _rules(self.connect, "connect"))
        if not isinstance(self.dns, bool):
            raise TypeError(f"NetPolicy.dns must be a bool, not {type(self.dns).__name__}")

    @classmethod
    def allow_all(cls) -> "NetPolicy":
        """Everything: any address and port, and DNS (trusted guests only)."""
        return cls(listen=["*"], connect=["*"], dns=True)

    # -- questions (pure) ----------------------------------------------------
    def allows_listen(self, ip: Union[str, IPAddress], port: int) -> bool:
        address = normalize_ip(ip)
        addresses = [address]
        if address == _V6_ANY:  # dual-stack: also every IPv4 address
            addresses.append(_V4_ANY)
        return all(any(rule.matches(a, port) for rule in self.listen) for a in addresses)

    def allows_connect(self, ip: Union[str, IPAddress], port: int) -> bool:
        address = normalize_ip(ip)
        if address.is_unspecified:  # the kernel connects to this host
            address = _V4_LOOPBACK if address.version == 4 else _V6_LOOPBACK
        return any(rule.matches(address, port) for rule in self.connect)

    # -- checks used by the host functions (log, then ACCES) -----------------
    def check_listen(self, operation: str, ip: Union[str, IPAddress], port: int) -> None:
        """Raise ``WasiError(ACCES)`` (and log) unless listening there is allowed."""
        if not self.allows_listen(ip, port):
            deny(operation, f"{ip} port {port}")

    def check_connect(self, operation: str, ip: Union[str, IPAddress], port: int) -> None:
        """Raise ``WasiError(ACCES)`` (and log) unless connecting there is allowed."""
        if not self.allows_connect(ip, port):
            deny(operation, f"{ip} port {port}")

    def check_dns(self, operation: str, name: str) -> None:
        """Raise ``WasiError(ACCES)`` (and log) unless name lookups are allowed."""
        if not self.dns:
            deny(operation, f"lookup of {name!r}")


def deny(operation: str, what: str) -> None:
    """Log a refused operation and raise ``WasiError(ACCES)``."""
    logger.warning("guest %s denied by the network policy: %s", operation, what)
    raise WasiError(Errno.ACCES)

"""NetPolicy: rule parsing, matching, default deny, logging of denials.
(The policy at work inside the socket calls is tested in test_wasi_sock_wasmedge.py.)"""

from __future__ import annotations

import ipaddress
import logging

import pytest

from .guests.harness import load_wasi

wasi = load_wasi()
from asyncwasm.wasi.netpolicy import LOGGER_NAME, AddressRule, NetPolicy  # noqa: E402

Errno = wasi.Errno


@pytest.mark.parametrize(
    "text, networks, ports",
    [
        ("127.0.0.1", ["127.0.0.1/32"], (0, 65535)),
        ("10.0.0.0/8:443", ["10.0.0.0/8"], (443, 443)),
        ("10.1.2.3/8:8000-8099", ["10.0.0.0/8"], (8000, 8099)),  # host bits are dropped
        ("[::1]", ["::1/128"], (0, 65535)),
        ("[2001:db8::/32]:*", ["2001:db8::/32"], (0, 65535)),
        ("*", ["0.0.0.0/0", "::/0"], (0, 65535)),
        ("*:0", ["0.0.0.0/0", "::/0"], (0, 0)),
    ],
)
def test_rules_parse(text, networks, ports):
    rule = AddressRule.parse(text)
    assert [str(n) for n in rule.networks] == networks
    assert (rule.first_port, rule.last_port) == ports


@pytest.mark.parametrize(
    "text", ["", "::1", "[::1", "[::1]80", "1.2.3.4:99999", "1.2.3.4:9-1", "1.2.3.4:x", "example.com:80", "1.2.3.4:-"]
)
def test_bad_rules_are_refused_at_once(text):
    with pytest.raises(ValueError):
        NetPolicy(connect=[text])


def test_rule_lists_must_be_lists():
    with pytest.raises(TypeError):
        NetPolicy(connect="127.0.0.1")
    with pytest.raises(TypeError):
        NetPolicy(listen=[8080])
    with pytest.raises(TypeError):
        NetPolicy(dns="yes")


def test_default_policy_denies_everything():
    policy = NetPolicy()
    assert not policy.allows_listen("127.0.0.1", 8080)
    assert not policy.allows_connect("::1", 80)
    assert not policy.dns


def test_matching_by_network_port_and_family():
    policy = NetPolicy(listen=["127.0.0.1:8000-8099", "[::1]:0"], connect=["10.0.0.0/8:443", "[2001:db8::/32]"])
    assert policy.allows_listen("127.0.0.1", 8000) and policy.allows_listen("127.0.0.1", 8099)
    assert not policy.allows_listen("127.0.0.1", 8100) and not policy.allows_listen("127.0.0.2", 8000)
    assert policy.allows_listen("::1", 0) and not policy.allows_listen("::1", 8000)
    assert policy.allows_connect("10.255.0.1", 443) and not policy.allows_connect("11.0.0.1", 443)
    assert policy.allows_connect("2001:db8::5", 22) and not policy.allows_connect("2001:db9::5", 22)
    assert not policy.allows_connect("::ffff:10.0.0.1", 80)  # port still applies after unmapping


def test_ipv4_mapped_addresses_are_judged_as_ipv4():
    v4_only = NetPolicy(connect=["127.0.0.1:80"])
    assert v4_only.allows_connect("::ffff:127.0.0.1", 80)
    v6_everything = NetPolicy(connect=["[::/0]"])
    assert not v6_everything.allows_connect("::ffff:127.0.0.1", 80)  # no way around IPv4 rules
    assert v6_everything.allows_connect(ipaddress.ip_address("::1"), 80)


def test_allow_all():
    policy = NetPolicy.allow_all()
    assert policy.dns and policy.allows_connect("8.8.8.8", 53) and policy.allows_listen("::", 0)


def test_denials_raise_acces_and_are_logged(caplog):
    policy = NetPolicy(connect=["127.0.0.1:80"])
    policy.check_connect("sock_connect", ipaddress.ip_address("127.0.0.1"), 80)  # allowed: silent
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        with pytest.raises(wasi.abi.WasiError) as info:
            policy.check_connect("sock_connect", ipaddress.ip_address("127.0.0.1"), 81)
        with pytest.raises(wasi.abi.WasiError):
            policy.check_listen("sock_bind", ipaddress.ip_address("0.0.0.0"), 0)
        with pytest.raises(wasi.abi.WasiError):
            policy.check_dns("sock_getaddrinfo", "example.com")
    assert info.value.errno == Errno.ACCES
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert messages == [
        "guest sock_connect denied by the network policy: 127.0.0.1 port 81",
        "guest sock_bind denied by the network policy: 0.0.0.0 port 0",
        "guest sock_getaddrinfo denied by the network policy: lookup of 'example.com'",
    ]


def test_config_takes_a_policy():
    with wasi.WasiContext(wasi.WasiConfig(net_policy=NetPolicy(dns=True))) as ctx:
        assert ctx.net.policy.dns
    with pytest.raises(TypeError):
        wasi.WasiContext(wasi.WasiConfig(net_policy={"dns": True}))

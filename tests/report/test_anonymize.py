"""Prefix-preserving, keyed anonymisation of client addresses."""

from __future__ import annotations

import doctest
import ipaddress
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import auditor.report.anonymize as anonymize
from auditor.report.anonymize import (
    KEY_FILE_NAME,
    PrefixPreservingAnonymizer,
    RecordAnonymizer,
    load_or_create_key,
)

ANON = PrefixPreservingAnonymizer(b"test secret")
v4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
v6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))


def _common_prefix(a: str, b: str) -> int:
    x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    bits = x.max_prefixlen
    diff = int(x) ^ int(y)
    return bits - diff.bit_length()


def test_doctests_pass() -> None:
    assert doctest.testmod(anonymize).failed == 0


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.tuples(v4, v4), st.tuples(v6, v6)))
def test_shared_prefix_length_is_preserved_exactly(pair: tuple[str, str]) -> None:
    a, b = pair
    assert _common_prefix(ANON.address(a), ANON.address(b)) == _common_prefix(a, b)


@settings(max_examples=30, deadline=None)
@given(v4)
def test_mapping_is_stable_across_instances(address: str) -> None:
    assert ANON.address(address) == PrefixPreservingAnonymizer(b"test secret").address(address)


def test_different_keys_give_different_mappings() -> None:
    addresses = [f"192.0.2.{n}" for n in range(20)]
    other = PrefixPreservingAnonymizer(b"another secret")
    assert [ANON.address(a) for a in addresses] != [other.address(a) for a in addresses]
    assert len({ANON.address(a) for a in addresses}) == 20


def test_records_are_rewritten_in_fields_and_text() -> None:
    records = RecordAnonymizer(ANON)
    client, pseudonym = "192.0.2.10", ANON.address("192.0.2.10")
    finding = records.finding({
        "kind": "finding", "client": client, "server": "198.51.100.53",
        "message": f"client {client} asked; 192.0.2.100 did not", "params": {"who": [client]},
    })
    assert finding["client"] == pseudonym and finding["server"] == "198.51.100.53"
    assert finding["message"] == f"client {pseudonym} asked; 192.0.2.100 did not"
    assert finding["params"] == {"who": [pseudonym]}
    response = records.response({"schema": "s", "src": "198.51.100.53", "dst": client})
    assert response == {"schema": "s", "src": "198.51.100.53", "dst": pseudonym}
    anomaly = records.finding({"kind": "anomaly", "src": client, "dst": "::1"})
    assert anomaly["src"] == pseudonym and anomaly["dst"] == ANON.address("::1")


def test_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path, None)
    assert (tmp_path / KEY_FILE_NAME).stat().st_mode & 0o077 == 0
    assert load_or_create_key(tmp_path, None) == first
    given_key = tmp_path / "mine.key"
    given_key.write_bytes(b"shared secret\n")
    assert load_or_create_key(tmp_path, given_key) == b"shared secret"

"""SQLite key cache: persistence across runs, trust from the cache, import/export, corruption."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import dns.rdatatype
import pytest

from auditor.errors import KeyCacheError
from auditor.findings import ValidationCode as C
from auditor.trust import KeyCache, KeyMaterial, KeyState
from auditor.validate import Status
from tests.validate.signing import Lab, name, respond


def _run_one(lab: Lab, cache_path: str) -> None:
    """First run: full chain in the capture; persist what the validator learnt."""
    with KeyCache(cache_path) as cache:
        validator = lab.validator(cache=cache)
        assert validator.judge(
            respond("www.example.test.", "A", lab.signed_a())).status is Status.SECURE
        cache.apply(validator.cache_updates())


def _leaf_only_material(lab: Lab) -> KeyMaterial:
    material = KeyMaterial()
    material.observe(lab.dnskey_response(lab.leaf))
    return material


def test_keys_trusted_in_an_earlier_run_validate_today(tmp_path: Path) -> None:
    lab = Lab()
    path = str(tmp_path / "keys.sqlite")
    _run_one(lab, path)
    with KeyCache(path) as cache:
        rows = cache.list()
        leaf_rows = [r for r in rows if r.zone == "example.test."]
        assert {r.state for r in leaf_rows} == {KeyState.TRUSTED}
        assert all("ds" in (r.validated_by or "") for r in leaf_rows)
        # Second run: only the leaf's DNSKEY is in today's capture (no DS, no parents).
        validator = lab.validator(cache=cache, material=_leaf_only_material(lab))
        verdict = validator.judge(respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.SECURE
    assert C.TRUST_FROM_CACHE in verdict.codes


def test_without_cache_the_same_capture_is_indeterminate() -> None:
    lab = Lab()
    verdict = lab.validator(material=_leaf_only_material(lab)).judge(
        respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.INDETERMINATE
    assert "DS for example.test. not seen" in verdict.missing


def test_seen_keys_are_not_trusted(tmp_path: Path) -> None:
    lab = Lab()
    path = str(tmp_path / "keys.sqlite")
    with KeyCache(path) as cache:
        validator = lab.validator(cache=cache, material=_leaf_only_material(lab))
        cache.apply(validator.cache_updates())
        assert {r.state for r in cache.list()} == {KeyState.SEEN}
        second = lab.validator(cache=cache, material=_leaf_only_material(lab))
        verdict = second.judge(respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.INDETERMINATE


def test_export_import_round_trip(tmp_path: Path) -> None:
    lab = Lab()
    path = str(tmp_path / "keys.sqlite")
    _run_one(lab, path)
    with KeyCache(path) as cache:
        assert cache.export(str(tmp_path / "keys.json")) == len(cache.list())
        cache.export(str(tmp_path / "keys.zone"))
        before = cache.list()
    payload = json.loads((tmp_path / "keys.json").read_text())
    assert payload["format"] == "dnssec-auditor-keycache" and payload["version"] == 1
    with KeyCache(str(tmp_path / "copy.sqlite")) as copy:
        assert copy.import_file(str(tmp_path / "keys.json")) == len(before)
        assert copy.list() == before
    with KeyCache(str(tmp_path / "zone.sqlite")) as other:
        assert other.import_file(str(tmp_path / "keys.zone")) == len(before)
        imported = other.list()
        assert {r.dnskey for r in imported} == {r.dnskey for r in before}
        assert all(r.validated_by and r.validated_by.startswith("import:") for r in imported)


def test_import_zone_text_dnskey_trusts_it(tmp_path: Path) -> None:
    lab = Lab()
    text = "".join(f"example.test. 3600 IN DNSKEY {k.to_text()}\n"
                   for k in (lab.leaf.ksk, lab.leaf.zsk))
    (tmp_path / "leaf.keys").write_text(text)
    with KeyCache(str(tmp_path / "c.sqlite")) as cache:
        assert cache.import_file(str(tmp_path / "leaf.keys")) == 2
        verdict = lab.validator(cache=cache, material=KeyMaterial()).judge(
            respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.SECURE
    assert C.TRUST_FROM_CACHE in verdict.codes


def test_state_never_downgrades(tmp_path: Path) -> None:
    lab = Lab()
    with KeyCache(str(tmp_path / "c.sqlite")) as cache:
        cache.record_validated(name("example.test."), lab.leaf.zsk, validated_by="chain",
                               first_seen_ns=5, last_seen_ns=6)
        cache.record_validated(name("example.test."), lab.leaf.zsk, validated_by=None,
                               state=KeyState.SEEN, first_seen_ns=1, last_seen_ns=9)
        (row,) = cache.list()
    assert row.state is KeyState.TRUSTED and row.validated_by == "chain"
    assert (row.first_seen_ns, row.last_seen_ns) == (1, 9)
    assert row.rdata() == lab.leaf.zsk
    assert row.algorithm == 13 and row.flags == 256
    assert dns.rdatatype.DNSKEY == row.rdata().rdtype


def test_corrupt_file_and_newer_schema(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(KeyCacheError):
        KeyCache(str(garbage))
    newer = tmp_path / "newer.sqlite"
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(KeyCacheError, match="newer"):
        KeyCache(str(newer))
    with KeyCache(str(tmp_path / "ok.sqlite")) as cache:
        bad = tmp_path / "bad.json"
        bad.write_text('{"format": "something-else"}')
        with pytest.raises(KeyCacheError):
            cache.import_file(str(bad))

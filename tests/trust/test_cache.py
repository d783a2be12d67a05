"""SQLite key cache: persistence across runs, trust from the cache, import/export, corruption."""

from __future__ import annotations

import json
import logging
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
        assert {r.state for r in imported} == {r.state for r in before}


def _leaf_keys_file(lab: Lab, path: Path) -> str:
    path.write_text("".join(f"example.test. 3600 IN DNSKEY {k.to_text()}\n"
                            for k in (lab.leaf.ksk, lab.leaf.zsk)))
    return str(path)


def test_plain_zone_text_dnskeys_import_as_seen_and_validate_nothing(tmp_path: Path) -> None:
    lab = Lab()
    source = _leaf_keys_file(lab, tmp_path / "leaf.keys")
    with KeyCache(str(tmp_path / "c.sqlite")) as cache:
        assert cache.import_file(source) == 2
        assert {r.state for r in cache.list()} == {KeyState.SEEN}
        verdict = lab.validator(cache=cache, material=KeyMaterial()).judge(
            respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.INDETERMINATE
    assert C.TRUST_FROM_CACHE not in verdict.codes


def test_import_trusted_is_the_users_explicit_choice(tmp_path: Path) -> None:
    """Negative twin of the test above: the same file with --trusted validates."""
    lab = Lab()
    source = _leaf_keys_file(lab, tmp_path / "leaf.keys")
    with KeyCache(str(tmp_path / "c.sqlite")) as cache:
        assert cache.import_file(source, trusted=True) == 2
        rows = cache.list()
        verdict = lab.validator(cache=cache, material=KeyMaterial()).judge(
            respond("www.example.test.", "A", lab.signed_a()))
    assert {r.state for r in rows} == {KeyState.TRUSTED}
    assert all(r.validated_by == f"import:{source} (--trusted)" for r in rows)
    assert verdict.status is Status.SECURE
    assert C.TRUST_FROM_CACHE in verdict.codes


def _mixed_cache(lab: Lab, path: str) -> list[tuple[str, int, KeyState]]:
    """A cache holding the leaf's keys trusted (validated in a run) and the zone keys of
    another zone only seen."""
    _run_one(lab, path)
    with KeyCache(path) as cache:
        cache.record_validated(name("seen-only.test."), lab.leaf.zsk, validated_by=None,
                               state=KeyState.SEEN)
        return sorted((r.zone, r.key_tag, r.state) for r in cache.list())


@pytest.mark.parametrize("suffix", [".zone", ".json"])
def test_export_then_import_keeps_every_keys_state(tmp_path: Path, suffix: str) -> None:
    lab = Lab()
    states = _mixed_cache(lab, str(tmp_path / "keys.sqlite"))
    assert {s for _, _, s in states} == {KeyState.TRUSTED, KeyState.SEEN}
    exported = str(tmp_path / f"keys{suffix}")
    with KeyCache(str(tmp_path / "keys.sqlite")) as cache:
        cache.export(exported)
    with KeyCache(str(tmp_path / "copy.sqlite")) as copy:
        copy.import_file(exported)
        assert sorted((r.zone, r.key_tag, r.state) for r in copy.list()) == states
        seen = [r for r in copy.list() if r.zone == "seen-only.test."]
        assert seen and all(r.validated_by is None for r in seen)


def test_export_without_its_annotations_imports_as_seen(tmp_path: Path) -> None:
    """Negative twin: the state travels in the annotation; strip it and nothing is trusted."""
    lab = Lab()
    _mixed_cache(lab, str(tmp_path / "keys.sqlite"))
    exported = tmp_path / "keys.zone"
    with KeyCache(str(tmp_path / "keys.sqlite")) as cache:
        cache.export(str(exported))
    text = exported.read_text()
    assert "; dnssec-auditor-keycache state=trusted validated_by=ds " in text
    stripped = tmp_path / "stripped.zone"
    stripped.write_text("".join(line.split(";")[0] + "\n" for line in text.splitlines()))
    with KeyCache(str(tmp_path / "copy.sqlite")) as copy:
        copy.import_file(str(stripped))
        assert {r.state for r in copy.list()} == {KeyState.SEEN}


def test_unknown_state_in_an_annotation_is_an_error_naming_file_and_line(
    tmp_path: Path,
) -> None:
    lab = Lab()
    bad = tmp_path / "bad.zone"
    bad.write_text(f"example.test. IN DNSKEY {lab.leaf.zsk.to_text()} ; state=blessed\n")
    with KeyCache(str(tmp_path / "c.sqlite")) as cache, pytest.raises(
        KeyCacheError, match=r"bad\.zone:1: unknown key state 'blessed'"
    ):
        cache.import_file(str(bad))


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


def _garbage_rows(path: Path, lab: Lab) -> None:
    """A valid SQLite key cache holding one good row and rows that describe no key."""
    with KeyCache(str(path)) as cache:
        cache.record_validated(name("example.test."), lab.leaf.zsk, validated_by="chain")
    db = sqlite3.connect(path)
    good_wire = lab.leaf.zsk.to_digestable()
    db.executemany(
        "INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("a.test.", 1, 8, 257, b"\x00\x01", None, None, "trusted", None),  # cut rdata
            ("b.test.", 2, 8, 257, "text, not wire", None, None, "trusted", None),
            ("c.test.", 3, 13, 256, good_wire, None, None, "trusted", None),  # wrong tag
            ("d.test.", "x", 8, 257, b"\x01\x01\x03\x08", "when", None, "trusted", None),
            ("e.test.", 4, 8, 257, good_wire, None, None, "blessed", None),  # unknown state
        ],
    )
    db.commit()
    db.close()


@pytest.fixture
def warnings_seen(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
                  ) -> pytest.LogCaptureFixture:
    """caplog, also after a CLI run in this process stopped the package logger propagating."""
    monkeypatch.setattr(logging.getLogger("auditor"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="auditor")
    return caplog


def test_garbage_rows_are_skipped_counted_and_named(
    tmp_path: Path, warnings_seen: pytest.LogCaptureFixture
) -> None:
    caplog = warnings_seen
    lab = Lab()
    path = tmp_path / "garbage.sqlite"
    _garbage_rows(path, lab)
    with KeyCache(str(path)) as cache:
        rows = cache.list()
        assert [r.zone for r in rows] == ["example.test."]
        assert cache.skipped_rows == 5
        assert list(cache.trusted_keys()) == [name("example.test.")]
        assert cache.state_counts() == {"trusted": 1, "seen": 0, "revoked": 0,
                                        "skipped_rows": 5}
        # Writing over a garbage row replaces it.
        cache.record_validated(name("e.test."), lab.leaf.zsk, validated_by=None,
                               state=KeyState.SEEN)
        assert cache.skipped_rows == 5 and len(cache.list()) == 2
        assert cache.skipped_rows == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "garbage.sqlite: 5 key cache rows skipped" in warnings[0]


def test_a_clean_cache_skips_nothing(
    tmp_path: Path, warnings_seen: pytest.LogCaptureFixture
) -> None:
    """Negative twin: the same good row alone is listed and nothing is reported."""
    caplog = warnings_seen
    lab = Lab()
    with KeyCache(str(tmp_path / "clean.sqlite")) as cache:
        cache.record_validated(name("example.test."), lab.leaf.zsk, validated_by="chain")
        assert len(cache.list()) == 1 and cache.skipped_rows == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def corrupt_cache(path: Path) -> None:
    """A key cache whose header is intact and whose table pages are overwritten."""
    lab = Lab()
    with KeyCache(str(path)) as cache:
        for index in range(40):
            cache.record_validated(name(f"z{index}.test."), lab.leaf.zsk, validated_by="chain")
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) > page
    data[page + 100:] = b"\x5a" * (len(data) - page - 100)
    path.write_bytes(bytes(data))


def test_corrupt_pages_are_a_key_cache_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.sqlite"
    corrupt_cache(path)
    with KeyCache(str(path)) as cache, pytest.raises(KeyCacheError, match="corrupt.sqlite"):
        cache.list()


def test_a_child_validated_through_cached_parent_keys_carries_the_cache_mark(
    tmp_path: Path,
) -> None:
    # Run 1 trusted test.'s keys. Run 2 holds only the DS of example.test. (signed by test.)
    # and example.test.'s DNSKEY: the leaf's trust rests on the cache and must say so, and
    # must not be written back as if this run had validated it from an anchor.
    lab = Lab()
    path = str(tmp_path / "keys.sqlite")
    _run_one(lab, path)
    material = KeyMaterial()
    material.observe(lab.dnskey_response(lab.tld))
    material.observe(lab.dnskey_response(lab.leaf))
    material.observe(lab.ds_response(lab.leaf, lab.tld))
    with KeyCache(path) as cache:
        validator = lab.validator(cache=cache, material=material)
        verdict = validator.judge(respond("www.example.test.", "A", lab.signed_a()))
        updates = validator.cache_updates()
    assert verdict.status is Status.SECURE
    assert C.TRUST_FROM_CACHE in verdict.rrsets[0].codes or C.TRUST_FROM_CACHE in verdict.codes
    leaf = [u for u in updates if u.zone == name("example.test.")]
    assert leaf and all(u.state is not KeyState.TRUSTED for u in leaf)
    # Twin: with the whole chain in the capture the leaf is validated from the anchor.
    full = lab.validator()
    verdict = full.judge(respond("www.example.test.", "A", lab.signed_a()))
    assert C.TRUST_FROM_CACHE not in verdict.codes
    assert any(u.zone == name("example.test.") and u.state is KeyState.TRUSTED
               for u in full.cache_updates())

"""Trust anchor loading: every format, the embedded IANA root anchors, the root override rule,
validity periods, and errors naming file and line."""

from __future__ import annotations

import logging
from pathlib import Path

import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.errors import TrustAnchorError
from auditor.trust import IANA_ROOT_SOURCE, load_anchors, parse_anchor_text
from auditor.validate import Status
from tests.validate.signing import WHEN, Lab, respond

# Source: IANA https://data.iana.org/root-anchors/root-anchors.xml (RFC 9718 format).
IANA = {
    19036: "49AAC11D7B6F6446702E54A1607371607A1A41855200FD2CE1CDDE32F24E8FB5",
    20326: "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
    38696: "683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
}
# Source: RFC 6605 section 6.1 (the example P-256 KSK of example.net, key tag 55648).
KEY = ("257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9x"
       "MWyQLc8NAA==")
DIGEST = "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17"
KEY_B64 = KEY.split()[3]


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_embedded_iana_root_anchors() -> None:
    anchors = load_anchors([])
    found = {a.key_tag: a for a in anchors}
    assert set(found) == set(IANA)
    for tag, digest in IANA.items():
        anchor = found[tag]
        assert anchor.zone == dns.name.root and anchor.algorithm == 8
        assert anchor.ds is not None and anchor.ds.digest_type == 2
        assert anchor.ds.digest.hex().upper() == digest
        assert anchor.source == IANA_ROOT_SOURCE
    assert not found[38696].valid_at(1_700_000_000)  # validFrom 2024-07-18
    assert found[38696].valid_at(1_730_000_000)
    assert found[20326].valid_at(1_700_000_000)
    # KSK-2010: validFrom 2010-07-15, validUntil 2019-01-11 (root-anchors.xml).
    assert not found[19036].valid_at(1_279_151_999)  # 2010-07-14 23:59:59
    assert found[19036].valid_at(1_358_899_200)  # 2013-01-23
    assert not found[19036].valid_at(1_547_251_200)  # 2019-01-12


@pytest.mark.parametrize(("day", "in_force"), [
    ("2009-06-01", set()),  # before the root was signed
    ("2013-01-23", {19036}),
    ("2018-06-01", {19036, 20326}),  # the 2017-2018 rollover
    ("2020-01-01", {20326}),
    ("2025-01-01", {20326, 38696}),
])
def test_iana_anchors_in_force_follow_the_history(day: str, in_force: set[int]) -> None:
    from datetime import datetime

    at_s = int(datetime.fromisoformat(day + "T12:00:00+00:00").timestamp())
    anchors = load_anchors([])
    assert {a.key_tag for a in anchors.for_zone(dns.name.root, at_s)} == in_force


def test_user_root_anchor_replaces_iana(tmp_path: Path) -> None:
    lab = Lab()
    path = _write(tmp_path, "root.ds", lab.root.anchor_text())
    anchors = load_anchors([path])
    assert [a.source.startswith(path) for a in anchors] == [True]
    material = lab.material()
    from auditor.trust import KeyView
    from auditor.validate import RFC8624, Validator

    verdict = Validator(KeyView(anchors, material), RFC8624).judge(
        respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.SECURE
    # Twin: with only the IANA anchors the private root cannot validate.
    iana_only = Validator(KeyView(load_anchors([]), material), RFC8624).judge(
        respond("www.example.test.", "A", lab.signed_a()))
    assert iana_only.status is Status.BOGUS


def test_non_root_anchor_keeps_iana_root(tmp_path: Path) -> None:
    path = _write(tmp_path, "example.key", f"example.net. 3600 IN DNSKEY {KEY}\n")
    anchors = load_anchors([path])
    assert dns.name.from_text("example.net.") in anchors.zones
    assert dns.name.root in anchors.zones
    assert load_anchors([path], include_iana_root=False).zones == {
        dns.name.from_text("example.net.")}


def test_zone_file_multiline_and_comments(tmp_path: Path) -> None:
    text = f"""; autotrust trust anchor file
$TTL 3600
example.net. IN DNSKEY ( 257 3 13
    {KEY_B64[:40]}
    {KEY_B64[40:]} ) ;{{id = 55648 (ksk)}} ;;state=2 [ VALID ]
example.net. 3600 IN DS 55648 13 2 {DIGEST}
"""
    anchors = parse_anchor_text(text, "unbound.key")
    assert [a.key_tag for a in anchors] == [55648, 55648]
    assert anchors[0].dnskey is not None and anchors[1].ds is not None


def test_unbound_trust_anchor_lines() -> None:
    text = f'server:\n    trust-anchor: "example.net. DNSKEY {KEY}"\n    verbosity: 1\n'
    anchors = parse_anchor_text(text, "unbound.conf")
    assert len(anchors) == 1 and anchors[0].key_tag == 55648


def test_bind_trust_anchors_clause() -> None:
    text = f"""// BIND anchors
trust-anchors {{
    example.net. initial-key 257 3 13 "{KEY_B64[:30]}
        {KEY_B64[30:]}";
    "example.org." static-ds 55648 13 2 "{DIGEST}";
}};
"""
    anchors = parse_anchor_text(text, "named.conf")
    assert [str(a.zone) for a in anchors] == ["example.net.", "example.org."]
    assert anchors[0].dnskey is not None and anchors[1].ds is not None


def test_bind_trusted_keys_clause() -> None:
    text = f'trusted-keys {{ "example.net." 257 3 13 "{KEY_B64}"; }};\n'
    anchors = parse_anchor_text(text, "named.conf")
    assert anchors[0].key_tag == 55648


def test_iana_xml_valid_until(tmp_path: Path) -> None:
    xml = """<?xml version="1.0"?>
<TrustAnchor id="x" source="test"><Zone>.</Zone>
<KeyDigest id="a" validFrom="2010-07-15T00:00:00+00:00" validUntil="2019-01-11T00:00:00+00:00">
<KeyTag>19036</KeyTag><Algorithm>8</Algorithm><DigestType>2</DigestType>
<Digest>49AAC11D7B6F6446702E54A1607371607A1A41855200FD2CE1CDDE32F24E8FB5</Digest>
</KeyDigest></TrustAnchor>"""
    anchor = load_anchors([_write(tmp_path, "old.xml", xml)])
    (only,) = list(anchor)
    assert only.valid_at(1_500_000_000) and not only.valid_at(WHEN)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("example.net. IN DS 1 2 3 zz\n", 1),
        ("; fine\nexample.net. IN A 192.0.2.1\n", 2),
        ("\n\nexample.net. IN DNSKEY 257 3 13 !!!\n", 3),
        ('trust-anchors {\n  example.net. initial-key 257 3 13 "AAAA";\n  bad;\n};\n', 3),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = _write(tmp_path, "bad.anchors", text)
    with pytest.raises(TrustAnchorError) as raised:
        load_anchors([path])
    assert raised.value.source == path
    assert raised.value.line == line
    assert f"{path}:{line}" in str(raised.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(TrustAnchorError):
        load_anchors([str(tmp_path / "nope")])
    with pytest.raises(TrustAnchorError):
        load_anchors([_write(tmp_path, "empty", "; nothing\n")])
    with pytest.raises(TrustAnchorError):
        load_anchors([_write(tmp_path, "x.xml", "<?xml version='1.0'?><TrustAnchor>")])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_raises_anything_but_trust_anchor_error(text: str) -> None:
    try:
        parse_anchor_text(text, "fuzz")
    except TrustAnchorError:
        pass


@pytest.mark.parametrize("length", [31, 33, 0])
def test_ds_digest_length_misfit_is_kept_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    length: int,
) -> None:
    # Issue 12 class 7: a SHA-256 DS of 31 or 33 bytes is not a reason to abort the run.
    monkeypatch.setattr(logging.getLogger("auditor"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="auditor")
    record = f"example.net. IN DS 55648 13 2 {'ab' * length}"
    path = _write(tmp_path, "short.ds", f"; comment\n{record}\n")
    (anchor,) = [a for a in load_anchors([path]) if a.zone == dns.name.from_text("example.net.")]
    assert anchor.ds is not None and len(anchor.ds.digest) == length
    assert anchor.source == f"{path}:2"
    assert f"{length} bytes does not fit digest type 2" in anchor.problem
    assert anchor.problem in anchor.describe()
    assert [r for r in caplog.records if r.levelno == logging.WARNING
            and f"{path}:2" in r.getMessage() and "matches no key" in r.getMessage()]


def test_ds_digest_length_misfit_in_a_bind_clause() -> None:
    text = f'trust-anchors {{\n  example.net. static-ds 55648 13 2 "{DIGEST[:-2]}";\n}};\n'
    (anchor,) = parse_anchor_text(text, "named.conf")
    assert anchor.source == "named.conf:2" and anchor.problem


def test_well_formed_ds_anchor_has_no_problem() -> None:
    # The negative twin: the right length parses as before, nothing to report.
    (anchor,) = parse_anchor_text(f"example.net. IN DS 55648 13 2 {DIGEST}\n", "good.ds")
    assert anchor.problem == "" and "does not fit" not in anchor.describe()
    assert load_anchors([]).problems == ()


@pytest.mark.parametrize("text", [
    "example.net. IN DS 55648 13 2 zz\n",  # not hex: not a record
    "example.net. IN DS 55648 13\n",  # no digest type
    "example.net. IN DS not a record\n",
])
def test_other_malformed_ds_lines_stay_errors(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "bad.ds", text)
    with pytest.raises(TrustAnchorError) as raised:
        load_anchors([path])
    assert raised.value.line == 1

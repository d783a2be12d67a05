"""A trust anchor whose DS digest length does not fit its digest type (issue 12, class 7):
kept as an anchor that matches no key, so its zone is bogus with trust_anchor_mismatch and
the cause named, as a validator holding that anchor would say; the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

import dns.name
from click.testing import CliRunner

from auditor.cli import cli
from auditor.findings import ValidationCode as C
from auditor.trust import KeyView, load_anchors
from auditor.validate import RFC8624, Status, Validator, Verdict
from tests.validate.signing import WHEN, Lab, respond

NS = 1_000_000_000
SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample-dnssec.pcap"


def _anchor_file(tmp_path: Path, lab: Lab, *, trim: int = 0, extra: int = 0,
                 keep_good: bool = False) -> str:
    """The lab root's DS anchor with its SHA-256 digest cut by ``trim`` bytes or grown by
    ``extra`` bytes (and the correct anchor after it when ``keep_good``)."""
    good = lab.root.anchor_text().strip()
    owner_class_type, digest = good.rsplit(" ", 1)
    digest = digest[: len(digest) - 2 * trim] + "00" * extra
    lines = ["; lab root", f"{owner_class_type} {digest}"] + ([good] if keep_good else [])
    path = tmp_path / "root.ds"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _judge(lab: Lab, anchor_file: str) -> tuple[Validator, Verdict]:
    validator = Validator(KeyView(load_anchors([anchor_file]), lab.material()), RFC8624,
                          at_ns=WHEN * NS)
    return validator, validator.judge(respond("www.example.test.", "A", lab.signed_a()))


def test_short_digest_anchor_makes_the_zone_bogus_and_names_the_cause(tmp_path: Path) -> None:
    lab = Lab()
    path = _anchor_file(tmp_path, lab, trim=1)
    validator, verdict = _judge(lab, path)
    root = validator.zone_trust(dns.name.root)
    assert root.status is Status.BOGUS
    assert C.TRUST_ANCHOR_MISMATCH in root.codes
    text = " ".join(root.detail)
    assert f"{path}:2" in text and "31 bytes does not fit digest type 2" in text
    assert "correct the anchor" in text and "pass it with --trust-anchor" not in text
    assert verdict.status is Status.BOGUS
    assert C.TRUST_ANCHOR_MISMATCH in verdict.codes


def test_long_digest_anchor_is_bogus_too(tmp_path: Path) -> None:
    lab = Lab()
    _validator, verdict = _judge(lab, _anchor_file(tmp_path, lab, extra=1))
    assert verdict.status is Status.BOGUS


def test_correct_anchor_is_secure(tmp_path: Path) -> None:
    # The negative twin: the same file with the digest intact.
    lab = Lab()
    _validator, verdict = _judge(lab, _anchor_file(tmp_path, lab))
    assert verdict.status is Status.SECURE


def test_a_good_anchor_beside_the_misfit_still_validates(tmp_path: Path) -> None:
    # A validator with two anchors for a zone uses the one that matches.
    lab = Lab()
    _validator, verdict = _judge(lab, _anchor_file(tmp_path, lab, trim=1, keep_good=True))
    assert verdict.status is Status.SECURE


def test_audit_goes_on_with_a_misfit_anchor(tmp_path: Path) -> None:
    # Not exit 3: the run completes, stderr names file and line, stats.json records it.
    lab = Lab()
    path = _anchor_file(tmp_path, lab, trim=1)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--trust-anchor", path,
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{path}:2" in result.output and "matches no key" in result.output
    stats = json.loads((out / "stats.json").read_text())
    assert any("31 bytes does not fit" in text for text in _strings(stats))


def test_audit_still_stops_on_a_line_that_is_no_record(tmp_path: Path) -> None:
    lab = Lab()
    path = tmp_path / "bad.ds"
    path.write_text(lab.root.anchor_text() + ". IN DS not a record\n")
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--trust-anchor", str(path),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 3
    assert f"{path}:2" in result.output


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []

"""Our own failure on one message or response is contained the same way by the file driver
(two passes and standard input) as by the live driver: counted, reported as a
``decoder_error`` anomaly naming its frame, and every other response still written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from auditor.findings.validation import ValidationFindings
from auditor.pipeline import AuditOptions, run_audit
from auditor.transactions import Matcher
from auditor.validate import Validator

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample-dnssec.pcap"
ANCHOR = SAMPLE.with_suffix(".anchor")


def _audit(tmp_path: Path, name: str, capture: str) -> tuple[list[dict], list[dict]]:
    out = tmp_path / name
    run_audit(AuditOptions(captures=(capture,), out_dir=out, trust_anchors=(str(ANCHOR),),
                           report_formats=frozenset()))
    read = [[json.loads(line) for line in (out / f).read_text().splitlines()]
            for f in ("responses.jsonl", "findings.jsonl")]
    return read[0], read[1]


def _errors(findings: list[dict]) -> list[dict]:
    return [f for f in findings if f.get("code") == "decoder_error"]


@pytest.fixture
def clean(tmp_path: Path) -> list[dict]:
    return _audit(tmp_path, "clean", str(SAMPLE))[0]


def _stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(open(SAMPLE, "rb")))  # noqa: SIM115


@pytest.mark.parametrize("single_pass", [False, True], ids=["two_pass", "stdin"])
def test_a_failing_judgement_skips_one_response(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean: list[dict], single_pass: bool
) -> None:
    judge = Validator.judge
    failed: list[int] = []

    def exploding(self: Validator, evidence: object) -> object:
        frame = evidence.transaction.response.wire.frame  # type: ignore[attr-defined]
        if not failed or failed == [frame]:
            failed[:] = [frame]
            raise RuntimeError("boom in judging")
        return judge(self, evidence)  # type: ignore[arg-type]

    monkeypatch.setattr(Validator, "judge", exploding)
    capture = str(SAMPLE)
    if single_pass:
        _stdin(monkeypatch)
        capture = "-"
    responses, findings = _audit(tmp_path, "boom", capture)
    errors = _errors(findings)
    assert errors and all("boom in judging" in json.dumps(e) for e in errors)
    assert len(responses) == len(clean) - 1


def test_a_failing_finding_stage_and_matcher_are_contained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean: list[dict]
) -> None:
    feed, match = ValidationFindings.feed, Matcher.feed
    calls = {"feed": 0}

    def feed_exploding(self: ValidationFindings, evidence: object, verdict: object) -> object:
        calls["feed"] += 1
        if calls["feed"] == 3:
            raise RuntimeError("boom in findings")
        return feed(self, evidence, verdict)  # type: ignore[arg-type]

    def match_exploding(self: Matcher, message: object) -> object:
        if message.wire.frame == 5:  # type: ignore[attr-defined]  # in both passes
            raise RuntimeError("boom in matching")
        return match(self, message)  # type: ignore[arg-type]

    monkeypatch.setattr(ValidationFindings, "feed", feed_exploding)
    monkeypatch.setattr(Matcher, "feed", match_exploding)
    responses, findings = _audit(tmp_path, "boom", str(SAMPLE))
    text = json.dumps(_errors(findings))
    assert "boom in findings" in text and "boom in matching" in text
    assert len(clean) - 1 <= len(responses) <= len(clean)

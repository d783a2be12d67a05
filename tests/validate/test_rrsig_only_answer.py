"""An answer made only of RRSIG records (the answer to a query of type RRSIG) is not a negative
answer: it has records, none of them an RRset that a signature covers (issue 11, point 9)."""

from __future__ import annotations

import json
from pathlib import Path

from auditor.pipeline import AuditOptions, run_audit
from auditor.validate import Status
from tests.realcaps import REALCAPS, require
from tests.validate.signing import Lab, respond

DQY_RRSIG = REALCAPS / "dqy" / "rrsig.pcap"
"""dqy's test capture of a query for . RRSIG answered with two RRSIG records (NOERROR)."""



def _negative(detail: tuple[str, ...] | list[str], codes: tuple[str, ...] | list[str]) -> bool:
    """Whether a verdict was reached as a denial: 'negative answer ...' or a missing proof."""
    return (any("negative answer" in line for line in detail)
            or any(c.startswith("denial_") or c in ("nsec_missing", "no_records") for c in codes))


def test_rrsig_only_answer_is_judged_as_an_answer_not_a_denial() -> None:
    lab = Lab()
    _, signatures = lab.signed_a()
    verdict = lab.validator().judge(respond("www.example.test.", "RRSIG", [signatures]))
    # Today: bogus, nsec_missing + no_records ("no NSEC/NSEC3 record for www.example.test.").
    assert not _negative(verdict.detail, verdict.codes)
    assert verdict.status is Status.INDETERMINATE
    assert "rrsig_only_answer" in verdict.codes


def test_the_same_question_with_an_empty_answer_is_a_negative_answer() -> None:
    """Negative twin: strip the RRSIGs and the same response is a (NODATA) negative answer."""
    lab = Lab()
    verdict = lab.validator().judge(respond("www.example.test.", "RRSIG", []))
    assert _negative(verdict.detail, verdict.codes)
    assert verdict.status is Status.BOGUS  # a signed zone's denial without NSEC/NSEC3


def test_dqy_rrsig_capture_is_not_a_negative_answer(tmp_path: Path) -> None:
    require(DQY_RRSIG)
    run_audit(AuditOptions(captures=(str(DQY_RRSIG),), out_dir=tmp_path,
                           report_formats=frozenset()))
    (record,) = [json.loads(line)
                 for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    assert record["qtype"] == "RRSIG" and record["answer_count"] == 2
    # Today: "negative answer from indeterminate zone .", no_records.
    assert not _negative(record["detail"], record["codes"])

"""NOTIFY and UPDATE responses (opcode other than QUERY) are written to responses.jsonl as
indeterminate ``not_a_query_answer``, counted in stats.json, and never reach a forgery
heuristic; the same message with opcode QUERY is judged as an answer again (the twin)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.capture.frame import Frame
from auditor.pipeline import AuditOptions, run_audit
from tests.forgery.realcaps import REALCAPS, detect, realcap
from tests.realcaps import require

_NOT_QUERY = {
    # UPDATE requests and their REFUSED/NOERROR answers (prerequisites in "answer")
    "zeek/dns__dynamic-update.pcap": 2,
    # one NOTIFY answer among ordinary queries and answers
    "zeek/dns__dns_notify2.pcap": 1,
    "suricata-verify/dns-opcode__dns-notify.pcap": 1,
}


def _audit(tmp_path: Path, capture: Path) -> tuple[list[dict[str, object]], dict[str, object],
                                                      list[dict[str, object]]]:
    out = tmp_path / "out"
    run_audit(AuditOptions(captures=(str(capture),), out_dir=out, report_formats=frozenset(),
                           keys_path=tmp_path / "keys.sqlite"))
    responses = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    found = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    return responses, json.loads((out / "stats.json").read_text()), found


@pytest.mark.parametrize("relative", sorted(_NOT_QUERY))
def test_real_notify_and_update_answers_are_accounted_for_not_judged(
    tmp_path: Path, relative: str
) -> None:
    path = REALCAPS / relative
    require(path)
    responses, stats, found = _audit(tmp_path, path)
    others = [r for r in responses if "not_a_query_answer" in r["codes"]]  # type: ignore[operator]
    assert len(others) == _NOT_QUERY[relative]
    for record in others:
        assert record["verdict"] == "indeterminate" and record["rrsets"] == []
    forgery = stats["forgery"]
    assert isinstance(forgery, dict)
    assert forgery["not_a_query_answer"] == _NOT_QUERY[relative]
    assert stats["responses_written"] == len(responses)  # every response is accounted for
    cited = {frame for f in found if f.get("kind") == "finding"
             for frame in f["frames"]}  # type: ignore[attr-defined]
    assert not any(record["frame"] in cited for record in others)


def _as_query(frame: Frame) -> Frame:
    """The NOTIFY answer of dns-opcode__dns-notify.pcap with opcode QUERY (flags 0xA4 0x00,
    QR, opcode 4 and AA, become 0x84 0x00: QR and AA kept)."""
    header = frame.data.index(bytes.fromhex("9668a400"))
    data = frame.data[:header + 2] + bytes.fromhex("8000") + frame.data[header + 4:]
    return Frame(frame.capture, frame.number, frame.ts_ns, frame.linktype, data, frame.wirelen,
                 frame.interface, frame.interface_name)


def test_real_notify_answer_reaches_no_heuristic_but_a_query_answer_does() -> None:
    frames = realcap("suricata-verify/dns-opcode__dns-notify.pcap")
    detector, found = detect(frames)
    assert found == []
    counters = detector.counters()
    assert counters["not_a_query_answer"] == 1 and counters["responses_checked"] == 1
    # The twin: the same answer with opcode QUERY, with its query (opcode NOTIFY) not seen
    # as a question, is an ordinary response for the heuristics (an unmatched one here).
    twin = [frames[0], _as_query(frames[1])]
    detector, _ = detect(twin)
    assert detector.counters()["not_a_query_answer"] == 0

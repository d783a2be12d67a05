"""Timely live alerts without a live interface: time windows close on the loop's timer in
capture time (no later traffic needed), answers with nothing to validate are never held, and
findings are written as they are made, merged per key with a rising count."""

from __future__ import annotations

import io
import json
from pathlib import Path

import dns.rcode

from auditor.capture.frame import Frame
from auditor.engine.judge import Judge, streaming_judge
from auditor.findings.catalogue import Finding, Provenance, make_finding
from auditor.live import NS, AlertSink, LiveAuditor, LiveLimits, LiveOptions
from auditor.pipeline import EvidenceStream
from auditor.report.alerts import FindingLog, finding_key
from auditor.report.eve import eve_alert
from auditor.trust import KeyCache, KeyMaterial, KeyView, load_anchors
from auditor.validate import RFC8624, Status, Validator
from tests.forgery.builders import CLIENT, MS, SERVER, T0_NS, Traffic, answer, query
from tests.test_live_siem import _validator

REPO = Path(__file__).resolve().parent.parent
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"


def _burst(traffic: Traffic, at_ns: int, guesses: int = 15) -> None:
    """A query from port 40000, ``guesses`` wrong-ID answers with another address within
    1.5 ms (a blind spoofer, RFC 5452 4.3), then the genuine answer 20 ms later."""
    q = query("www.example.", msg_id=1000)
    traffic.add(q, CLIENT, SERVER, 40000, 53, at_ns)
    for n in range(guesses):
        fake = answer(query("www.example.", msg_id=2000 + n), "www.example. A 6.6.6.6")
        traffic.add(fake, SERVER, CLIENT, 53, 40000, at_ns + (n + 1) * 100_000)
    traffic.add(answer(q, "www.example. A 192.0.2.1"), SERVER, CLIENT, 53, 40000,
                at_ns + 20 * MS)


class _Run:
    """A ``LiveAuditor`` fed frames at monotonic times mirroring their capture times."""

    def __init__(self, tmp_path: Path, limits: LiveLimits) -> None:
        self.alerts = io.StringIO()
        self.cache = KeyCache(str(tmp_path / "keys.sqlite"))
        options = LiveOptions(out_dir=tmp_path / "out", trust_anchors=(str(ANCHOR),),
                              limits=limits, tick_s=0.1)
        self.auditor = LiveAuditor(options, self.cache, AlertSink(self.alerts))

    def feed(self, frames: list[Frame]) -> None:
        for frame in frames:
            self.auditor.feed(frame, mono_ns=frame.ts_ns - T0_NS)

    def tick_at(self, ts_ns: int) -> list[dict]:
        """Run the timer as if capture time were ``ts_ns``; every alert so far."""
        self.auditor.tick(mono_ns=ts_ns - T0_NS)
        return [json.loads(line) for line in self.alerts.getvalue().splitlines()]

    def close(self) -> None:
        self.auditor.finish()
        self.cache.close()


def test_a_wrong_id_burst_is_alerted_by_the_timer_with_no_later_traffic(tmp_path: Path) -> None:
    traffic = Traffic()
    warm = query("warm-up.example.", msg_id=65000)
    traffic.exchange(warm, answer(warm, "warm-up.example. A 192.0.2.200"), at_ns=T0_NS,
                     port=39999)
    start = T0_NS + 30 * NS  # past the capture warm-up (forgery.ForgeryConfig)
    _burst(traffic, start)
    limits = LiveLimits()
    run = _Run(tmp_path, limits)
    try:
        run.feed(traffic.frames)
        last = traffic.frames[-1].ts_ns
        early = run.tick_at(start + limits.burst_window_ns // 2)
        assert not [a for a in early if a["code"] == "wrong_id_burst"]  # window still open
        # No frame after the genuine answer: the timer alone must close the window.
        alerts = run.tick_at(max(start + limits.burst_window_ns, start + limits.hold_ns)
                             + 150 * MS)
        [burst] = [a for a in alerts if a["code"] == "wrong_id_burst"]
        assert burst["params"]["distinct_ids"] == 15
        assert burst["id.orig_h"] == CLIENT and burst["id.orig_p"] == 40000
        assert burst["id.resp_h"] == SERVER and burst["id.resp_p"] == 53
        assert burst["community_id"].startswith("1:")
        _validator("findings-2.json").validate(burst)
        _validator("eve-1.json").validate(eve_alert(burst))
        assert last - start < limits.burst_window_ns
    finally:
        run.close()


def test_a_window_is_not_closed_before_its_capture_time_ends(tmp_path: Path) -> None:
    # The negative twin: the same burst, timer well inside the window and the hold.
    traffic = Traffic()
    warm = query("warm-up.example.", msg_id=65000)
    traffic.exchange(warm, answer(warm, "warm-up.example. A 192.0.2.200"), at_ns=T0_NS,
                     port=39999)
    start = T0_NS + 30 * NS
    _burst(traffic, start)
    run = _Run(tmp_path, LiveLimits(hold_ns=2 * NS, burst_window_ns=2 * NS))
    try:
        run.feed(traffic.frames)
        assert not [a for a in run.tick_at(start + NS) if a["code"] == "wrong_id_burst"]
        assert [a for a in run.tick_at(start + 2 * NS + 200 * MS)
                if a["code"] == "wrong_id_burst"]
    finally:
        run.close()


def _evidence(rcode: int) -> list:
    traffic = Traffic()
    q = query("www.example.", msg_id=7)
    records = () if rcode != dns.rcode.NOERROR else ("www.example. A 192.0.2.1",)
    traffic.exchange(q, answer(q, *records, rcode=rcode), at_ns=T0_NS)
    return list(EvidenceStream().run(traffic.frames))


def _judge() -> Judge:
    material = KeyMaterial()
    validator = Validator(KeyView(load_anchors([str(ANCHOR)]), material), RFC8624)
    return streaming_judge(material, validator, LiveLimits())


def test_servfail_and_refused_are_released_at_once() -> None:
    for rcode in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
        judge = _judge()
        [evidence] = _evidence(rcode)
        [(released, verdict, _)] = judge.feed(evidence)
        assert released is evidence and verdict.status is Status.INDETERMINATE
        assert judge.held == 0 and judge.counters()["not_held"] == 1
        # the verdict says there is nothing to validate, not that keys are missing
        assert verdict.missing == ("the response has no records to validate",)


def test_an_indeterminate_noerror_answer_still_waits_for_keys() -> None:
    judge = _judge()
    [evidence] = _evidence(dns.rcode.NOERROR)
    first = judge.feed(evidence)
    if first:  # the sample anchor proves nothing about example.: it must wait
        raise AssertionError(f"released at once: {first[0][1]}")
    assert judge.held == 1 and judge.counters()["not_held"] == 0


def _finding(ts_ns: int, frame: int, server: str = "192.0.2.53") -> Finding:
    return make_finding("bogus_answer", {"zone": "example.", "server": server, "reasons": "x"},
                        Provenance("eth0", (frame,), ts_ns, server, "192.0.2.10"))


def test_finding_log_writes_the_first_at_once_and_merges_repeats_per_interval() -> None:
    written: list[dict] = []
    alerted: list[dict] = []
    log = FindingLog(write=written.append, alert=alerted.append, run_id="R",
                     interval_ns=60 * NS, max_keys=10)
    for n in range(5):
        log.add(_finding(T0_NS + n * NS, n + 1), None)
    assert [r["count"] for r in written] == [1] and len(alerted) == 1
    log.add(_finding(T0_NS, 9, server="192.0.2.54"), None)  # another key: at once
    assert len(alerted) == 2 and alerted[1]["server"] == "192.0.2.54"
    log.tick(T0_NS + 30 * NS)
    assert len(written) == 2  # the interval has not passed: nothing rewritten
    log.tick(T0_NS + 61 * NS)  # no new occurrence needed: the timer reports the rising count
    assert [r["count"] for r in written] == [1, 1, 5]
    assert alerted[-1]["count"] == 5 and alerted[-1]["repeat"] is True
    assert written[-1]["key"] == written[0]["key"] == finding_key(_finding(T0_NS, 1))
    assert written[-1]["frame_refs"] == ["eth0/R/1"]
    log.add(_finding(T0_NS + 62 * NS, 7), None)
    log.flush()  # final count written, no alert at shutdown
    assert written[-1]["count"] == 6 and len(alerted) == 3


def test_finding_log_reports_an_evicted_key_before_forgetting_it() -> None:
    written: list[dict] = []
    log = FindingLog(write=written.append, alert=lambda r: None, run_id="R",
                     interval_ns=60 * NS, max_keys=1)
    log.add(_finding(T0_NS, 1), None)
    log.add(_finding(T0_NS + NS, 2), None)
    log.add(_finding(T0_NS + NS, 3, server="192.0.2.99"), None)
    assert [(r["server"], r["count"]) for r in written] == [
        ("192.0.2.53", 1), ("192.0.2.53", 2), ("192.0.2.99", 1)]
    assert log.evicted == 1 and len(log) == 1

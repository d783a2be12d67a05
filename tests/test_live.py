"""The live core without a live interface: streaming judgement, timer release of held
responses, alerts, crash containment, caps under a flood, and `live --read -` on a pipe."""

from __future__ import annotations

import io
import json
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from auditor.capture.frame import Frame, LinkType
from auditor.capture.sources import CaptureSet
from auditor.engine.judge import Judge, streaming_judge
from auditor.evidence import ResponseEvidence
from auditor.findings.catalogue import CATALOGUE
from auditor.live import (
    AlertSink,
    LiveAuditor,
    LiveLimits,
    LiveOptions,
    run_live,
)
from auditor.messages import ObservedMessage
from auditor.pipeline import EvidenceStream
from auditor.transactions import Matcher
from auditor.trust import KeyCache, KeyMaterial, KeyView, load_anchors
from auditor.validate import RFC8624, Status, Validator

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
NS = 1_000_000_000


def _sample_frames() -> list[Frame]:
    with CaptureSet([str(SAMPLE)]) as frames:
        return list(frames)


def _sample_evidence() -> list[ResponseEvidence]:
    with CaptureSet([str(SAMPLE)]) as frames:
        return list(EvidenceStream().run(frames))


def _judge(limits: LiveLimits) -> tuple[Judge, KeyMaterial]:
    material = KeyMaterial()
    validator = Validator(KeyView(load_anchors([str(ANCHOR)]), material), RFC8624)
    return streaming_judge(material, validator, limits), material


def _is_key_material(evidence: ResponseEvidence) -> bool:
    return evidence.qtype in (48, 43)  # DNSKEY, DS


def _waiting_answer(evidence: list[ResponseEvidence]) -> ResponseEvidence:
    """A signed secure answer that cannot be judged without the DNSKEY/DS responses."""
    for item in evidence:
        if _is_key_material(item) or item.qtype != 1:
            continue
        fresh, _ = _judge(LiveLimits())
        if not fresh.feed(item) and fresh.held == 1:
            return item
    raise AssertionError("the sample has no answer that waits for keys")


def test_indeterminate_response_is_released_by_the_timer_alone() -> None:
    answer = _waiting_answer(_sample_evidence())
    judge, _ = _judge(LiveLimits(hold_ns=3 * NS))
    assert judge.feed(answer) == []
    assert judge.tick(answer.ts_ns + 2 * NS) == []
    [(released, verdict, _)] = judge.tick(answer.ts_ns + 3 * NS)
    assert released is answer
    assert verdict.status is Status.INDETERMINATE and verdict.missing
    assert judge.counters()["expired_indeterminate"] == 1 and judge.held == 0


def test_held_response_is_rejudged_when_its_keys_arrive_later() -> None:
    evidence = _sample_evidence()
    answer = _waiting_answer(evidence)
    judge, material = _judge(LiveLimits(hold_ns=60 * NS))
    assert judge.feed(answer) == []
    before = material.generation
    for item in evidence:
        if _is_key_material(item):
            judge.feed(item)
    assert material.generation != before
    ready = judge.tick(answer.ts_ns + 1)
    assert [(e, v.status) for e, v, _ in ready] == [(answer, Status.SECURE)]
    assert judge.counters()["resolved_late"] == 1


def test_keys_of_unrelated_zones_do_not_rejudge_a_held_response() -> None:
    import dns.rrset

    answer = _waiting_answer(_sample_evidence())
    judge, material = _judge(LiveLimits(hold_ns=60 * NS))
    assert judge.feed(answer) == []
    key = ("257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxIL"
           "fDLUT0rAK9iUzy1L53eKGQ==")
    material.add_rrset(dns.rrset.from_text("unrelated.invalid.", 300, "IN", "DNSKEY", key),
                       None, answer.ts_ns)
    assert material.changed_zones_since(material.generation - 1) == {
        dns.name.from_text("unrelated.invalid.")}
    assert judge.tick(answer.ts_ns + 1) == []
    counters = judge.counters()
    assert counters["rejudged"] == 0 and counters["rejudge_skipped"] == 1
    # A zone at or above the answer's names does concern it: the root is above everything.
    material.add_rrset(dns.rrset.from_text(".", 300, "IN", "DNSKEY", key), None, answer.ts_ns)
    judge.tick(answer.ts_ns + 2)
    assert judge.counters()["rejudged"] == 1


def test_change_log_answers_unknown_once_it_no_longer_reaches_back() -> None:
    import dns.rrset

    from auditor.trust import material as material_module

    material = KeyMaterial()
    key = ("257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxIL"
           "fDLUT0rAK9iUzy1L53eKGQ==")
    for i in range(material_module._CHANGE_LOG + 5):
        material.add_rrset(dns.rrset.from_text(f"z{i}.example.", 300, "IN", "DNSKEY", key),
                           None, i)
    assert material.changed_zones_since(0) is None
    recent = material.changed_zones_since(material.generation - 2)
    assert recent is not None and len(recent) == 2
    assert material.changed_zones_since(material.generation) == frozenset()


def test_held_responses_are_capped_oldest_released_first() -> None:
    answer = _waiting_answer(_sample_evidence())
    size = len(answer.transaction.response.wire.wire)
    judge, _ = _judge(LiveLimits(held_responses=3, held_bytes=10 * size))
    released = [judge.feed(answer) for _ in range(5)]
    assert [len(r) for r in released] == [0, 0, 0, 1, 1]
    assert judge.held == 3 and judge.held_bytes == 3 * size
    assert judge.counters()["evicted"] == 2
    by_bytes, _ = _judge(LiveLimits(held_responses=100, held_bytes=2 * size))
    for _ in range(4):
        by_bytes.feed(answer)
    assert by_bytes.held == 2 and by_bytes.counters()["evicted"] == 2


def _run_read(tmp_path: Path, **changes: object) -> tuple[dict, list[dict], list[dict]]:
    out = tmp_path / "live"
    options = LiveOptions(out_dir=out, read=str(SAMPLE), trust_anchors=(str(ANCHOR),),
                          **changes)  # type: ignore[arg-type]
    outcome = run_live(options)
    responses = [json.loads(line) for path in sorted(out.glob("responses-*.jsonl"))
                 for line in path.read_text().splitlines()]
    findings = [json.loads(line) for path in sorted(out.glob("findings-*.jsonl"))
                for line in path.read_text().splitlines()]
    return outcome.stats, responses, findings


def test_live_read_judges_like_the_offline_two_pass_audit(tmp_path: Path) -> None:
    alerts_path = tmp_path / "alerts.jsonl"
    stats, responses, findings = _run_read(tmp_path, alerts_path=alerts_path)
    offline = tmp_path / "offline"
    subprocess.run([sys.executable, "-m", "auditor", "audit", str(SAMPLE), "--trust-anchor",
                    str(ANCHOR), "--out", str(offline), "-q"], check=True, cwd=REPO)
    reference = [json.loads(line) for line in
                 (offline / "responses.jsonl").read_text().splitlines()]

    def keyed(records: list[dict]) -> Counter:
        return Counter((r["frame"], r["verdict"], tuple(r["codes"])) for r in records)

    assert keyed(responses) == keyed(reference)
    assert stats["responses_written"] == len(responses) == len(reference)
    assert sum(stats["frames"].values()) == stats["frames_read"]
    alerts = [json.loads(line) for line in alerts_path.read_text().splitlines()]
    offline_findings = [json.loads(line) for line in
                        (offline / "findings.jsonl").read_text().splitlines()]
    # Merged per (code, zone, server) as offline: one alert per key, and the last record of
    # each key in the live findings carries the offline count.
    offline_bogus = {(f["params"]["zone"], f["server"]): f["count"] for f in offline_findings
                     if f["code"] == "bogus_answer"}
    bogus = [r for r in responses if r["verdict"] == "bogus"]
    assert sum(offline_bogus.values()) == len(bogus) > len(offline_bogus)
    bogus_alerts = [a for a in alerts if a["code"] == "bogus_answer"]
    assert sorted((a["params"]["zone"], a["server"]) for a in bogus_alerts) == sorted(
        offline_bogus)
    final = {f["key"]: f for f in findings if f.get("key")}
    assert {(f["params"]["zone"], f["server"]): f["count"] for f in final.values()
            if f["code"] == "bogus_answer"} == offline_bogus
    offline_finding = next(f for f in offline_findings if f["code"] == "bogus_answer")
    for alert in alerts:
        assert alert["code"] in CATALOGUE
        assert set(alert) > set(offline_finding)
        assert alert["verdict"] == "bogus" and alert["qname"] and alert["qtype"]
    parquet = sorted((tmp_path / "live").glob("responses-*.parquet"))
    import pandas as pd

    assert len(pd.concat(pd.read_parquet(p) for p in parquet)) == len(responses)


def test_restarted_auditor_validates_at_once_from_the_key_cache(tmp_path: Path) -> None:
    keys = tmp_path / "keys.sqlite"
    _run_read(tmp_path / "first", keys_path=keys)
    evidence = _sample_evidence()
    answer = _waiting_answer(evidence)
    with KeyCache(str(keys)) as cache:
        material = KeyMaterial()
        validator = Validator(KeyView(load_anchors([str(ANCHOR)]), material, cache), RFC8624)
        judge = streaming_judge(material, validator, LiveLimits())
        [(_, verdict, _)] = judge.feed(answer)
    assert verdict.status is Status.SECURE


def _options(tmp_path: Path, **changes: object) -> LiveOptions:
    return LiveOptions(out_dir=tmp_path / "out", trust_anchors=(str(ANCHOR),),
                       **changes)  # type: ignore[arg-type]


def test_a_crash_in_one_frame_is_counted_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = _sample_frames()
    alerts = io.StringIO()
    with KeyCache(str(tmp_path / "k.sqlite")) as cache:
        auditor = LiveAuditor(_options(tmp_path), cache, AlertSink(alerts))
        matcher_feed = Matcher.feed
        judge_feed = auditor.judge.feed

        def matcher_exploding(self: Matcher, message: ObservedMessage) -> object:
            if message.wire.frame == 20:
                raise RuntimeError("boom in matching")
            return matcher_feed(self, message)

        def judge_exploding(evidence: ResponseEvidence) -> object:
            if evidence.transaction.response.wire.frame == 31:
                raise RuntimeError("boom in judging")
            return judge_feed(evidence)

        monkeypatch.setattr(Matcher, "feed", matcher_exploding)
        monkeypatch.setattr(auditor.judge, "feed", judge_exploding)
        for frame in frames:
            auditor.feed(frame)
        outcome = auditor.finish()
    assert outcome.stats["internal_drops"]["internal_errors"] == 2
    assert outcome.stats["responses_written"] >= 61
    findings = "".join(p.read_text() for p in (tmp_path / "out").glob("findings-*.jsonl"))
    assert '"decoder_error"' in findings
    assert "boom in matching" in findings and "boom in judging" in findings


def _fragment(ident: int, ts_ns: int) -> Frame:
    """An IPv4 first fragment (MF set) of a UDP datagram to port 53 that never completes."""
    payload = struct.pack("!HHHH", 40000, 53, 1208, 0) + bytes(1000)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF,
                         0x2000, 64, 17, 0, bytes([10, 0, ident >> 16 & 255, 1]),
                         bytes([10, 0, 0, 53]))
    return _ether_frame(header + payload, ident, ts_ns)


def _syn_data(port: int, ts_ns: int) -> Frame:
    """A TCP segment to port 53 carrying half a length-prefixed DNS message (never finished)."""
    data = struct.pack("!H", 300) + bytes(100)
    tcp = struct.pack("!HHIIBBHHH", port, 53, 1000, 0, 5 << 4, 0x18, 65535, 0, 0) + data
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                         bytes([10, 1, port >> 8 & 255, port & 255]), bytes([10, 0, 0, 53]))
    return _ether_frame(header + tcp, port, ts_ns)


def _ether_frame(ip: bytes, number: int, ts_ns: int) -> Frame:
    data = bytes(6) + bytes(6) + b"\x08\x00" + ip
    return Frame("flood", number, ts_ns, int(LinkType.ETHERNET), data, len(data))


def test_flood_of_incomplete_fragments_and_streams_stays_within_caps(tmp_path: Path) -> None:
    limits = LiveLimits(fragment_sets=200, fragment_bytes=100_000, tcp_flows=300,
                        tcp_bytes=20_000)
    base = _sample_frames()[0].ts_ns
    with KeyCache(str(tmp_path / "k.sqlite")) as cache:
        auditor = LiveAuditor(_options(tmp_path, limits=limits), cache,
                              AlertSink(io.StringIO()))
        for n in range(5000):
            auditor.feed(_fragment(n, base + n * 1000))
            auditor.feed(_syn_data(1024 + n, base + n * 1000))
            state = auditor._state_sizes()
            assert state["fragment_frames_held"] <= 200
            assert state["fragment_bytes_held"] <= 100_000
            assert state["tcp_flows"] <= 300 and state["tcp_bytes_held"] <= 20_000
        for frame in _sample_frames():  # genuine traffic is still judged
            auditor.feed(frame)
        outcome = auditor.finish()
    drops = outcome.stats["internal_drops"]
    assert drops["fragment_evicted"] > 0 and drops["tcp_evicted"] > 0
    assert outcome.stats["validation"]["verdicts"]["secure"] > 30
    assert sum(outcome.stats["frames"].values()) == outcome.stats["frames_read"]


def test_live_read_stdin_streams_alerts_before_eof_and_obeys_signals(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor", "live", "--read", "-", "--trust-anchor", str(ANCHOR),
         "--out", str(out), "--stats-interval", "0.5"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(SAMPLE.read_bytes())
    process.stdin.flush()  # the pipe stays open: nothing has ended
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not lines:
        time.sleep(0.05)
    assert lines and json.loads(lines[0])["code"] == "bogus_answer"
    assert process.poll() is None
    time.sleep(1.0)
    before = set(out.glob("responses-*.jsonl"))
    process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["final"] and stats["outputs"]["responses.jsonl"]["records"] == 63
    written = sum(len(p.read_text().splitlines()) for p in out.glob("responses-*.jsonl"))
    assert written == 63 and len(before) == 1
    stderr = (process.stderr.read() if process.stderr else b"").decode()
    assert "stats: packets" in stderr
    # the set-up line at start, on SIGHUP and on SIGTERM, as tcpdump's "listening on"
    setup = (f"capturing on stream -; trust anchors {ANCHOR}; key cache {out}/keys.sqlite; "
             f"reference time capture time; policy rfc8624; hold 0.5s; outputs {out}/; "
             "alerts standard output (json); metrics off")
    lines = [line for line in stderr.splitlines() if line.endswith(setup)]
    assert [line.split(": ")[1] for line in lines] == [
        "started", "SIGHUP, outputs rotated", "stopping on SIGTERM"], stderr

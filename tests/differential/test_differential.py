"""Differential testing against Unbound: the harness's own checks and the fixed-seed CI subset.

The CI subset (``integration``, ``slow``) runs `CI_COUNT` scenarios of `CI_SEED` and fails on
a disagreement in neither list of ``expectations.toml`` and on a [[known]] entry that no
disagreement matches any more (it agrees now: remove it). Run thousands on demand with
``python -m tests.differential --seed 1 --count 2000``.
"""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import dns.dnssec
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest

from tests.differential.build import Addresses
from tests.differential.classify import Entry, Expectations, class_table, report, tally
from tests.differential.compare import (
    CAPTURE_LOST,
    SERVER_FAILURE,
    Asked,
    AuditIndex,
    Comparison,
    auditor_verdict,
)
from tests.differential.driver import run
from tests.differential.fixtures import replay
from tests.differential.generator import generate
from tests.differential.model import (
    ANCHOR_FAULTS,
    DS_FAULTS,
    FaultKind,
    OnlineMode,
    Probe,
    ProbeKind,
)
from tests.integration.agreement import run_audit
from tests.lab import skip_unless_lab
from tests.lab.online_signer import OnlineZone

CI_SEED = 20261206
CI_COUNT = 200
FIXTURES = Path(__file__).with_name("fixtures")


def test_generator_is_reproducible() -> None:
    assert generate(7, 42) == generate(7, 42)
    assert generate(7, 42) != generate(7, 43)
    assert generate(7, 42) != generate(8, 42)


def test_generator_covers_the_issue_shapes() -> None:
    scenarios = [generate(3, index) for index in range(300)]
    kinds = {fault.kind for s in scenarios for fault in s.faults}
    assert kinds == set(FaultKind)
    chains = {probe.chain for s in scenarios for probe in s.probes}
    assert {"cname>positive", "dname>positive", "wildcard", "ent", "nxdomain"} <= chains
    algorithms = {z.signing.algorithm for s in scenarios for z in s.zones if z.signing}
    assert algorithms == {1, 3, 5, 6, 7, 8, 10, 13, 14, 15, 16}
    depths = {len(s.zones[-1].name.split(".")) - len(s.top.split(".")) for s in scenarios}
    assert len(depths) >= 3
    assert any(z.signing and z.signing.nsec3 and z.signing.nsec3.opt_out
               for s in scenarios for z in s.zones)  # fmt: skip


def test_generator_covers_classes_5_6_and_7() -> None:
    scenarios = [generate(3, index) for index in range(300)]
    signings = [z.signing for s in scenarios for z in s.zones if z.signing]
    # Class 5: weak RSA keys, DSA (3, 6) and RSAMD5, signed with dnspython.
    python = {(sig.algorithm, sig.bits) for sig in signings if sig.python_signed}
    assert {(8, 512), (8, 768), (3, None), (6, None), (1, 1024)} <= python
    assert any(sig.extra_algorithm == 3 for sig in signings)  # ECDSA plus DSA
    # Class 6: every online mode, NSEC and NSEC3, each with its broken twin.
    online = {(sig.online, sig.nsec3 is not None) for sig in signings if sig.online}
    assert {(mode, False) for mode in OnlineMode} | {(OnlineMode.WHITE_LIES, True)} <= online
    twins = {f.variant for s in scenarios for f in s.faults if f.kind is FaultKind.ONLINE_BROKEN}
    assert twins == {mode.broken for mode in OnlineMode if mode.broken}
    # Class 7: misfit and wrong anchors (both kinds in the first assertion of the test above).
    anchored = [s for s in scenarios if any(f.kind in ANCHOR_FAULTS for f in s.faults)]
    assert len(anchored) >= 5
    # The new shapes come from a generator of their own: the rest of a scenario is unchanged.
    assert all(not sig.python_signed or sig.nsec3 is None for sig in signings)


def test_online_zones_are_signed_leaves_without_dnames_some_with_wildcards() -> None:
    wildcards = 0
    for scenario in (generate(3, index) for index in range(300)):
        for zone in scenario.zones:
            if zone.signing and zone.signing.online:
                assert not any(other.parent == zone.name for other in scenario.zones)
                assert not any(" DNAME " in line for line in zone.records)
                wildcards += any(line.startswith("*") for line in zone.records)
                assert {f.kind for f in scenario.faults if f.zone == zone.name} <= (
                    DS_FAULTS | ANCHOR_FAULTS | {FaultKind.ONLINE_BROKEN}
                )
    assert wildcards  # the online signer expands wildcards (RFC 4592), so they are drawn


def _comparison(unbound: str, auditor: str, codes: tuple[str, ...] = ()) -> Comparison:
    probe = Probe("www.s00000.test.", "A", ProbeKind.POSITIVE, "positive")
    return Comparison("s00000", probe, False, unbound, (), auditor, codes, "none", "alg13/nsec",
                      (), False)  # fmt: skip


def test_tally_sorts_policy_known_and_new() -> None:
    expectations = Expectations(
        policy=[Entry("p", {"unbound": "secure", "codes": "*iterations*"}, "RFC 9276")],
        known=[Entry("k", {"unbound": "insecure", "auditor": "indeterminate"}, ""),
               Entry("gone", {"unbound": "bogus", "auditor": "secure"}, "")],
    )  # fmt: skip
    result = tally([
        _comparison("secure", "secure"),
        _comparison("secure", "insecure", ("nsec3_iterations_too_high",)),
        _comparison("insecure", "indeterminate"),
        _comparison("bogus", "indeterminate"),
    ], expectations)  # fmt: skip
    assert result.agreed == 1
    assert [len(result.policy["p"]), len(result.known["k"]), len(result.new)] == [1, 1, 1]
    assert [entry.id for entry in result.stale(expectations)] == ["gone"]
    assert result.agreement == 1 / 3
    assert "bogus    indeterminate" in class_table(result.new)
    assert "known entry matching nothing (remove it?): gone" in report(result, expectations)


_T0 = 1_800_000_000.0


def _record(src: str, dst: str, qname: str, qtype: str, frames: tuple[int, int], *,
            verdict: str = "secure", rcode: str = "NOERROR", answer: tuple[str, ...] = (),
            flags: tuple[str, ...] = ("QR",)) -> dict[str, object]:  # fmt: skip
    """A responses.jsonl record: *frames* = (query frame, answer frame), 1 ms per frame."""
    stamp = datetime.datetime.fromtimestamp(_T0 + frames[1] / 1000, datetime.UTC)
    return {"src": src, "dst": dst, "qname": qname, "qtype": qtype, "query_frame": frames[0],
            "frame": frames[1], "ts": stamp.isoformat().replace("+00:00", "Z"),
            "verdict": verdict, "rcode": rcode, "flags": list(flags), "codes": [verdict],
            "rrsets": [{"section": "answer", "name": name} for name in answer]}  # fmt: skip


def _up(qname: str, qtype: str, frames: tuple[int, int], **extra: object) -> dict[str, object]:
    return _record(Addresses().server(qname.count(".")), Addresses().resolver, qname, qtype,
                   frames, **extra)  # type: ignore[arg-type]  # fmt: skip


def _servfail(upstream: list[dict[str, object]], *, answer: tuple[int, int] | None = (10, 20),
              qname: str = "host1.s1.test.") -> tuple[str, list[dict[str, object]]]:  # fmt: skip
    """The auditor's verdict for a SERVFAIL to ``qname TXT`` asked at frame 10, answered at 20."""
    addresses = Addresses()
    records = list(upstream)
    if answer is not None:
        records.append(_record(addresses.resolver, addresses.client, qname, "TXT", answer,
                               verdict="none", rcode="SERVFAIL"))  # fmt: skip
    probe = Probe(qname, "TXT", ProbeKind.POSITIVE, "positive")
    asked = Asked("s1", probe, False, "SERVFAIL", False, (), _T0 + 0.0095, _T0 + 0.0205)
    return auditor_verdict(AuditIndex.of(records, addresses), asked, "bogus", ("s1.test.",))


def test_servfail_takes_only_its_own_resolution() -> None:
    """Seed 1 s01499: the next question's bogus ``b TXT`` answer, 2 ms later, does not count."""
    verdict, records = _servfail([
        _up("host1.s1.test.", "TXT", (11, 12)),
        _up("s1.test.", "DNSKEY", (13, 14)),
        _up("other.s9.test.", "A", (15, 16), verdict="bogus"),  # off the path
        _up("b.s1.test.", "TXT", (21, 22), verdict="bogus"),  # the next question's
    ])  # fmt: skip
    assert verdict == "secure"
    assert [(r["qname"], r["qtype"]) for r in records] == [("host1.s1.test.", "TXT"),
                                                          ("s1.test.", "DNSKEY")]  # fmt: skip


def test_servfail_follows_cname_targets_and_zones_above() -> None:
    """Targets named by the answers, by the design (``aliases``), and zones above."""
    addresses = Addresses()
    records = [_up("host1.s1.test.", "TXT", (11, 12)),
               _up("t.s7.test.", "TXT", (3, 4), verdict="bogus"),  # cached, designed target
               _record(addresses.resolver, addresses.client, "host1.s1.test.", "TXT", (10, 20),
                       verdict="none", rcode="SERVFAIL")]  # fmt: skip
    probe = Probe("host1.s1.test.", "TXT", ProbeKind.CNAME, "cname>positive")
    asked = Asked("s1", probe, False, "SERVFAIL", False, (), _T0 + 0.0095, _T0 + 0.0205)
    index = AuditIndex.of(records, addresses)
    assert auditor_verdict(index, asked, "bogus", ("s1.test.",))[0] == "secure"
    assert auditor_verdict(index, asked, "bogus", ("s1.test.",), ("t.s7.test.",))[0] == "bogus"
    target = _servfail([
        _up("host1.s1.test.", "TXT", (11, 12), answer=("host1.s1.test.", "t.s2.test.")),
        _up("t.s2.test.", "TXT", (13, 14), verdict="bogus"),
    ])  # fmt: skip
    above = _servfail([_up("host1.s1.test.", "TXT", (11, 12)),
                       _up("test.", "DS", (13, 14), verdict="bogus")])  # fmt: skip
    assert (target[0], above[0]) == ("bogus", "bogus")


def test_servfail_from_cache_takes_the_latest_answers_on_its_path() -> None:
    verdict, records = _servfail([
        _up("host1.s1.test.", "TXT", (1, 2)),
        _up("host1.s1.test.", "TXT", (3, 4), verdict="bogus"),
        _up("s1.test.", "A", (5, 6), verdict="bogus"),  # above the name: only NS/DS/DNSKEY
        _up("s1.test.", "DNSKEY", (7, 8)),
        _up("b.s1.test.", "TXT", (8, 9), verdict="bogus"),  # another name of the zone
        _up("host1.s1.test.", "TXT", (21, 22)),  # after the answer
    ])  # fmt: skip
    assert verdict == "bogus"
    assert [r["query_frame"] for r in records] == [3, 7]


def test_upstream_server_failure_pairs_with_unbound_servfail() -> None:
    """BIND refusing a NODATA whose NSEC was stripped: nothing to validate, SERVFAIL agrees."""
    verdict, _ = _servfail([_up("host1.s1.test.", "TXT", (11, 12), verdict="indeterminate",
                                rcode="SERVFAIL")])  # fmt: skip
    bogus, _ = _servfail([_up("host1.s1.test.", "TXT", (11, 12), rcode="REFUSED"),
                          _up("s1.test.", "DNSKEY", (13, 14), verdict="bogus")])  # fmt: skip
    assert (verdict, bogus) == (SERVER_FAILURE, "bogus")
    assert _comparison("bogus", SERVER_FAILURE).agrees
    assert not _comparison("secure", SERVER_FAILURE).agrees
    result = tally([_comparison("bogus", SERVER_FAILURE)], Expectations([], []))
    assert (result.agreed, result.server_failures) == (1, 1)


def test_lost_capture_is_counted_apart() -> None:
    verdict, _ = _servfail([_up("host1.s1.test.", "TXT", (11, 12), verdict="bogus")],
                           answer=None)  # fmt: skip
    assert verdict == CAPTURE_LOST
    result = tally([_comparison("bogus", CAPTURE_LOST), _comparison("secure", "secure")],
                   Expectations([], []))  # fmt: skip
    assert (result.agreed, len(result.lost), len(result.new), result.total) == (1, 1, 0, 1)
    assert "capture lost, not compared: 1" in report(result, Expectations([], []))


def test_expectations_file_parses_and_every_entry_explains_itself() -> None:
    expectations = Expectations.load()
    for entry in expectations.policy:
        assert "RFC" in entry.text, entry.id
    for entry in [*expectations.policy, *expectations.known]:
        assert entry.patterns and entry.text, entry.id
    ids = [entry.id for entry in [*expectations.policy, *expectations.known]]
    assert len(ids) == len(set(ids))


@pytest.mark.integration
@pytest.mark.slow
def test_fixed_seed_subset_agrees_with_unbound(tmp_path: Path) -> None:
    skip_unless_lab()
    expectations = Expectations.load()
    summary = run(CI_SEED, CI_COUNT, batch_size=100, fixtures=tmp_path / "fixtures")
    result = tally(summary.comparisons, expectations)
    text = report(result, expectations)
    assert not summary.skipped, text + f"\nnot built: {summary.skipped}"
    assert len(result.unjudgeable) <= len(summary.comparisons) // 100, text
    assert not result.new, f"disagreements in neither list (fixtures: {tmp_path}):\n{text}"
    stale = [entry.id for entry in result.stale(expectations, ci_only=True)]
    assert not stale, f"known disagreements that agree now, remove them: {stale}\n{text}"


def _fixtures() -> list[Path]:
    return sorted(path for path in FIXTURES.glob("seed*") if path.is_dir())


def _replayed(question: dict[str, object], verdict: str) -> Comparison:
    probe = Probe(str(question["qname"]), str(question["qtype"]),
                  ProbeKind(str(question["kind"])), str(question["chain"]))  # fmt: skip
    return Comparison("", probe, bool(question["cd"]), str(question["unbound"]),
                      tuple(question["ede"]), verdict, tuple(question["codes"]),  # type: ignore[arg-type]
                      str(question["faults"]), str(question["shapes"]), (), False)  # fmt: skip


@pytest.mark.parametrize("fixture", _fixtures(), ids=lambda path: path.name)
def test_fixture_replay(fixture: Path, tmp_path: Path) -> None:
    """Re-audit a fixture: every question agrees with Unbound or matches a listed entry.

    Removing a [[known]] entry (its fix landed) turns its fixtures into strict regressions.
    """
    expectations = Expectations.load()
    entries = [*expectations.policy, *expectations.known]
    wrong = [
        f"{q['qname']}/{q['qtype']}{' +cd' if q['cd'] else ''}: Unbound {q['unbound']}, "
        f"auditor {verdict} (when written: {q['auditor_when_written']}, {q['state']})"
        for q, verdict in replay(fixture, tmp_path / "audit")
        if not _replayed(q, verdict).agrees
        and not any(entry.matches(_replayed(q, verdict)) for entry in entries)
    ]
    assert not wrong, "\n".join(wrong)


def _denial(zone: OnlineZone, qname: str) -> dns.message.Message:
    return zone.answer(dns.message.make_query(qname, "A", want_dnssec=True))


def _covers(nsec: dns.rrset.RRset, name: dns.name.Name) -> bool:
    return bool(nsec.name < name < nsec[0].next)


def _online(mode: str, *, nsec3: bool = False) -> OnlineZone:
    return OnlineZone(dns.name.from_text("z.test."), "127.0.0.1", nsec3=nsec3, mode=mode,
                      records=("www A 192.0.2.1", "deep.er TXT \"x\""))  # fmt: skip


@pytest.mark.parametrize("mode", ["wl", "wlbad"])
def test_online_white_lies_deny_below_the_closest_encloser(mode: str) -> None:
    # nope.www.z.test.: the closest encloser is www (RFC 5155 1.3), so the wildcard denied is
    # *.www and the span covers the next closer name; the broken twin misses it.
    response = _denial(_online(mode), "nope.www.z.test.")
    nsecs = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC]
    qname, wildcard = (dns.name.from_text(n) for n in ("nope.www.z.test.", "*.www.z.test."))
    assert any(_covers(nsec, wildcard) for nsec in nsecs)
    assert any(_covers(nsec, qname) for nsec in nsecs) is (mode == "wl")


def test_online_nsec3_white_lies_match_the_closest_encloser() -> None:
    zone = _online("wl", nsec3=True)
    response = _denial(zone, "a.b.er.z.test.")  # closest encloser: the empty non-terminal er
    owners = {r.name.labels[0].decode().upper() for r in response.authority
              if r.rdtype == dns.rdatatype.NSEC3}  # fmt: skip
    encloser = dns.dnssec.nsec3_hash(dns.name.from_text("er.z.test."), None, 0, 1)
    assert encloser in owners
    assert response.rcode() == dns.rcode.NXDOMAIN


def test_online_black_lie_is_owned_by_the_name() -> None:
    response = _denial(_online("bl"), "nope.www.z.test.")
    (nsec,) = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC]
    assert nsec.name == dns.name.from_text("nope.www.z.test.")
    assert "NXNAME" in nsec[0].to_text() and response.rcode() == dns.rcode.NOERROR


def test_online_signer_follows_cnames_inside_its_zone() -> None:
    # RFC 1034 4.3.2: the target's denial travels with the CNAME (Unbound otherwise takes the
    # answer for a NODATA of the target without proof: bogus, seed 1 s01258).
    zone = OnlineZone(dns.name.from_text("z.test."), "127.0.0.1", mode="wl",
                      records=("cn0 CNAME nx4.z.test.", "cn1 CNAME out.other.test."))  # fmt: skip
    inside = _denial(zone, "cn0.z.test.")
    assert inside.rcode() == dns.rcode.NXDOMAIN
    assert any(r.rdtype == dns.rdatatype.NSEC for r in inside.authority)
    outside = _denial(zone, "cn1.z.test.")
    assert outside.rcode() == dns.rcode.NOERROR and not outside.authority


def _wild(mode: str, *, nsec3: bool = False) -> OnlineZone:
    return OnlineZone(dns.name.from_text("z.test."), "127.0.0.1", nsec3=nsec3, mode=mode,
                      records=("www A 192.0.2.1", "* TXT \"w\"", "*.wild A 192.0.2.9",
                               "cn CNAME x.wild.z.test."))  # fmt: skip


def _sigs(response: dns.message.Message, rdtype: int) -> list[dns.rdata.Rdata]:
    return [sig for rrset in response.answer if rrset.rdtype == dns.rdatatype.RRSIG
            and rrset.covers == rdtype for sig in rrset]  # fmt: skip


@pytest.mark.parametrize("nsec3", [False, True])
@pytest.mark.parametrize("mode", ["wl", "wlbad"])
def test_online_wildcard_answer_carries_the_wildcard_labels_and_the_closer_proof(
    mode: str, nsec3: bool
) -> None:
    # RFC 4035 5.3.4 / RFC 5155 7.2.6: the RRSIG's labels field names the wildcard, and a span
    # covers the next closer name (a.wild... -> next closer "a.wild" below the encloser
    # "wild"); the broken twin's span misses it.
    zone = _wild(mode, nsec3=nsec3)
    response = zone.answer(dns.message.make_query("a.b.wild.z.test.", "A", want_dnssec=True))
    assert response.rcode() == dns.rcode.NOERROR
    (sig,) = _sigs(response, dns.rdatatype.A)
    assert sig.labels == 3  # *.wild.z.test.
    assert response.answer[0].name == dns.name.from_text("a.b.wild.z.test.")
    closer = dns.name.from_text("b.wild.z.test.")
    if nsec3:
        digest = zone.digest(closer)
        spans = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC3]
        owner = int.from_bytes(base64.b32hexdecode(spans[0].name.labels[0].upper()), "big")
        assert (owner < digest < owner + 2) is (mode == "wl")
    else:
        nsecs = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC]
        assert len(nsecs) == 1 and _covers(nsecs[0], closer) is (mode == "wl")


def test_online_wildcard_nodata_and_compact_expansion() -> None:
    proper = _wild("wl").answer(dns.message.make_query("q.z.test.", "MX", want_dnssec=True))
    owners = {r.name.to_text() for r in proper.authority if r.rdtype == dns.rdatatype.NSEC}
    assert "*.z.test." in owners and proper.rcode() == dns.rcode.NOERROR and not proper.answer
    compact = _wild("bl").answer(dns.message.make_query("q.z.test.", "TXT", want_dnssec=True))
    (sig,) = _sigs(compact, dns.rdatatype.TXT)
    assert sig.labels == 3 and not compact.authority  # signed as q.z.test. itself
    chased = _wild("wl").answer(dns.message.make_query("cn.z.test.", "A", want_dnssec=True))
    assert [r.rdtype for r in chased.answer if r.rdtype != dns.rdatatype.RRSIG] == [
        dns.rdatatype.CNAME, dns.rdatatype.A]


def test_unbounds_servfail_on_white_lies_behind_a_cname_is_explained(tmp_path: Path) -> None:
    # The policy difference cname-into-white-lies-unbound-bogus, captured from a real Unbound:
    # its SERVFAIL to the client is explained as the shape it rejects, not left unexplained.
    fixture = FIXTURES / "seed1-s01258"
    audit = run_audit(fixture / "capture.pcap", tmp_path / "audit", fixture / "root.ds")
    failed = [r["resolution"] for r in audit.records
              if r["qname"] == "cn0.s01258.test." and r["rcode"] == "SERVFAIL"]
    assert failed and {f["cause"] for f in failed} == {"validator_interop"}
    assert all("\\000.*.s01258.test." in f["explanation"] for f in failed)

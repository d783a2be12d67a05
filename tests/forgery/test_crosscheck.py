"""Cross-checks against validated copies: only while the copy was valid (its TTL from when it
was seen, its signature window) at the time of the unvalidated response; truncated answers
assert nothing; out-of-zone additional addresses are suspicious only when they contradict a
validated copy."""

from __future__ import annotations

import time

import dns.flags

from auditor.evidence import ResponseEvidence
from auditor.findings.catalogue import Severity
from auditor.findings.codes import ValidationCode
from auditor.validate.verdict import RRsetVerdict, Status, Verdict
from tests.forgery.builders import (
    CLIENT,
    MS,
    RESOLVER,
    SERVER,
    T0_NS,
    Traffic,
    answer,
    codes,
    query,
    run,
)

S = 1_000_000_000
YEAR_S = 365 * 86400
T0_S = T0_NS // S


def _sig(owner: str, rdtype: str = "A", *, inception_s: int = T0_S - 86400,
         expiration_s: int = T0_S + 30 * 86400, original_ttl: int = 300) -> str:
    stamp = "%Y%m%d%H%M%S"
    return (f"{owner} RRSIG {rdtype} 13 2 {original_ttl} "
            f"{time.strftime(stamp, time.gmtime(expiration_s))} "
            f"{time.strftime(stamp, time.gmtime(inception_s))} 12345 example. " + "A" * 88)


def _judge(evidence: ResponseEvidence) -> Verdict:
    """Signed RRsets validate (with their RRSIG's window); unsigned ones are not judged."""
    rrsets = []
    for item in evidence.rrsets:
        if item.rrsigs is not None:
            sig = item.rrsigs[0]
            rrsets.append(RRsetVerdict(item.section, item.name.to_text(), item.rdtype.name,
                                       Status.SECURE, "example.", (12345,), (13,), (),
                                       int(sig.inception), int(sig.expiration), ()))
        else:
            rrsets.append(RRsetVerdict(item.section, item.name.to_text(), item.rdtype.name,
                                       Status.INDETERMINATE, None, (), (),
                                       (ValidationCode.UNSIGNED_NOT_CROSS_CHECKED,), None,
                                       None, ()))
    secure = rrsets and all(r.status is Status.SECURE for r in rrsets
                            if r.section.value == "answer")
    return Verdict(Status.SECURE if secure else Status.INDETERMINATE, (), None, tuple(rrsets),
                   (), evidence.ts_ns, ())


def _validated_then_client(client_records: list[str], *, gap_ns: int = 5 * MS,
                           client_ttl: int = 300, client_flags: int = dns.flags.RA,
                           **sig: int) -> Traffic:
    traffic = Traffic()
    upstream = query("www.example.", msg_id=1, do=True, flags=0)
    traffic.exchange(upstream, answer(upstream, "www.example. A 192.0.2.1",
                                      _sig("www.example.", **sig), flags=dns.flags.AA),
                     at_ns=T0_NS, client=RESOLVER, server=SERVER, port=50001)
    q = query("www.example.", msg_id=2)
    traffic.exchange(q, answer(q, *client_records, flags=client_flags, ttl=client_ttl),
                     at_ns=T0_NS + gap_ns, client=CLIENT, server=RESOLVER, port=50002,
                     rtt_ns=MS)
    return traffic


def test_contradiction_inside_the_validated_copy_window_is_forged() -> None:
    found = run(_validated_then_client(["www.example. A 6.6.6.6"]), _judge)
    assert codes(found) == ["contradicts_validated"]
    assert found[0].verdict == "forged"


def test_a_rotating_subset_of_a_validated_rrset_is_not_a_contradiction() -> None:
    # A load balancer or CDN hands out subsets of its addresses: sharing a record with the
    # validated copy is rotation, not forgery (the disjoint twin above is forged).
    rotated = _validated_then_client(["www.example. A 192.0.2.1", "www.example. A 192.0.2.2"])
    assert run(rotated, _judge) == []


def test_a_copy_from_years_earlier_proves_nothing() -> None:
    # Twin of the test above: the same contradiction three years after the copy was seen
    # (and with a long TTL on the unsigned answer, which must not stretch the comparison).
    later = _validated_then_client(["www.example. A 6.6.6.6"], gap_ns=3 * YEAR_S * S,
                                   client_ttl=86400)
    assert run(later, _judge) == []


def test_a_copy_past_its_ttl_proves_nothing() -> None:
    expired = _validated_then_client(["www.example. A 6.6.6.6"], gap_ns=400 * S)
    assert run(expired, _judge) == []


def test_the_rrsig_original_ttl_bounds_the_copy_window() -> None:
    # RFC 4035 5.3.3: the received TTL (300) is capped by the RRSIG's original TTL (60).
    capped = _validated_then_client(["www.example. A 6.6.6.6"], gap_ns=120 * S,
                                    original_ttl=60)
    assert run(capped, _judge) == []
    inside = _validated_then_client(["www.example. A 6.6.6.6"], gap_ns=30 * S,
                                    original_ttl=60)
    assert codes(run(inside, _judge)) == ["contradicts_validated"]


def test_a_copy_past_its_signature_expiration_proves_nothing() -> None:
    # The copy's TTL (300 s) still runs, but its signature expired 10 s after it was seen.
    expired_sig = _validated_then_client(["www.example. A 6.6.6.6"], gap_ns=60 * S,
                                         expiration_s=T0_S + 10)
    assert run(expired_sig, _judge) == []
    valid_sig = _validated_then_client(["www.example. A 6.6.6.6"], gap_ns=60 * S,
                                       expiration_s=T0_S + 120)
    assert codes(run(valid_sig, _judge)) == ["contradicts_validated"]


def test_truncated_answers_assert_nothing() -> None:
    truncated = _validated_then_client(["www.example. A 6.6.6.6"],
                                       client_flags=dns.flags.RA | dns.flags.TC)
    assert run(truncated, _judge) == []


# --- additional data against validated copies ----------------------------------------------


def _validated_ns_then_referral(*additional: str, flags: int = dns.flags.AA,
                                gap_ns: int = 5 * MS) -> Traffic:
    traffic = Traffic()
    upstream = query("ns.dns-host.test.", msg_id=1, do=True, flags=0)
    traffic.exchange(upstream, answer(upstream, "ns.dns-host.test. A 203.0.113.53",
                                      _sig("ns.dns-host.test."), flags=dns.flags.AA),
                     at_ns=T0_NS, client=RESOLVER, server=SERVER, port=51001)
    q = query("www.example.", msg_id=2, flags=0)
    traffic.exchange(q, answer(q, "www.example. A 192.0.2.1",
                               authority=["example. NS ns.dns-host.test."],
                               additional=list(additional), flags=flags),
                     at_ns=T0_NS + gap_ns, client=RESOLVER, server="192.0.2.99", port=51002)
    return traffic


def test_out_of_zone_additional_contradicting_validated_data_is_suspicious() -> None:
    found = run(_validated_ns_then_referral("ns.dns-host.test. A 6.6.6.6"), _judge)
    assert codes(found) == ["additional_contradicts_validated"]
    assert found[0].verdict == "suspicious" and found[0].severity is Severity.MEDIUM
    assert found[0].params["bailiwick"] == "example."
    assert found[0].params["validated_frame"] == 2


def test_out_of_zone_additional_agreeing_or_overlapping_or_late_is_normal() -> None:
    assert run(_validated_ns_then_referral("ns.dns-host.test. A 203.0.113.53"), _judge) == []
    # sharing an address: renumbering or rotation, not injection
    assert run(_validated_ns_then_referral("ns.dns-host.test. A 203.0.113.53",
                                           "ns.dns-host.test. A 198.51.100.1"), _judge) == []
    assert run(_validated_ns_then_referral("ns.dns-host.test. AAAA 2001:db8::53"), _judge) == []
    assert run(_validated_ns_then_referral("ns.dns-host.test. A 6.6.6.6", gap_ns=400 * S),
               _judge) == []
    # a recursive resolver's glue from its cache: no zone to be out of
    assert run(_validated_ns_then_referral("ns.dns-host.test. A 6.6.6.6", flags=dns.flags.RA),
               _judge) == []

"""Forgery signals on synthetic traffic decoded by the real pipeline, with chosen verdicts."""

from __future__ import annotations

from collections.abc import Callable

import dns.flags
import dns.rcode
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.capture.frame import Frame, LinkType
from auditor.evidence import ResponseEvidence, Section
from auditor.findings.codes import ValidationCode
from auditor.forgery import ForgeryConfig, ForgeryDetector
from auditor.pipeline import EvidenceStream
from auditor.validate.verdict import Status, Verdict
from tests.forgery.builders import (
    CLIENT,
    MS,
    OTHER_SERVER,
    RESOLVER,
    SERVER,
    T0_NS,
    Traffic,
    answer,
    by_code,
    codes,
    query,
    run,
    run_counting,
    verdict,
    warm_up,
)


def _signed_world(evidence: ResponseEvidence) -> Verdict:
    """Answers carrying RRSIGs validate; unsigned answers with DO are bogus (stripped)."""
    answers = evidence.section(Section.ANSWER)
    if answers and all(item.rrsigs is not None for item in answers):
        return verdict(evidence, Status.SECURE)
    if evidence.query_do:
        return verdict(evidence, Status.BOGUS,
                       (ValidationCode.RRSIGS_MISSING, ValidationCode.DNSSEC_BOGUS))
    return verdict(evidence, Status.INDETERMINATE, (ValidationCode.UNSIGNED_NOT_CROSS_CHECKED,))


_SIG = ("www.example. RRSIG A 13 2 300 20240101000000 20230101000000 12345 example. "
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")


# --- races ---------------------------------------------------------------------------------


def test_unsigned_race_is_suspicious_and_names_both_answers() -> None:
    traffic = Traffic()
    q = query("www.example.", msg_id=7)
    traffic.add(q, CLIENT, SERVER, 40000, 53, T0_NS)
    forged = traffic.add(answer(q, "www.example. A 6.6.6.6"), SERVER, CLIENT, 53, 40000,
                         T0_NS + 1 * MS)
    genuine = traffic.add(answer(q, "www.example. A 192.0.2.1"), SERVER, CLIENT, 53, 40000,
                          T0_NS + 20 * MS)
    found = run(traffic)
    races = by_code(found, "response_race")
    assert len(races) == 1
    race = races[0]
    assert race.verdict == "suspicious"
    assert race.params["first_frame"] == forged
    assert race.params["validating"] == "none"
    assert race.params["suspect_frames"] == []  # the race cannot tell which one is forged
    assert race.params["conflicting_frames"] == [forged, genuine]
    assert set(race.provenance.frames) == {1, forged, genuine}


def test_signed_race_is_forged_and_blames_the_unvalidated_answer() -> None:
    traffic = Traffic()
    q = query("www.example.", msg_id=9, do=True)
    traffic.add(q, CLIENT, SERVER, 40000, 53, T0_NS)
    forged = traffic.add(answer(q, "www.example. A 6.6.6.6"), SERVER, CLIENT, 53, 40000,
                         T0_NS + 1 * MS)
    genuine = traffic.add(answer(q, "www.example. A 192.0.2.1", _SIG), SERVER, CLIENT, 53,
                          40000, T0_NS + 20 * MS)
    found = run(traffic, _signed_world)
    race = by_code(found, "response_race")[0]
    assert race.verdict == "forged"
    assert race.params["suspect_frames"] == [forged]
    assert race.params["validating"] == f"frame {genuine}"
    assert by_code(found, "rrsigs_stripped")[0].provenance.frames[-1] == forged


def test_identical_and_ttl_decayed_repeats_are_retransmissions() -> None:
    traffic = Traffic()
    q = query("www.example.", msg_id=3)
    traffic.add(q, CLIENT, SERVER, 40000, 53, T0_NS)
    traffic.add(answer(q, "www.example. A 192.0.2.1", "www.example. A 192.0.2.2"), SERVER,
                CLIENT, 53, 40000, T0_NS + 20 * MS)
    traffic.add(answer(q, "www.example. A 192.0.2.2", "www.example. A 192.0.2.1", ttl=299),
                SERVER, CLIENT, 53, 40000, T0_NS + 1020 * MS)
    traffic.add(answer(q, "www.example. A 192.0.2.1", "www.example. A 192.0.2.2"), SERVER,
                CLIENT, 53, 40000, T0_NS + 1030 * MS)
    assert run(traffic) == []


def test_same_answer_with_other_dnssec_bits_is_flags_altered() -> None:
    traffic = Traffic()
    q = query("www.example.", msg_id=4, do=True)
    traffic.add(q, CLIENT, RESOLVER, 40000, 53, T0_NS)
    r = answer(q, "www.example. A 192.0.2.1", flags=dns.flags.RA | dns.flags.AD)
    traffic.add(r, RESOLVER, CLIENT, 53, 40000, T0_NS + 2 * MS)
    stripped = answer(q, "www.example. A 192.0.2.1", flags=dns.flags.RA)
    traffic.add(stripped, RESOLVER, CLIENT, 53, 40000, T0_NS + 3 * MS)
    found = by_code(run(traffic), "flags_altered")
    assert len(found) == 1
    assert "AD set -> clear" in found[0].message


def test_query_copies_with_different_do_bit_are_flags_altered() -> None:
    traffic = Traffic()
    traffic.add(query("www.example.", msg_id=5, do=True), CLIENT, RESOLVER, 40000, 53, T0_NS)
    traffic.add(query("www.example.", msg_id=5, do=False), CLIENT, RESOLVER, 40000, 53,
                T0_NS + 1 * MS)
    traffic.add(answer(query("www.example.", msg_id=5), "www.example. A 192.0.2.1"),
                RESOLVER, CLIENT, 53, 40000, T0_NS + 5 * MS)
    found = by_code(run(traffic), "flags_altered")
    assert [f.params["kind"] for f in found] == ["query"]
    assert "DO set -> clear" in found[0].message


def test_query_retried_with_other_do_bit_after_a_timeout_is_the_clients_retry() -> None:
    # Negative twin of the test above: the second copy comes a retry timeout later (EDNS
    # fallback, RFC 6891 6.2.2), which a middlebox's rewritten copy never does.
    traffic = Traffic()
    traffic.add(query("www.example.", msg_id=5, do=True), CLIENT, RESOLVER, 40000, 53, T0_NS)
    traffic.add(query("www.example.", msg_id=5, do=False), CLIENT, RESOLVER, 40000, 53,
                T0_NS + 800 * MS)
    traffic.add(answer(query("www.example.", msg_id=5), "www.example. A 192.0.2.1"),
                RESOLVER, CLIENT, 53, 40000, T0_NS + 805 * MS)
    found, counters = run_counting(traffic)
    assert by_code(found, "flags_altered") == []
    assert counters["queries_retried_with_other_bits"] == 1


def test_each_copy_of_a_retried_query_may_get_its_own_bits() -> None:
    # Negative twin of test_same_answer_with_other_dnssec_bits_is_flags_altered: the client
    # sent the query twice, and each copy got an answer (one with AD, one without, as two
    # anycast instances of a resolver may give); two bit patterns for two copies.
    traffic = Traffic()
    q = query("www.example.", msg_id=4, do=True)
    traffic.add(q, CLIENT, RESOLVER, 40000, 53, T0_NS)
    traffic.add(q, CLIENT, RESOLVER, 40000, 53, T0_NS + 1000 * MS)
    traffic.add(answer(q, "www.example. A 192.0.2.1", flags=dns.flags.RA | dns.flags.AD),
                RESOLVER, CLIENT, 53, 40000, T0_NS + 1002 * MS)
    traffic.add(answer(q, "www.example. A 192.0.2.1", flags=dns.flags.RA),
                RESOLVER, CLIENT, 53, 40000, T0_NS + 1003 * MS)
    found, counters = run_counting(traffic)
    assert by_code(found, "flags_altered") == []
    assert counters["race_retry_bits"] == 1


# --- blind spoofing ------------------------------------------------------------------------


def test_wrong_id_burst_is_one_finding_and_the_genuine_answer_none() -> None:
    traffic = Traffic()
    warm_up(traffic)
    q = query("www.example.", msg_id=1000)
    traffic.add(q, CLIENT, SERVER, 40000, 53, T0_NS)
    for n in range(15):
        fake = answer(query("www.example.", msg_id=2000 + n), "www.example. A 6.6.6.6")
        traffic.add(fake, SERVER, CLIENT, 53, 40000, T0_NS + (n + 1) * 100_000)
    genuine = traffic.add(answer(q, "www.example. A 192.0.2.1"), SERVER, CLIENT, 53, 40000,
                          T0_NS + 20 * MS)
    found = run(traffic)
    assert codes(found) == ["wrong_id_burst"]
    burst = found[0]
    assert burst.params["count"] == 15 and burst.params["distinct_ids"] == 15
    assert genuine not in burst.provenance.frames


def test_single_unsolicited_response_is_reported_only_when_it_contradicts_an_accepted_answer(
) -> None:
    traffic = Traffic()
    warm_up(traffic)
    q = query("a.example.", msg_id=1)
    traffic.add(q, CLIENT, SERVER, 40000, 53, T0_NS)
    spoof = traffic.add(answer(query("a.example.", msg_id=77), "a.example. A 6.6.6.6"),
                        SERVER, CLIENT, 53, 40000, T0_NS + 1 * MS)
    accepted = traffic.add(answer(q, "a.example. A 192.0.2.1"), SERVER, CLIENT, 53, 40000,
                           T0_NS + 20 * MS)
    traffic.add(answer(query("b.example.", msg_id=78), "b.example. A 6.6.6.6"),
                SERVER, CLIENT, 53, 40000, T0_NS + 30 * MS)  # a question never asked there
    traffic.add(answer(query("c.example.", msg_id=79), "c.example. A 6.6.6.6"),
                SERVER, "192.0.2.99", 53, 40001, T0_NS + 200 * MS)  # never seen asking
    found = run(traffic)
    assert codes(found) == ["unsolicited_response"]
    assert found[0].provenance.frames == (spoof, accepted)
    assert found[0].params["accepted_frame"] == accepted


def test_response_from_an_address_the_query_was_not_sent_to() -> None:
    traffic = Traffic()
    q = query("www.example.", msg_id=55)
    traffic.add(q, CLIENT, SERVER, 40000, 53, T0_NS)
    spoofed = traffic.add(answer(q, "www.example. A 6.6.6.6"), OTHER_SERVER, CLIENT, 53,
                          40000, T0_NS + 1 * MS)
    traffic.add(answer(q, "www.example. A 192.0.2.1"), SERVER, CLIENT, 53, 40000,
                T0_NS + 20 * MS)
    found = run(traffic)
    assert codes(found) == ["response_from_unqueried_server"]
    assert found[0].params["asked"] == SERVER
    assert spoofed in found[0].provenance.frames


def test_answer_only_from_another_address_is_a_multihomed_server_not_a_spoof() -> None:
    # Negative twin: the asked server never answers from its own address, or the other
    # address repeats its answer: a multi-homed server or NAT, nothing contradicts anything.
    alone, same = Traffic(), Traffic()
    q = query("www.example.", msg_id=55)
    for traffic in (alone, same):
        traffic.add(q, CLIENT, SERVER, 40000, 53, T0_NS)
        traffic.add(answer(q, "www.example. A 192.0.2.1"), OTHER_SERVER, CLIENT, 53, 40000,
                    T0_NS + 1 * MS)
    same.add(answer(q, "www.example. A 192.0.2.1"), SERVER, CLIENT, 53, 40000, T0_NS + 20 * MS)
    for traffic, reason in ((alone, "unqueried_server_alone"), (same, "unqueried_same_answer")):
        found, counters = run_counting(traffic)
        assert by_code(found, "response_from_unqueried_server") == []
        assert counters["unsolicited_by_reason"] == {reason: 1}  # type: ignore[comparison-overlap]


def test_kaminsky_pattern_many_names_same_ns_payload() -> None:
    traffic = Traffic()
    warm_up(traffic, client=RESOLVER)
    payload = {"authority": ["example. NS ns.attacker.test."],
               "additional": ["ns.attacker.test. A 6.6.6.6"]}
    for n in range(5):
        name = f"r{n}x9.example."
        q = query(name, msg_id=100 + n)
        traffic.add(q, RESOLVER, SERVER, 41000 + n, 53, T0_NS + n * 10 * MS)
        for guess in range(3):
            fake = answer(query(name, msg_id=5000 + 10 * n + guess), **payload)
            traffic.add(fake, SERVER, RESOLVER, 53, 41000 + n, T0_NS + n * 10 * MS + guess)
    found = run(traffic)
    kaminsky = by_code(found, "kaminsky_pattern")
    assert len(kaminsky) == 1
    assert kaminsky[0].params["zone"] == "example."
    assert kaminsky[0].params["names"] >= 3


def test_same_ns_payload_for_many_genuine_answers_is_not_kaminsky() -> None:
    traffic = Traffic()
    for n in range(6):
        q = query(f"host{n}.example.", msg_id=100 + n)
        r = answer(q, f"host{n}.example. A 192.0.2.{n + 1}",
                   authority=["example. NS ns1.example."], additional=["ns1.example. A 192.0.2.53"],
                   flags=dns.flags.AA)
        traffic.exchange(q, r, at_ns=T0_NS + n * 10 * MS, port=42000 + n)
    assert run(traffic) == []


# --- Hold-On ---------------------------------------------------------------------------------


def test_altered_ip_ttl_is_flagged_with_the_numbers() -> None:
    traffic = Traffic()
    odd = 0
    for n in range(10):
        q = query(f"h{n}.example.", msg_id=n + 1)
        _, frame = traffic.exchange(q, answer(q, f"h{n}.example. A 192.0.2.1"),
                                    at_ns=T0_NS + n * 100 * MS, port=43000 + n,
                                    ttl=50 if n == 7 else 58)
        odd = frame if n == 7 else odd
    found = run(traffic)
    assert codes(found) == ["hop_limit_anomaly"]
    assert found[0].params["hop_limit"] == 50 and found[0].params["usual"] == 58
    assert odd in found[0].provenance.frames


def _rtt_traffic(fast_ns: int, usual_ns: Callable[[int], int], *, ra: bool = False) -> Traffic:
    """Ten exchanges with one server; the third answered after ``fast_ns``, the others after
    ``usual_ns(n)``; answers marked recursive (RA) when ``ra``."""
    traffic = Traffic()
    for n in range(10):
        q = query(f"r{n}.example.", msg_id=n + 1)
        reply = answer(q, f"r{n}.example. A 192.0.2.1")
        if ra:
            reply.flags |= dns.flags.RA
        traffic.exchange(q, reply, at_ns=T0_NS + n * 100 * MS, port=44000 + n,
                         rtt_ns=fast_ns if n == 2 else usual_ns(n))
    return traffic


def test_response_faster_than_the_server_ever_answers_is_rtt_anomaly() -> None:
    found = run(_rtt_traffic(100_000, lambda n: (20 + n) * MS))
    assert codes(found) == ["rtt_anomaly"]
    assert found[0].params["rtt_us"] == 100


def test_a_fast_answer_from_a_recursive_resolver_is_a_cache_hit_not_an_rtt_anomaly() -> None:
    assert "rtt_anomaly" not in codes(run(_rtt_traffic(100_000, lambda n: (20 + n) * MS,
                                                       ra=True)))


def test_stable_path_and_jittery_rtt_raise_nothing() -> None:
    traffic = Traffic()
    for n in range(30):
        q = query(f"j{n}.example.", msg_id=n + 1)
        traffic.exchange(q, answer(q, f"j{n}.example. A 192.0.2.1"),
                         at_ns=T0_NS + n * 50 * MS, port=45000 + n,
                         rtt_ns=(5 + (n * 7) % 40) * MS)
    assert run(traffic) == []


# Bailiwick: tests/forgery/test_bailiwick.py.


# --- downgrade -------------------------------------------------------------------------------


def test_stripped_rrsigs_opt_and_key_material() -> None:
    traffic = Traffic()
    q1 = query("www.example.", msg_id=1, do=True)
    traffic.exchange(q1, answer(q1, "www.example. A 192.0.2.1"), at_ns=T0_NS, port=47001)
    q2 = query("mail.example.", msg_id=2, do=True)
    traffic.exchange(q2, answer(q2, "mail.example. A 192.0.2.2", edns=False),
                     at_ns=T0_NS + MS, port=47002)
    q3 = query("example.", "DNSKEY", msg_id=3, do=True)
    traffic.exchange(q3, answer(q3, "example. DNSKEY 257 3 13 "
                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                     at_ns=T0_NS + 2 * MS, port=47003)
    found = run(traffic, _signed_world)
    assert codes(found) == ["rrsigs_stripped", "opt_stripped", "key_material_stripped"]
    assert {f.verdict for f in found} == {"forged"}


def test_ad_on_bogus_is_forged_and_ad_on_insecure_suspicious() -> None:
    traffic = Traffic()
    q1 = query("www.example.", msg_id=1, do=True)
    traffic.exchange(q1, answer(q1, "www.example. A 192.0.2.1", flags=dns.flags.RA
                                | dns.flags.AD), at_ns=T0_NS, server=RESOLVER, port=48001)
    found = run(traffic, _signed_world)
    ad = by_code(found, "ad_on_unvalidated")
    assert [f.verdict for f in ad] == ["forged"]
    insecure_found = run(traffic)
    assert [f.verdict for f in by_code(insecure_found, "ad_on_unvalidated")] == ["suspicious"]


def test_validating_resolver_answer_without_ad_is_ad_cleared() -> None:
    traffic = Traffic()
    for n, flags in enumerate((dns.flags.RA | dns.flags.AD, dns.flags.RA)):
        q = query(f"s{n}.example.", msg_id=n + 1, do=True)
        owner = f"s{n}.example."
        traffic.exchange(q, answer(q, f"{owner} A 192.0.2.1", _SIG.replace("www.example.", owner),
                                   flags=flags),
                         at_ns=T0_NS + n * MS, server=RESOLVER, port=49000 + n)
    found = run(traffic, _signed_world)
    assert codes(found) == ["ad_cleared"]
    assert found[0].params["qname"] == "s1.example."


# --- cross-checks ----------------------------------------------------------------------------


def _resolver_world(evidence: ResponseEvidence) -> Verdict:
    """Signed answers validate; unsigned ones (no DO) cannot be judged alone."""
    answers = evidence.section(Section.ANSWER)
    if answers and all(item.rrsigs is not None for item in answers):
        return verdict(evidence, Status.SECURE)
    return verdict(evidence, Status.INDETERMINATE, (ValidationCode.UNSIGNED_NOT_CROSS_CHECKED,))


def _validated_then_client(client_answer: list[str], *, rcode: int = dns.rcode.NOERROR,
                           client_first: bool = False, gap_ns: int = 5 * MS,
                           qtype: str = "A") -> tuple[Traffic, int]:
    traffic = Traffic()
    upstream = query("www.example.", msg_id=1, do=True, flags=0)
    upstream_at = T0_NS + (gap_ns if client_first else 0)
    client_at = T0_NS + (0 if client_first else gap_ns)
    traffic.exchange(upstream, answer(upstream, "www.example. A 192.0.2.1", _SIG,
                                      flags=dns.flags.AA),
                     at_ns=upstream_at, client=RESOLVER, server=SERVER, port=50001)
    q = query("www.example.", qtype, msg_id=2)
    authority = ["example. SOA ns.example. host.example. 1 3600 600 86400 300"]
    r = answer(q, *client_answer, rcode=rcode, flags=dns.flags.RA,
               authority=authority if not client_answer else ())
    _, frame = traffic.exchange(q, r, at_ns=client_at, client=CLIENT, server=RESOLVER,
                                port=50002, rtt_ns=MS)
    return traffic, frame


def test_unsigned_answer_contradicting_validated_data_is_forged_without_dnssec() -> None:
    traffic, frame = _validated_then_client(["www.example. A 6.6.6.6"])
    found = run(traffic, _resolver_world)
    assert codes(found) == ["contradicts_validated"]
    assert found[0].verdict == "forged" and frame in found[0].provenance.frames


def test_contradiction_is_found_when_the_forged_answer_comes_first() -> None:
    traffic, _ = _validated_then_client(["www.example. A 6.6.6.6"], client_first=True)
    assert codes(run(traffic, _resolver_world)) == ["contradicts_validated"]


def test_equal_data_and_expired_ttl_windows_raise_nothing() -> None:
    same, _ = _validated_then_client(["www.example. A 192.0.2.1"])
    assert run(same, _resolver_world) == []
    later, _ = _validated_then_client(["www.example. A 6.6.6.6"], gap_ns=400 * 1_000 * MS)
    assert run(later, _resolver_world) == []


def test_nxdomain_and_nodata_for_validated_data_are_forged() -> None:
    nxdomain, _ = _validated_then_client([], rcode=dns.rcode.NXDOMAIN)
    assert codes(run(nxdomain, _resolver_world)) == ["denial_contradicts_validated"]
    nodata, _ = _validated_then_client([])
    assert codes(run(nodata, _resolver_world)) == ["denial_contradicts_validated"]
    other_type, _ = _validated_then_client([], qtype="AAAA")
    assert run(other_type, _resolver_world) == []


# --- bounds and robustness -------------------------------------------------------------------


def test_state_stays_bounded_by_the_configured_cap() -> None:
    traffic = Traffic()
    for n in range(300):
        q = query(f"n{n}.example.", msg_id=n)
        traffic.exchange(q, answer(q, f"n{n}.example. A 192.0.2.1"), at_ns=T0_NS + n * 1000,
                         port=1024 + n, server=f"198.51.100.{n % 200 + 1}")
    detector = ForgeryDetector(ForgeryConfig(max_entries=50))
    stream = EvidenceStream(on_query=detector.observe_query)
    for evidence in stream.run(traffic.frames):
        detector.feed(evidence, verdict(evidence, Status.INSECURE))
    assert len(detector._races) <= 50
    assert len(detector._holdon._profiles) <= 50
    assert len(detector._queries._queries) <= 50


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=0, max_size=80), st.booleans()), max_size=12))
def test_random_dns_payloads_never_raise(payloads: list[tuple[bytes, bool]]) -> None:
    traffic = Traffic()
    for n, (payload, outbound) in enumerate(payloads):
        src, dst, sport, dport = ((CLIENT, SERVER, 40000, 53) if outbound
                                  else (SERVER, CLIENT, 53, 40000))
        traffic.add(query("x.example."), src, dst, sport, dport, T0_NS + n * MS, wire=payload)
    traffic.frames.append(Frame("t.pcap", len(traffic.frames) + 1, T0_NS,
                                int(LinkType.ETHERNET), b"\x00" * 10, 10))
    run(traffic)



def test_sub_millisecond_rtt_differences_are_not_flagged() -> None:
    # Loopback or same-host resolvers: 60 us against a usual 400 us is scheduling noise.
    assert "rtt_anomaly" not in codes(run(_rtt_traffic(60_000, lambda n: 400_000)))

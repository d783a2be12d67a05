"""Resolution reconstruction on hand-built exchanges: which upstream answer explains a client's
SERVFAIL, and the behaviours it must not take for a cause (cache hits, other clients' work,
retransmissions, timeouts are not bogus data)."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from auditor.evidence import ResponseEvidence, Section, build_evidence
from auditor.findings.codes import ValidationCode
from auditor.ledger import Ledger
from auditor.messages import MessageParser
from auditor.resolution import Cause, Resolution, ResolutionLinker
from auditor.transactions import Matcher
from auditor.validate import RRsetVerdict, Status, Verdict
from tests.helpers import wire_message

CLIENT, RESOLVER, AUTH = "192.0.2.10", "192.0.2.53", "198.51.100.1"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
EXPIRED_AT = 1_699_000_000


def _verdict(status: Status, codes: tuple[ValidationCode, ...] = (), *,
             name: str = "www.expired.example.", rdtype: str = "A") -> Verdict:
    rrsets = ()
    if status is Status.BOGUS:
        rrsets = (RRsetVerdict(Section.ANSWER, name, rdtype, status, "expired.example.", (1,),
                               (13,), codes, EXPIRED_AT - 86400, EXPIRED_AT, ()),)
    return Verdict(status, codes, "expired.example." if rrsets else None, rrsets, (), T0, ())


class Wire:
    """Feeds hand-built messages through the real parser, matcher and linker."""

    def __init__(self) -> None:
        self.parser = MessageParser(Ledger())
        self.matcher = Matcher()
        self.linker = ResolutionLinker()
        self.frame = 0
        self.queries: dict[tuple[str, str], dns.message.Message] = {}

    def _observe(self, message: dns.message.Message, src: str, dst: str, sport: int,
                 dport: int, ts_ms: int) -> ResponseEvidence | None:
        self.frame += 1
        observed = self.parser.feed(wire_message(message.to_wire(), src=src, dst=dst,
                                                 sport=sport, dport=dport, frame=self.frame,
                                                 ts_ns=T0 + ts_ms * MS))
        assert observed is not None
        transaction = self.matcher.feed(observed)
        if transaction is None:
            self.linker.observe_query(observed)
            return None
        return build_evidence(transaction)

    def ask(self, src: str, dst: str, qname: str, rdtype: str, ts_ms: int) -> None:
        query = dns.message.make_query(qname, rdtype, want_dnssec=True)
        query.id = self.frame + 1000
        self.queries[(src, qname + rdtype)] = query
        sport = 5353 if src == CLIENT else 40000 + self.frame
        self._observe(query, src, dst, sport, 53, ts_ms)
        self.queries[(src, qname + rdtype)].sport = sport  # type: ignore[attr-defined]

    def answer(self, src: str, dst: str, qname: str, rdtype: str, ts_ms: int,
               verdict: Verdict, *, rcode: int = dns.rcode.NOERROR,
               records: tuple[str, ...] = (), authority: tuple[str, ...] = (),
               ede: tuple[int, ...] = (), aa: bool = False) -> Resolution | None:
        query = self.queries[(dst, qname + rdtype)]
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        for section, texts in ((response.answer, records), (response.authority, authority)):
            for text in texts:
                name, ttl, rdtype, rdata = text.split(" ", 3)
                section.append(dns.rrset.from_text(name, int(ttl), "IN", rdtype, rdata))
        if aa:
            response.flags |= dns.flags.AA
        response.use_edns(0, dns.flags.DO, options=[dns.edns.EDEOption(code) for code in ede])
        evidence = self._observe(response, src, dst, 53, query.sport,  # type: ignore[attr-defined]
                                 ts_ms)
        assert evidence is not None
        return self.linker.feed(evidence, verdict)


EXPIRED = _verdict(Status.BOGUS, (ValidationCode.SIGNATURE_EXPIRED, ValidationCode.DNSSEC_BOGUS))
SECURE = _verdict(Status.SECURE)
NOTHING = _verdict(Status.INDETERMINATE, (ValidationCode.NO_RECORDS,))


def _cname_into_expired(wire: Wire, *, ede: tuple[int, ...] = ()) -> Resolution | None:
    wire.ask(CLIENT, RESOLVER, "to.chain.example.", "A", 0)
    wire.ask(RESOLVER, AUTH, "to.chain.example.", "A", 1)
    wire.answer(AUTH, RESOLVER, "to.chain.example.", "A", 2, SECURE,
                records=("to.chain.example. 300 CNAME www.expired.example.",))
    wire.ask(RESOLVER, AUTH, "www.expired.example.", "A", 3)
    wire.answer(AUTH, RESOLVER, "www.expired.example.", "A", 4, EXPIRED,
                records=("www.expired.example. 300 A 192.0.2.1",))
    return wire.answer(RESOLVER, CLIENT, "to.chain.example.", "A", 5, NOTHING,
                       rcode=dns.rcode.SERVFAIL, ede=ede)


def test_servfail_is_explained_by_the_cname_targets_expired_signature() -> None:
    resolution = _cname_into_expired(Wire())
    assert resolution is not None and resolution.failed
    assert resolution.cause is Cause.BOGUS_UPSTREAM
    (causing,) = resolution.causing
    assert (causing.qname, causing.frame, causing.zone) == ("www.expired.example.", 5,
                                                            "expired.example.")
    assert "signature_expired" in causing.codes
    assert resolution.upstream_frames == (2, 3, 4, 5)
    text = resolution.explanation or ""
    assert text.startswith("SERVFAIL for to.chain.example. A: its CNAME target "
                           "www.expired.example.")
    assert "its signature expired at 2023-11-03T08:26:40Z on www.expired.example. A" in text
    assert "upstream answer frame 5 from 198.51.100.1" in text


def test_the_resolvers_ede_is_checked_against_the_capture() -> None:
    agrees = _cname_into_expired(Wire(), ede=(7,))  # RFC 8914 4.8 Signature Expired
    assert agrees is not None and agrees.ede_check is not None
    assert agrees.ede_check.agrees is True
    wrong = _cname_into_expired(Wire(), ede=(22,))  # No Reachable Authority: not what happened
    assert wrong is not None and wrong.ede_check is not None
    assert wrong.ede_check.agrees is False
    assert "EDE 22 (No Reachable Authority)" in wrong.ede_check.text


def test_a_timeout_is_explained_as_a_timeout_not_as_bogus_data() -> None:
    wire = Wire()
    wire.ask(CLIENT, RESOLVER, "www.dead.example.", "A", 0)
    wire.ask(RESOLVER, AUTH, "www.dead.example.", "A", 1)
    wire.ask(RESOLVER, "198.51.100.2", "www.dead.example.", "A", 400)
    resolution = wire.answer(RESOLVER, CLIENT, "www.dead.example.", "A", 900, NOTHING,
                             rcode=dns.rcode.SERVFAIL, ede=(22,))
    assert resolution is not None
    assert resolution.cause is Cause.UPSTREAM_TIMEOUT
    assert [a.frame for a in resolution.causing] == [None, None]
    assert "got no answer (timeout; query frames 2, 3)" in (resolution.explanation or "")
    assert "bogus" not in (resolution.explanation or "")
    assert resolution.ede_check is not None and resolution.ede_check.agrees is True


def test_other_clients_bogus_work_meanwhile_is_not_a_cause() -> None:
    wire = Wire()
    wire.ask(CLIENT, RESOLVER, "www.dead.example.", "A", 0)
    wire.ask(RESOLVER, AUTH, "www.dead.example.", "A", 1)
    wire.ask(RESOLVER, AUTH, "www.expired.example.", "A", 2)  # someone else's question
    wire.answer(AUTH, RESOLVER, "www.expired.example.", "A", 3, EXPIRED)
    resolution = wire.answer(RESOLVER, CLIENT, "www.dead.example.", "A", 900, NOTHING,
                             rcode=dns.rcode.SERVFAIL)
    assert resolution is not None and resolution.cause is Cause.UPSTREAM_TIMEOUT
    assert resolution.upstream_frames == (2,)


def test_a_repeat_from_cache_names_the_earlier_failure() -> None:
    wire = Wire()
    first = _cname_into_expired(wire)
    assert first is not None
    wire.ask(CLIENT, RESOLVER, "to.chain.example.", "A", 1000)
    del wire.matcher  # a fresh matcher: the client re-asks with another ID
    wire.matcher = Matcher()
    wire.ask(CLIENT, RESOLVER, "to.chain.example.", "A", 1000)
    again = wire.answer(RESOLVER, CLIENT, "to.chain.example.", "A", 1001, NOTHING,
                        rcode=dns.rcode.SERVFAIL)
    assert again is not None and again.from_cache
    assert again.cause is Cause.CACHED_FAILURE
    assert again.causing == first.causing
    assert "answered from the resolver's cache (no upstream query)" in (again.explanation or "")


def test_a_successful_answer_is_linked_but_not_explained() -> None:
    wire = Wire()
    wire.ask(CLIENT, RESOLVER, "www.example.", "A", 0)
    wire.ask(RESOLVER, AUTH, "example.", "DNSKEY", 1)
    wire.answer(AUTH, RESOLVER, "example.", "DNSKEY", 2, SECURE)
    wire.ask(RESOLVER, AUTH, "www.example.", "A", 3)
    wire.answer(AUTH, RESOLVER, "www.example.", "A", 4, SECURE)
    resolution = wire.answer(RESOLVER, CLIENT, "www.example.", "A", 5, SECURE)
    assert resolution is not None
    assert (resolution.failed, resolution.cause, resolution.explanation) == (False, None, None)
    assert resolution.upstream_frames == (2, 3, 4, 5)


def test_authoritative_answers_and_one_sided_captures_are_not_linked() -> None:
    wire = Wire()
    wire.ask(CLIENT, AUTH, "www.example.", "A", 0)  # a stub asking a server directly
    assert wire.answer(AUTH, CLIENT, "www.example.", "A", 1, SECURE) is None


def test_an_answer_the_resolver_followed_is_not_why_it_failed() -> None:
    """BIND follows a CNAME into a delegation to a dead server: whatever the auditor thinks
    of the CNAME answer, the resolver went on to ask its target, so the timeout explains."""
    wire = Wire()
    wire.ask(CLIENT, RESOLVER, "todead.chain.example.", "A", 0)
    wire.ask(RESOLVER, AUTH, "todead.chain.example.", "A", 1)
    wire.answer(AUTH, RESOLVER, "todead.chain.example.", "A", 2, EXPIRED,
                records=("todead.chain.example. 300 CNAME www.dead.chain.example.",))
    wire.ask(RESOLVER, "198.51.100.9", "www.dead.chain.example.", "A", 3)
    resolution = wire.answer(RESOLVER, CLIENT, "todead.chain.example.", "A", 900, NOTHING,
                             rcode=dns.rcode.SERVFAIL)
    assert resolution is not None and resolution.cause is Cause.UPSTREAM_TIMEOUT
    assert [a.qname for a in resolution.causing] == ["www.dead.chain.example."]


DS = "unsigned.example. 300 DS 12345 13 2 " + "ab" * 32


def test_unsigned_data_from_a_zone_whose_parent_has_a_ds() -> None:
    wire = Wire()
    wire.ask(CLIENT, RESOLVER, "www.unsigned.example.", "A", 0)
    wire.ask(RESOLVER, AUTH, "unsigned.example.", "NS", 1)
    wire.answer(AUTH, RESOLVER, "unsigned.example.", "NS", 2, SECURE,
                authority=("unsigned.example. 300 NS ns.example.", DS))
    wire.ask(RESOLVER, AUTH, "www.unsigned.example.", "A", 3)
    wire.answer(AUTH, RESOLVER, "www.unsigned.example.", "A", 4, NOTHING, aa=True,
                records=("www.unsigned.example. 300 A 192.0.2.1",))
    resolution = wire.answer(RESOLVER, CLIENT, "www.unsigned.example.", "A", 5, NOTHING,
                             rcode=dns.rcode.SERVFAIL)
    assert resolution is not None and resolution.cause is Cause.BOGUS_UPSTREAM
    (causing,) = resolution.causing
    assert (causing.zone, causing.codes) == ("unsigned.example.", ("rrsigs_missing",))


def test_a_dnskey_query_answered_without_keys_under_a_ds() -> None:
    wire = Wire()
    wire.ask(CLIENT, RESOLVER, "www.unsigned.example.", "A", 0)
    wire.ask(RESOLVER, AUTH, "unsigned.example.", "DS", 1)
    wire.answer(AUTH, RESOLVER, "unsigned.example.", "DS", 2, SECURE, records=(DS,))
    wire.ask(RESOLVER, AUTH, "unsigned.example.", "DNSKEY", 3)
    wire.answer(AUTH, RESOLVER, "unsigned.example.", "DNSKEY", 4, NOTHING, aa=True)
    resolution = wire.answer(RESOLVER, CLIENT, "www.unsigned.example.", "A", 5, NOTHING,
                             rcode=dns.rcode.SERVFAIL, ede=(9,))
    assert resolution is not None and resolution.cause is Cause.DNSKEY_MISSING
    assert "the keys (DNSKEY) of unsigned.example." in (resolution.explanation or "")
    assert resolution.ede_check is not None and resolution.ede_check.agrees is True


def test_a_cached_cname_leads_to_the_target_fetched_again() -> None:
    """BIND keeps the CNAME but fetches the bogus target again: linked through the CNAME
    remembered from the first resolution."""
    wire = Wire()
    _cname_into_expired(wire)
    wire.matcher = Matcher()
    wire.ask(CLIENT, RESOLVER, "to.chain.example.", "A", 1000)
    wire.ask(RESOLVER, AUTH, "www.expired.example.", "A", 1001)
    wire.answer(AUTH, RESOLVER, "www.expired.example.", "A", 1002, EXPIRED)
    again = wire.answer(RESOLVER, CLIENT, "to.chain.example.", "A", 1003, NOTHING,
                        rcode=dns.rcode.SERVFAIL)
    assert again is not None and not again.from_cache
    assert again.cause is Cause.BOGUS_UPSTREAM
    assert again.causing[0].frame == 9


# --- a valid answer Unbound rejects: RFC 4470 white lies behind a CNAME ------------------------

_WHITE_LIES = ("nx3\\255.wl.example. 300 NSEC nx4\\000.wl.example. RRSIG NSEC",)


def _into_white_lies(wire: Wire, wildcard_next: str, *, client_asks: str = "cn0.wl.example."
                     ) -> Resolution | None:
    wire.ask(CLIENT, RESOLVER, client_asks, "A", 0)
    if client_asks != "nx4.wl.example.":
        wire.ask(RESOLVER, AUTH, client_asks, "A", 1)
        wire.answer(AUTH, RESOLVER, client_asks, "A", 2, SECURE,
                    records=(f"{client_asks} 300 CNAME nx4.wl.example.",))
    wire.ask(RESOLVER, AUTH, "nx4.wl.example.", "A", 3)
    wire.answer(AUTH, RESOLVER, "nx4.wl.example.", "A", 4, SECURE, rcode=dns.rcode.NXDOMAIN,
                authority=(*_WHITE_LIES, f"\\).wl.example. 300 NSEC {wildcard_next} RRSIG NSEC"))
    return wire.answer(RESOLVER, CLIENT, client_asks, "A", 5, NOTHING,
                       rcode=dns.rcode.SERVFAIL, ede=(6,))


def test_white_lies_behind_a_cname_name_the_shape_unbound_rejects() -> None:
    # RFC 4470 3's own example: \) NSEC \000.*.Z covers the wildcard; Unbound's CNAME path
    # reads the next name as proof that *.Z exists (an empty non-terminal) and SERVFAILs.
    resolution = _into_white_lies(Wire(), "\\000.*.wl.example.")
    assert resolution is not None and resolution.cause is Cause.VALIDATOR_INTEROP
    (causing,) = resolution.causing
    assert causing.codes == ("white_lie_wildcard_next_name",)
    assert "*\\000.wl.example." in causing.reason  # the next name that avoids it
    assert resolution.ede_check is not None and resolution.ede_check.agrees is True


def test_white_lies_whose_next_name_is_not_below_the_wildcard_explain_nothing() -> None:
    resolution = _into_white_lies(Wire(), "*\\000.wl.example.")  # covers *.Z, not below it
    assert resolution is not None and resolution.cause is Cause.UNEXPLAINED


def test_the_same_white_lies_asked_for_directly_are_not_the_cause() -> None:
    # Without a CNAME Unbound accepts the proof: a failure then has another cause.
    resolution = _into_white_lies(Wire(), "\\000.*.wl.example.", client_asks="nx4.wl.example.")
    assert resolution is not None and resolution.cause is Cause.UNEXPLAINED

"""Synthetic traffic for forgery tests: scapy frames through the real decode path, fed to the
detector with verdicts the test chooses (so no signing is needed for the logic tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from auditor.capture.frame import Frame, LinkType
from auditor.evidence import ResponseEvidence
from auditor.findings.catalogue import Finding
from auditor.findings.codes import ValidationCode
from auditor.forgery import ForgeryConfig, ForgeryDetector
from auditor.pipeline import EvidenceStream
from auditor.validate.verdict import RRsetVerdict, Status, Verdict

CLIENT = "192.0.2.10"
RESOLVER = "192.0.2.53"
SERVER = "198.51.100.53"
OTHER_SERVER = "203.0.113.7"
T0_NS = 1_700_000_000 * 1_000_000_000
MS = 1_000_000


def query(qname: str, rdtype: str = "A", msg_id: int = 1, *, do: bool = False,
          flags: int = dns.flags.RD) -> dns.message.Message:
    """A query message."""
    message = dns.message.make_query(qname, rdtype, want_dnssec=do, id=msg_id)
    message.flags = flags
    return message


def answer(q: dns.message.Message, *records: str, rcode: int = dns.rcode.NOERROR,
           authority: Sequence[str] = (), additional: Sequence[str] = (),
           flags: int = 0, ttl: int = 300, edns: bool = True) -> dns.message.Message:
    """A response to ``q`` with records given as ``"owner TYPE rdata"`` text."""
    response = dns.message.make_response(q)
    response.flags |= flags
    response.set_rcode(rcode)
    if not edns:
        response.use_edns(False)
    for section, texts in ((response.answer, records), (response.authority, authority),
                           (response.additional, additional)):
        for text in texts:
            owner, rdtype, rdata = text.split(" ", 2)
            section.append(dns.rrset.from_text(owner, ttl, "IN", rdtype, rdata))
    return response


@dataclass
class Traffic:
    """Frames being built, in capture order."""

    frames: list[Frame] = field(default_factory=list)

    def add(self, message: dns.message.Message, src: str, dst: str, sport: int, dport: int,
            at_ns: int, *, ttl: int = 64, wire: bytes | None = None) -> int:
        """Append one UDP packet; return its frame number."""
        packet = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                  / IP(src=src, dst=dst, ttl=ttl) / UDP(sport=sport, dport=dport)
                  / Raw(wire if wire is not None else message.to_wire()))
        data = bytes(packet)
        number = len(self.frames) + 1
        self.frames.append(Frame("t.pcap", number, at_ns, int(LinkType.ETHERNET), data, len(data)))
        return number

    def exchange(self, q: dns.message.Message, r: dns.message.Message, *, at_ns: int,
                 rtt_ns: int = 20 * MS, client: str = CLIENT, server: str = SERVER,
                 port: int = 40000, ttl: int = 64) -> tuple[int, int]:
        """A query and its response; return their frame numbers."""
        first = self.add(q, client, server, port, 53, at_ns)
        second = self.add(r, server, client, 53, port, at_ns + rtt_ns, ttl=ttl)
        return first, second


WARM_UP_NS = 30 * 1_000_000_000
"""How long before ``T0_NS`` ``warm_up`` puts its exchange: past the capture warm-up (10 s)
during which unmatched responses may answer queries sent before the capture began."""


def warm_up(traffic: Traffic, *, client: str = CLIENT, server: str = SERVER) -> None:
    """Start the capture well before ``T0_NS`` with one ordinary exchange of ``client``, so the
    capture covers the flows the test is about (unmatched responses near a capture's start are
    capture loss, never a finding)."""
    q = query("warm-up.example.", msg_id=65000)
    traffic.exchange(q, answer(q, "warm-up.example. A 192.0.2.200"),
                     at_ns=T0_NS - WARM_UP_NS, client=client, server=server, port=39999)


Judge = Callable[[ResponseEvidence], Verdict]


def verdict(evidence: ResponseEvidence, status: Status,
            codes: tuple[ValidationCode, ...] = (),
            rrset_status: Callable[[object], Status] | None = None) -> Verdict:
    """A verdict whose RRset verdicts line up with the evidence."""
    rrsets = tuple(
        RRsetVerdict(item.section, item.name.to_text(), item.rdtype.name,
                     rrset_status(item) if rrset_status else status,
                     "example." if item.rrsigs is not None else None, (), (), codes, None, None,
                     ())
        for item in evidence.rrsets
    )
    return Verdict(status, codes, None, rrsets, (), evidence.ts_ns, ())


def insecure(evidence: ResponseEvidence) -> Verdict:
    """Everything unsigned and provably so."""
    return verdict(evidence, Status.INSECURE)


def run(traffic: Traffic, judge: Judge = insecure,
        config: ForgeryConfig | None = None) -> list[Finding]:
    """Decode, match, judge with ``judge`` and detect; every finding of the run."""
    return run_counting(traffic, judge, config)[0]


def run_counting(traffic: Traffic, judge: Judge = insecure, config: ForgeryConfig | None = None
                 ) -> tuple[list[Finding], dict[str, object]]:
    """``run``, also returning the detector's ``stats.json`` counters."""
    detector = ForgeryDetector(config)
    stream = EvidenceStream(on_query=detector.observe_query)
    found: list[Finding] = []
    for evidence in stream.run(sorted(traffic.frames, key=lambda f: (f.ts_ns, f.number))):
        found.extend(detector.feed(evidence, judge(evidence)))
    found.extend(detector.flush())
    return found, detector.counters()


def codes(found: list[Finding]) -> list[str]:
    """Finding codes in order."""
    return [f.code for f in found]


def by_code(found: list[Finding], code: str) -> list[Finding]:
    """The findings with one code."""
    return [f for f in found if f.code == code]


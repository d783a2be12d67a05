"""Online signing against a real validator (issue 12 class 6): Knot's mod-onlinesign (compact
NODATA black lies, no NXNAME in Knot 3.2) and the Python online signer (RFC 9824 NXNAME under
NOERROR and NXDOMAIN, RFC 4470 NSEC and NSEC3 white lies, and a broken twin of each), resolved
by a validating Unbound holding the zones' anchors; the auditor's verdict on every upstream
answer and on Unbound's answer to the client must be Unbound's (AD: secure, SERVFAIL: bogus)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.integration.agreement import Audit, run_audit
from tests.lab.online import CLIENT, KNOT, RESOLVER, SIGNER, online_lab, unavailable_reason

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True)
class Shape:
    """One probe, what Unbound must say, and the code the auditor must give."""

    qname: str
    qtype: str
    unbound: str
    """``secure`` (AD set) or ``bogus`` (SERVFAIL)."""
    code: str | None = None
    """A code every judged response must carry (None: no requirement)."""


COMPACT = "compact_denial_nxname"
SHAPES = (
    # Knot mod-onlinesign: NOERROR, NSEC at the name, next \000.name, fake A/AAAA bitmap.
    Shape("nxq.knot.test.", "A", "secure"),
    Shape("www.knot.test.", "TXT", "secure"),
    Shape("ent.knot.test.", "A", "secure"),
    # RFC 9824: black lie with NXNAME; the twin lists the queried type.
    Shape("bl-q.online.test.", "A", "secure", COMPACT),
    Shape("blbad-q.online.test.", "A", "bogus", "denial_bitmap_has_type"),
    # RFC 9824 4: NXDOMAIN with the compact NSEC (Unbound answers NOERROR, AD); the twin.
    Shape("nx-q.online.test.", "A", "secure", COMPACT),
    Shape("nxbad-q.online.test.", "A", "bogus", "denial_bitmap_has_type"),
    # RFC 4470 white lies (modified method); next \000.qname (absolute method) makes the name
    # an empty non-terminal for Unbound too; a span made for the neighbour does not cover.
    Shape("wl-q.online.test.", "A", "secure"),
    Shape("wlabs-q.online.test.", "A", "bogus", "denial_name_exists"),
    Shape("wlbad-q.online.test.", "A", "bogus", "denial_no_cover"),
    Shape("www.online.test.", "TXT", "secure"),
    # NSEC3 white lies (H-1..H+1) and the twin whose span misses the hash.
    Shape("wl-q.nsec3.test.", "A", "secure"),
    Shape("wlbad-q.nsec3.test.", "A", "bogus", "denial_no_cover"),
    Shape("www.nsec3.test.", "TXT", "secure"),
    # Wildcards (RFC 4592) signed on the fly: the RRSIG labels of *.w and a white lie covering
    # the next closer name (RFC 4035 5.3.4, RFC 5155 7.2.6); the twin's span misses it.
    # Wildcard NODATA (RFC 4035 3.1.3.4, RFC 5155 7.2.5). Compact signers sign the expanded
    # name as its own (black lies); the twin's NSEC lists the type asked.
    Shape("wl-q.w.online.test.", "A", "secure", "wildcard_expanded"),
    Shape("wlbad-q.w.online.test.", "A", "bogus"),
    Shape("wl-q.w.online.test.", "TXT", "secure"),
    Shape("bl-q.w.online.test.", "A", "secure"),
    Shape("blbad-q.w.online.test.", "TXT", "bogus", "denial_bitmap_has_type"),
    Shape("wl-q.w.nsec3.test.", "A", "secure", "wildcard_expanded"),
    Shape("wlbad-q.w.nsec3.test.", "A", "bogus"),
    Shape("wl-q.w.nsec3.test.", "TXT", "secure"),
)


@dataclass(frozen=True, slots=True)
class OnlineRun:
    answers: dict[Shape, dns.message.Message]
    audit: Audit
    out: Path


@pytest.fixture(scope="module")
def online_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnlineRun]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("online")
    pcap = workdir / "online.pcap"
    with online_lab(workdir, pcap) as lab:
        answers = {shape: lab.ask(shape.qname, shape.qtype) for shape in SHAPES}
        anchors = lab.anchors
    out = workdir / "audit"
    yield OnlineRun(answers, run_audit(pcap, out, Path(anchors)), out)


def unbound_says(response: dns.message.Message) -> str:
    if response.rcode() == dns.rcode.SERVFAIL:
        return "bogus"
    return "secure" if response.flags & dns.flags.AD else "insecure"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.qname}{s.qtype}")
def test_auditor_agrees_with_unbound_on_online_signed_answers(
    online_run: OnlineRun, shape: Shape
) -> None:
    answer = online_run.answers[shape]
    assert unbound_says(answer) == shape.unbound, answer
    records = online_run.audit.for_question(shape.qname, shape.qtype)
    upstream = [r for r in records if r["src"] in (KNOT, SIGNER) and r["dst"] == RESOLVER]
    client = [r for r in records if r["src"] == RESOLVER and r["dst"] == CLIENT]
    assert upstream and client, records
    # SERVFAIL to the client carries nothing to judge: only the upstream answers count then.
    judged = upstream + (client if shape.unbound == "secure" else [])
    assert {r["verdict"] for r in judged} == {shape.unbound}, judged
    if shape.code is not None:
        assert all(shape.code in r["codes"] for r in judged), judged


def test_restored_nxdomain_keeps_its_rcode(online_run: OnlineRun) -> None:
    # The authoritative NXDOMAIN with the compact NSEC stays NXDOMAIN in the report; Unbound
    # 1.17 turned it into NOERROR for the client (it proves NODATA, not a name error).
    records = online_run.audit.for_question("nx-q.online.test.", "A")
    assert {r["rcode"] for r in records if r["src"] == SIGNER} == {"NXDOMAIN"}
    assert {r["rcode"] for r in records if r["dst"] == CLIENT} == {"NOERROR"}


def test_online_signed_zones_are_not_called_walkable(online_run: OnlineRun) -> None:
    # RFC 4470 1: minimally covering NSEC records list nothing; only NSEC chains can be walked.
    lines = (online_run.out / "findings.jsonl").read_text().splitlines()
    walkable = [f["params"]["zone"] for f in map(json.loads, lines)
                if f["code"] == "nsec_zone_walkable"]
    assert walkable == [], walkable

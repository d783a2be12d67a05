"""Run dig or kdig against a lab server and parse the answer into a `QueryResult`."""

from __future__ import annotations

import enum
import logging
import re
import subprocess
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.lab.tools import program

logger = logging.getLogger(__name__)

_STATUS = re.compile(r"status: ([A-Z0-9]+)")
_FLAGS = re.compile(r";; flags:([^;]*);", re.IGNORECASE)
_SECTION = re.compile(r";; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:")


class Tool(enum.StrEnum):
    """Query program."""

    DIG = "dig"
    KDIG = "kdig"


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """How to ask."""

    dnssec: bool = True
    """Set the DO bit (``+dnssec``) or not (``+nodnssec``)."""
    tcp: bool = False
    """Use TCP from the start (``+tcp``)."""
    cd: bool = False
    """Set the CD bit (``+cd`` / kdig ``+cdflag``)."""
    recurse: bool = True
    """Set the RD bit."""
    ignore_tc: bool = False
    """Keep a truncated UDP answer instead of retrying over TCP (``+ignore``)."""
    timeout: int = 5
    """Seconds to wait for one answer."""
    tool: Tool = Tool.DIG
    """dig or kdig."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """One query and what came back, parsed from the tool's text output."""

    qname: str
    """Name asked."""
    rdtype: str
    """Type asked."""
    server: str
    """Address asked."""
    tcp: bool
    """Whether the query was sent over TCP."""
    rcode: str | None
    """Response code text (``NOERROR``, ``SERVFAIL``...), ``None`` if no answer arrived."""
    flags: frozenset[str]
    """Header flags, lower case (``qr``, ``aa``, ``ad``, ``tc``...)."""
    answer: tuple[dns.rrset.RRset, ...]
    """Answer section RRsets, RRSIGs as separate RRsets."""
    authority: tuple[dns.rrset.RRset, ...]
    """Authority section RRsets."""
    output: str
    """Raw output of the tool, for diagnostics."""

    @property
    def ad(self) -> bool:
        """Authentic Data flag (RFC 4035 3.2.3)."""
        return "ad" in self.flags

    @property
    def aa(self) -> bool:
        """Authoritative Answer flag."""
        return "aa" in self.flags

    @property
    def tc(self) -> bool:
        """Truncation flag."""
        return "tc" in self.flags

    @property
    def answered(self) -> bool:
        """Whether any response arrived."""
        return self.rcode is not None

    def rrsets(self, rdtype: str, *, section: str = "answer") -> list[dns.rrset.RRset]:
        """RRsets of *rdtype* in *section* (``answer`` or ``authority``)."""
        wanted = dns.rdatatype.from_text(rdtype)
        rrsets = self.answer if section == "answer" else self.authority
        return [rrset for rrset in rrsets if rrset.rdtype == wanted]

    def addresses(self) -> set[str]:
        """Every A/AAAA address in the answer section."""
        return {
            rdata.to_text()
            for rrset in self.answer
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
            for rdata in rrset
        }

    def covered_by_rrsig(self) -> set[str]:
        """Types covered by RRSIGs in the answer section."""
        return {
            dns.rdatatype.to_text(rrset.covers)
            for rrset in self.answer
            if rrset.rdtype == dns.rdatatype.RRSIG
        }


def _argv(
    qname: str, rdtype: str, server: str, port: int, source: str | None, options: QueryOptions
) -> list[str]:
    is_kdig = options.tool is Tool.KDIG
    argv = [program(options.tool.value), f"@{server}", "-p", str(port)]
    if source:
        argv += ["-b", source]
    argv += [qname, rdtype, "+dnssec" if options.dnssec else "+nodnssec"]
    argv += ["+tcp"] if options.tcp else ["+notcp"]
    argv += ["+rec" if options.recurse else "+norec"]
    if options.cd:
        argv.append("+cdflag" if is_kdig else "+cd")
    if options.ignore_tc:
        argv.append("+ignore")
    if is_kdig:
        argv += [f"+time={options.timeout}", "+retry=0", "+nomultiline"]
    else:
        argv += [f"+time={options.timeout}", "+tries=1", "+nomultiline", "+nocmd", "+nostats"]
    return argv


def _parse_record(line: str) -> tuple[dns.name.Name, int, dns.rdata.Rdata] | None:
    fields = line.split(None, 4)
    if len(fields) < 5 or line.startswith(";"):
        return None
    name, ttl, rdclass, rdtype, text = fields
    rdata = dns.rdata.from_text(
        dns.rdataclass.from_text(rdclass), dns.rdatatype.from_text(rdtype), text
    )
    return dns.name.from_text(name), int(ttl), rdata


def _parse_sections(output: str) -> dict[str, tuple[dns.rrset.RRset, ...]]:
    sections: dict[str, dict[tuple[dns.name.Name, int, int], dns.rrset.RRset]] = {}
    current: dict[tuple[dns.name.Name, int, int], dns.rrset.RRset] | None = None
    for raw in output.splitlines():
        line = raw.strip()
        header = _SECTION.match(line)
        if header:
            current = sections.setdefault(header.group(1).lower(), {})
            continue
        if not line or line.startswith(";;"):
            current = None
            continue
        parsed = _parse_record(line) if current is not None else None
        if current is None or parsed is None:
            continue
        name, ttl, rdata = parsed
        key = (name, rdata.rdtype, rdata.covers())
        rrset = current.setdefault(
            key, dns.rrset.RRset(name, rdata.rdclass, rdata.rdtype, rdata.covers())
        )
        rrset.add(rdata, ttl)
    return {section: tuple(found.values()) for section, found in sections.items()}


def parse_output(output: str, *, qname: str, rdtype: str, server: str, tcp: bool) -> QueryResult:
    """Parse dig/kdig text output (default, non-multiline format)."""
    status = _STATUS.search(output)
    flags = _FLAGS.search(output)
    sections = _parse_sections(output)
    return QueryResult(
        qname=qname,
        rdtype=rdtype,
        server=server,
        tcp=tcp,
        rcode=status.group(1) if status else None,
        flags=frozenset(flags.group(1).split()) if flags else frozenset(),
        answer=sections.get("answer", ()),
        authority=sections.get("authority", ()),
        output=output,
    )


def query(
    qname: str,
    rdtype: str,
    server: str,
    *,
    port: int = 53,
    source: str | None = None,
    options: QueryOptions | None = None,
) -> QueryResult:
    """Ask *server* for *qname*/*rdtype* with dig or kdig and return the parsed answer."""
    options = options or QueryOptions()
    argv = _argv(qname, rdtype, server, port, source, options)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=options.timeout * 3 + 5, check=False
        )
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        output = f"; timed out: {exc}"
    return parse_output(output, qname=qname, rdtype=rdtype, server=server, tcp=options.tcp)

"""Record captures/sample-dnssec.pcap: a real validating-resolver session against the lab.

Run as root from the repository root:  .venv/bin/python captures/make_sample.py
Needs named, dnssec-keygen, dnssec-signzone, unbound, unbound-control, tcpdump, dig.
Writes, next to this script: sample-dnssec.pcap (tcpdump), sample-dnssec.anchor (root DS
trust anchor, zone-file text), sample-dnssec.json (zone designs, signature windows, queries
and the resolver's answers) and the matching lines of README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.lab import Lab, QueryResult, build_lab, lab_unavailable_reason  # noqa: E402

logger = logging.getLogger("make_sample")

NAME = "sample-dnssec"


@dataclass(frozen=True, slots=True)
class Step:
    """One query of the scripted session."""

    target: str
    """``resolver``, ``resolver6`` or ``authoritative``."""
    qname: str
    """Name asked."""
    rdtype: str
    """Type asked."""
    tcp: bool = False
    """Ask over TCP."""


SESSION: tuple[Step, ...] = (
    Step("resolver", "www.sec.test.", "A"),
    Step("resolver", "anything.wild.sec.test.", "A"),
    Step("resolver", "www.ecdsa.test.", "AAAA"),
    Step("resolver", "www.ed.test.", "A", tcp=True),
    Step("resolver", "www.p384.test.", "A"),
    Step("resolver", "missing.nsec3.test.", "A"),
    Step("resolver", "www.cname.test.", "A"),
    Step("resolver", "www.insecure.test.", "A"),
    Step("resolver", "www.expired.test.", "A"),
    Step("resolver", "www.altered.test.", "A"),
    Step("resolver", "big.test.", "DNSKEY", tcp=True),
    Step("resolver6", "www.ed448.test.", "A"),
    Step("authoritative", "www.sec.test.", "A", tcp=True),
    Step("authoritative", "www.badds.test.", "A"),
)


def run_step(lab: Lab, step: Step) -> QueryResult | None:
    """Send one scripted query; IPv6 steps are skipped when ::1 port 53 is unavailable."""
    match step.target:
        case "resolver":
            return lab.query_resolver(step.qname, step.rdtype, tcp=step.tcp)
        case "resolver6":
            if lab.resolver_ipv6 is None:
                return None
            return lab.query_resolver(step.qname, step.rdtype, tcp=step.tcp, ipv6=True)
        case _:
            return lab.query_authoritative(step.qname, step.rdtype, tcp=step.tcp)


def describe(step: Step, result: QueryResult | None) -> dict[str, object]:
    """JSON record of a step and what came back."""
    record: dict[str, object] = {
        "target": step.target,
        "qname": step.qname,
        "rdtype": step.rdtype,
        "transport": "tcp" if step.tcp else "udp",
    }
    if result is None:
        return record | {"skipped": "no IPv6 resolver"}
    return record | {
        "server": result.server,
        "rcode": result.rcode,
        "flags": sorted(result.flags),
        "answer": [rrset.to_text() for rrset in result.answer],
    }


def update_readme(readme: Path, lines: list[str]) -> None:
    """Replace this script's lines in README.md, keeping lines about other captures."""
    kept = []
    if readme.exists():
        kept = [line for line in readme.read_text().splitlines() if f"`{NAME}." not in line]
    if not kept:
        kept = [
            "# Captures",
            "",
            "Real tcpdump captures; one line per file saying how it was made.",
            "",
        ]
    readme.write_text("\n".join([*kept, *lines]) + "\n")


def main() -> int:
    """Build the lab, record the session, write the capture and its sidecar files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    reason = lab_unavailable_reason()
    if reason:
        logger.error("%s", reason)
        return 2
    out: Path = args.out
    pcap_path, anchor_path, meta_path = (
        out / f"{NAME}{ext}" for ext in (".pcap", ".anchor", ".json")
    )
    with tempfile.TemporaryDirectory(prefix="dnssec-lab-") as tmp:
        lab = build_lab(Path(tmp))
        with lab.running(), lab.capture(pcap_path) as pcap:
            results = [(step, run_step(lab, step)) for step in SESSION]
        anchor_path.write_text(lab.trust_anchor_file.read_text())
        meta = lab.manifest() | {
            "capture": pcap_path.name,
            "capture_filter": pcap.bpf,
            "capture_started": pcap.started_at,
            "capture_stopped": pcap.stopped_at,
            "packets": pcap.packets,
            "addresses": {
                "root": lab.addresses.servers.root,
                "tld": lab.addresses.servers.tld,
                "leaf": lab.addresses.servers.leaf,
                "resolver": lab.addresses.resolver,
                "resolver_ipv6": lab.resolver_ipv6,
                "client": lab.addresses.client,
            },
            "queries": [describe(step, result) for step, result in results],
        }
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    made = time.strftime("%Y-%m-%d", time.gmtime(pcap.started_at))
    update_readme(
        out / "README.md",
        [
            f"- `{NAME}.pcap` ({pcap.packets} packets, {pcap_path.stat().st_size} bytes, {made}): "
            f"`sudo .venv/bin/python captures/make_sample.py` ran `tcpdump -i lo -U "
            f"--immediate-mode -n -s 0 -w {NAME}.pcap '{pcap.bpf}'` while dig (from "
            f"{lab.addresses.client}) asked the validating Unbound ({lab.addresses.resolver}, "
            f"trust anchor `{NAME}.anchor`) and the lab's BIND (root {lab.addresses.servers.root}, "
            f"test. {lab.addresses.servers.tld}, leaves {lab.addresses.servers.leaf}) the "
            f"{len(SESSION)} queries listed in `{NAME}.json` (UDP and TCP; secure, insecure, "
            "NSEC3 NXDOMAIN, wildcard, CNAME, bogus expired/altered/bad-DS, 3 KB DNSKEY via TC "
            "then TCP); signatures valid only in the windows recorded there.",
            f"- `{NAME}.anchor`: root DS of the private root used for `{NAME}.pcap`, written by "
            "the same run (pass as `--trust-anchor`).",
            f"- `{NAME}.json`: the same run's zone designs, expected verdicts, signature "
            "inception/expiration per zone, capture start/stop times and every query's answer.",
        ],
    )
    logger.info("wrote %s (%s packets)", pcap_path, pcap.packets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

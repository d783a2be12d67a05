"""A second, small lab for online signing on its own 127.55.0.x addresses: Knot with
mod-onlinesign (compact NODATA "black lies"), the Python online signer of ``online_signer``
(RFC 9824 NXNAME, RFC 4470 and NSEC3 white lies, broken twins), and a validating Unbound that
holds both zones' anchors and reaches them through stub zones. tcpdump records it all."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.lab.addresses import LoopbackAddresses
from tests.lab.capture import TcpdumpCapture
from tests.lab.online_signer import OnlineServer, OnlineZone
from tests.lab.process import ManagedProcess, wait_until

logger = logging.getLogger(__name__)

RESOLVER = "127.55.0.1"
KNOT = "127.55.0.2"
SIGNER = "127.55.0.3"
CLIENT = "127.55.0.4"
ADDRESSES = (RESOLVER, KNOT, SIGNER, CLIENT)
KNOT_ZONE = "knot.test."
NSEC_ZONE = "online.test."
NSEC3_ZONE = "nsec3.test."
LOCK = Path("/tmp/dnssec-auditor-online-lab.lock")
"""Sessions using the 127.55.0.x addresses take turns on this lock."""

PROGRAMS = ("knotd", "unbound", "tcpdump")
RECORDS = ("www A 192.0.2.1", "*.w A 192.0.2.7")
"""The online signer's zones: a host, and a wildcard below ``w`` that names such as
``wl-q.w.<zone>`` are synthesised from in the shape their first label names."""


def unavailable_reason() -> str | None:
    """Why the online lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the online-signing lab needs root (loopback addresses, port 53, tcpdump)"
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    return f"missing programs: {', '.join(missing)}" if missing else None


def _knot_conf(workdir: Path) -> str:
    return f"""server:
    listen: {KNOT}@53
    rundir: {workdir}
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: {workdir}
    kasp-db: {workdir}/kasp
    module: mod-onlinesign
zone:
  - domain: {KNOT_ZONE}
    file: knot.test.zone
"""


_KNOT_ZONE_TEXT = f"""$ORIGIN {KNOT_ZONE}
$TTL 300
@ SOA ns h 1 7200 3600 1209600 300
@ NS ns
ns A {KNOT}
www A 192.0.2.1
a.ent A 192.0.2.2
"""


def _unbound_conf(workdir: Path, anchors: Path) -> str:
    stubs = "".join(
        f'stub-zone:\n    name: "{zone}"\n    stub-addr: {address}\n'
        for zone, address in ((KNOT_ZONE, KNOT), (NSEC_ZONE, SIGNER), (NSEC3_ZONE, SIGNER))
    )
    return f"""server:
    verbosity: 1
    val-log-level: 2
    use-syslog: no
    logfile: ""
    chroot: ""
    username: ""
    directory: "{workdir}"
    interface: {RESOLVER}
    port: 53
    outgoing-interface: {RESOLVER}
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    root-hints: "{workdir}/root.hints"
    trust-anchor-file: "{anchors}"
    module-config: "validator iterator"
    local-zone: "test." nodefault
    num-threads: 1
    qname-minimisation: yes
    aggressive-nsec: no
    prefetch: no
    minimal-responses: no
    trust-anchor-signaling: no
    root-key-sentinel: no
    edns-buffer-size: 1232
{stubs}"""


def _answers(server: str, qname: str, qtype: str) -> bool:
    try:
        query = dns.message.make_query(qname, qtype, want_dnssec=True)
        dns.query.udp(query, server, timeout=1)
    except (OSError, dns.exception.Timeout):
        return False
    return True


@dataclass
class OnlineLab:
    """The running servers; ``ask`` queries Unbound as the lab client."""

    workdir: Path
    anchors: Path
    """DS lines of the three zones, for Unbound and for the auditor."""

    def ask(self, qname: str, qtype: str = "A") -> dns.message.Message:
        query = dns.message.make_query(qname, qtype, want_dnssec=True)
        return dns.query.udp(query, RESOLVER, timeout=5, source=CLIENT)


def _knot_ds(workdir: Path) -> str:
    query = dns.message.make_query(KNOT_ZONE, "DNSKEY", want_dnssec=True)
    response = dns.query.udp(query, KNOT, timeout=2)
    keys = response.find_rrset(response.answer, dns.name.from_text(KNOT_ZONE),
                               dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    (workdir / "knot-dnskey.txt").write_text(keys.to_text() + "\n")
    # SEP bit: Knot's KSK/CSK.
    return "".join(f"{KNOT_ZONE} 3600 IN DS {dns.dnssec.make_ds(KNOT_ZONE, key, 'SHA256')}\n"
                   for key in keys if key.flags & 0x0001)


@contextlib.contextmanager
def online_lab(workdir: Path, pcap: Path) -> Iterator[OnlineLab]:
    """Start everything, capture 127.55.0.0/24 into ``pcap``, stop everything on exit."""
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.ExitStack() as stack:
            stack.enter_context(LoopbackAddresses(ADDRESSES))
            (workdir / "knot.test.zone").write_text(_KNOT_ZONE_TEXT)
            (workdir / "knot.conf").write_text(_knot_conf(workdir))
            knot = ManagedProcess("knotd", ["knotd", "-c", str(workdir / "knot.conf")],
                                  workdir / "knotd.log")
            knot.start(lambda: _answers(KNOT, KNOT_ZONE, "DNSKEY"))
            stack.callback(knot.stop)
            zones = [OnlineZone(dns.name.from_text(NSEC_ZONE), SIGNER, records=RECORDS),
                     OnlineZone(dns.name.from_text(NSEC3_ZONE), SIGNER, nsec3=True,
                                records=RECORDS)]
            signer = OnlineServer(SIGNER, zones)
            signer.start()
            stack.callback(signer.stop)
            anchors = workdir / "anchors.ds"
            anchors.write_text(_knot_ds(workdir) + "".join(z.ds_text() for z in zones))
            (workdir / "root.hints").write_text(". 3600 IN NS a.root.test.\n"
                                                "a.root.test. 3600 IN A 127.55.0.9\n")
            (workdir / "unbound.conf").write_text(_unbound_conf(workdir, anchors))
            stack.enter_context(TcpdumpCapture(pcap, "net 127.55.0.0/24 and port 53"))
            unbound = ManagedProcess(
                "unbound", ["unbound", "-d", "-p", "-c", str(workdir / "unbound.conf")],
                workdir / "unbound.log")
            unbound.start(lambda: _answers(RESOLVER, f"www.{NSEC_ZONE}", "A"))
            stack.callback(unbound.stop)
            assert wait_until(lambda: _answers(RESOLVER, f"www.{KNOT_ZONE}", "A"), timeout=5)
            yield OnlineLab(workdir, anchors)

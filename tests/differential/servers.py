"""Run one named (a view per name depth), the online signer and knotd (if the batch has
online-signed zones), one validating Unbound and tcpdump for a batch."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from tests.differential.build import Addresses, Batch
from tests.lab.addresses import LoopbackAddresses
from tests.lab.capture import CaptureFile, TcpdumpCapture
from tests.lab.online_signer import OnlineServer
from tests.lab.process import ManagedProcess, wait_until
from tests.lab.servers import DNS_PORT, ResolverAddresses, unbound_config
from tests.lab.tools import LabError, program

LOCK = Path("/tmp/dnssec-auditor-differential.lock")
"""Held while a batch runs: two runs must not share 127.54.0.x."""

UNBOUND_EXTRA = (
    "ede: yes",  # RFC 8914 extended errors on SERVFAIL
    "log-queries: no",
    "msg-cache-size: 64m",
    "rrset-cache-size: 128m",
    "key-cache-size: 32m",
    "neg-cache-size: 16m",
    "infra-cache-numhosts: 10000",
)
_NOT_LOADED = re.compile(r"zone (\S+)/IN/\S+: not loaded due to errors")


def named_config(batch: Batch, addresses: Addresses) -> str:
    """Every zone of *labels* labels in the view answering on that depth's address."""
    views = []
    for labels in range(addresses.max_labels + 1):
        zones = [name for name, count in batch.labels.items() if count == labels]
        blocks = "".join(
            f'    zone "{name}" {{ type primary; file "{batch.zones[name]}"; }};\n'
            for name in zones
        )
        views.append(f'view "d{labels}" {{\n    match-destinations {{ '
                     f'{addresses.server(labels)}; }};\n{blocks}}};\n')  # fmt: skip
    listen = "; ".join(addresses.depths())
    workdir = batch.workdir
    return f"""options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    managed-keys-directory "{workdir}";
    listen-on port {DNS_PORT} {{ {listen}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer {{ none; }};
}};
controls {{ }};
{"".join(views)}"""


def _soa_answered(name: str, address: str, source: str) -> bool:
    query = dns.message.make_query(name, "SOA")
    try:
        response = dns.query.udp(query, address, timeout=1, source=source)
    except (OSError, dns.exception.DNSException):
        return False
    return response.rcode() == dns.rcode.NOERROR


@dataclass(slots=True)
class Servers:
    """Running servers of one batch."""

    batch: Batch
    addresses: Addresses
    not_loaded: frozenset[str] = frozenset()
    """Zones named refused to load."""

    @property
    def unbound_log(self) -> Path:
        """Unbound's log (val-log-level 2 validation failures)."""
        return self.batch.workdir / "unbound.log"


def _start_named(batch: Batch, addresses: Addresses) -> ManagedProcess:
    conf = batch.workdir / "named.conf"
    conf.write_text(named_config(batch, addresses))
    log = batch.workdir / "named.log"
    process = ManagedProcess("named", ["named", "-g", "-n", "2", "-c", str(conf)], log)

    def ready() -> bool:
        return "running" in log.read_text(errors="replace") and _soa_answered(
            "test.", addresses.server(1), addresses.client
        )

    process.start(ready, timeout=600)
    return process


def _start_unbound(batch: Batch, addresses: Addresses) -> ManagedProcess:
    assert batch.anchor is not None
    hints = batch.workdir / "root.hints"
    hints.write_text(f". 3600000 IN NS a.root.test.\na.root.test. 3600000 IN A "
                     f"{addresses.server(0)}\n")  # fmt: skip
    conf = batch.workdir / "unbound.conf"
    resolver = ResolverAddresses(ipv4=addresses.resolver, ipv6=None)
    conf.write_text(unbound_config(batch.workdir, resolver, batch.anchor, hints, UNBOUND_EXTRA))
    process = ManagedProcess("unbound", ["unbound", "-d", "-p", "-c", str(conf)],
                             batch.workdir / "unbound.log")  # fmt: skip

    def ready() -> bool:
        argv = [program("unbound-control"), "-c", str(conf), "status"]
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
        return done.returncode == 0

    process.start(ready, timeout=30)
    return process


def knot_config(batch: Batch, addresses: Addresses) -> str:
    """knotd on its own address, every zone signed on the fly with the keys imported from the
    pool (``manual``: Knot generates none)."""
    rundir = batch.workdir / "knot"
    zones = "".join(f"  - domain: {zone.name}\n    file: {batch.zones[zone.name]}\n"
                    for zone in batch.knot)  # fmt: skip
    return f"""server:
    listen: {addresses.knot}@{DNS_PORT}
    rundir: {rundir}
log:
  - target: stderr
    any: warning
policy:
  - id: manual
    manual: on
mod-onlinesign:
  - id: signer
    policy: manual
template:
  - id: default
    storage: {rundir}
    module: mod-onlinesign/signer
zone:
{zones}"""


def _start_knot(batch: Batch, addresses: Addresses) -> ManagedProcess:
    """Import the Knot zones' keys into its KASP database, then start knotd."""
    rundir = batch.workdir / "knot"
    rundir.mkdir(exist_ok=True)
    conf = rundir / "knot.conf"
    conf.write_text(knot_config(batch, addresses))
    for zone in batch.knot:
        for key in zone.keys:
            argv = [program("keymgr"), "-c", str(conf), zone.name, "import-bind",
                    f"{key.base}.private"]  # fmt: skip
            subprocess.run(argv, capture_output=True, timeout=30, check=True)
    process = ManagedProcess("knotd", ["knotd", "-c", str(conf)], rundir / "knotd.log")
    first = batch.knot[0].name
    process.start(lambda: _soa_answered(first, addresses.knot, addresses.client), timeout=60)
    return process


def _not_loaded(batch: Batch) -> frozenset[str]:
    text = (batch.workdir / "named.log").read_text(errors="replace")
    return frozenset(match.group(1) for match in _NOT_LOADED.finditer(text))


@contextlib.contextmanager
def running(
    batch: Batch, addresses: Addresses, pcap: Path
) -> Iterator[tuple[Servers, CaptureFile]]:
    """Addresses, named, Unbound and tcpdump up for the block; all stopped on exit."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(LoopbackAddresses(addresses.all()))
        named = stack.enter_context(_start_named(batch, addresses))
        if not named.running():
            raise LabError("named exited")
        if batch.online:
            signer = OnlineServer(addresses.online, batch.online)
            signer.start()
            stack.callback(signer.stop)
        if batch.knot:
            stack.enter_context(_start_knot(batch, addresses))
        # Capture from before Unbound's first upstream query: the root and test. keys
        # it fetches once per batch must be in the capture.
        capture = stack.enter_context(TcpdumpCapture(pcap, f"net {addresses.network}"))
        stack.enter_context(_start_unbound(batch, addresses))
        if not wait_until(
            lambda: _soa_answered("test.", addresses.resolver, addresses.client), timeout=30
        ):
            raise LabError("Unbound does not resolve test. SOA")
        yield Servers(batch, addresses, _not_loaded(batch)), capture

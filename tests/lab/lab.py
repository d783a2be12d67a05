"""Tie zones, servers, addresses, queries and captures together as one running `Lab`."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.name

from tests.lab.addresses import LAB_NETWORK, LoopbackAddresses
from tests.lab.capture import TcpdumpCapture
from tests.lab.process import ManagedProcess, wait_until
from tests.lab.query import QueryOptions, QueryResult, Tool, query
from tests.lab.servers import (
    DNS_PORT,
    ResolverAddresses,
    named_config,
    root_hints,
    start_named,
    start_unbound,
    unbound_config,
)
from tests.lab.tools import LabError, program
from tests.lab.zones import (
    LEAF_ZONES,
    BuiltZone,
    Expectation,
    Role,
    ServerAddresses,
    SigningWindow,
    build_zones,
    zone_for,
)

logger = logging.getLogger(__name__)

_VALIDATION_FAILURE = re.compile(r"validation failure <(\S+) \S+ \S+>: (.*)$")


@dataclass(frozen=True, slots=True)
class LabAddresses:
    """Every address the lab uses."""

    servers: ServerAddresses
    """Authoritative addresses (root, tld, leaf)."""
    resolver: str
    """Validating Unbound (listens here, sends upstream from here)."""
    client: str
    """Source address of dig/kdig queries."""
    network: str = LAB_NETWORK
    """Range captured by default."""

    def all(self) -> tuple[str, ...]:
        """Addresses to configure on `lo`."""
        servers = self.servers
        return (servers.root, servers.tld, servers.leaf, self.client, self.resolver)


DEFAULT_ADDRESSES = LabAddresses(
    servers=ServerAddresses(root="127.53.0.1", tld="127.53.0.2", leaf="127.53.0.3"),
    resolver="127.53.0.254",
    client="127.53.0.100",
)


def ipv6_port_free(address: str = "::1", port: int = DNS_PORT) -> bool:
    """Whether UDP and TCP *port* can be bound on *address* (so Unbound may listen there)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        try:
            with socket.socket(socket.AF_INET6, kind) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
        except OSError:
            return False
    return True


class Lab:
    """Built zones plus (once `running`) an authoritative named and a validating Unbound."""

    def __init__(
        self, workdir: Path, addresses: LabAddresses, zones: dict[str, BuiltZone], built_at: int
    ) -> None:
        self.workdir = workdir
        self.addresses = addresses
        self.zones = zones
        self.built_at = built_at
        """Wall-clock second the signature windows are relative to."""
        self.trust_anchor_file = workdir / "root.ds"
        """Root DS in zone-file text (Unbound ``trust-anchor-file``, auditor ``--trust-anchor``)."""
        self.trust_anchor_dnskey_file = workdir / "root.dnskey"
        """Root KSK DNSKEY in zone-file text."""
        self.named_conf = workdir / "named.conf"
        self.unbound_conf = workdir / "unbound.conf"
        self.root_hints_file = workdir / "root.hints"
        self.named_log = workdir / "named.log"
        self.resolver_log = workdir / "unbound.log"
        self.resolver_ipv6: str | None = None
        """``::1`` when Unbound also listens there (port 53 was free), else ``None``."""
        self._named: ManagedProcess | None = None
        self._unbound: ManagedProcess | None = None
        self._write_trust_anchors()

    # -- files ---------------------------------------------------------------------------

    def _write_trust_anchors(self) -> None:
        root = self.zones["."]
        self.trust_anchor_file.write_text("\n".join(root.ds) + "\n")
        ksks = [key for key in root.keys if key.ksk]
        self.trust_anchor_dnskey_file.write_text(
            "".join(f". 86400 IN DNSKEY {key.dnskey.to_text()}\n" for key in ksks)
        )

    def manifest(self) -> dict[str, object]:
        """JSON-ready description: build time, windows, expectations, keys, trust anchor."""
        return {
            "built_at": self.built_at,
            "trust_anchor_ds": list(self.zones["."].ds),
            "zones": {
                name: {
                    "expectation": zone.spec.expectation.value,
                    "description": zone.spec.description,
                    "probe": zone.spec.probe,
                    "probe_type": zone.spec.probe_type,
                    "server": zone.server,
                    "inception": zone.window.inception if zone.window else None,
                    "expiration": zone.window.expiration if zone.window else None,
                    "key_tags": list(zone.key_tags),
                    "parent_ds": list(zone.ds),
                }
                for name, zone in self.zones.items()
            },
        }

    def write_manifest(self, path: Path) -> Path:
        """Write `manifest` as JSON to *path*."""
        path.write_text(json.dumps(self.manifest(), indent=2, sort_keys=True) + "\n")
        return path

    # -- zone facts ----------------------------------------------------------------------

    def zone(self, name: str) -> BuiltZone:
        """The deepest lab zone containing *name*."""
        return zone_for(name, self.zones)

    def authoritative_for(self, qname: str, rdtype: str = "A") -> str:
        """Address that answers *qname*/*rdtype* authoritatively (DS at an apex: the parent)."""
        zone = self.zone(qname)
        at_apex = dns.name.from_text(qname) == dns.name.from_text(zone.name)
        if rdtype.upper() == "DS" and at_apex and zone.name != ".":
            # RFC 4034 5: the DS RRset lives on the parent side of the delegation.
            zone = self.zone(dns.name.from_text(zone.name).parent().to_text())
        return zone.server

    def leaf_zones(self) -> list[BuiltZone]:
        """Every zone below ``test.``."""
        return [self.zones[spec.name] for spec in LEAF_ZONES if spec.name in self.zones]

    def expectations(self) -> dict[str, Expectation]:
        """Probe name -> verdict a validator must reach."""
        return {zone.spec.probe: zone.spec.expectation for zone in self.leaf_zones()}

    def signing_windows(self) -> dict[str, SigningWindow]:
        """Zone name -> signature window, for pinning the auditor's reference time."""
        return {name: zone.window for name, zone in self.zones.items() if zone.window}

    @property
    def capture_filter(self) -> str:
        """BPF expression covering all lab traffic (IPv6 resolver traffic on ::1 included)."""
        bpf = f"net {self.addresses.network}"
        if self.resolver_ipv6:
            bpf = f"({bpf}) or (ip6 host {self.resolver_ipv6} and port {DNS_PORT})"
        return bpf

    # -- lifecycle -----------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self) -> Iterator[Lab]:
        """Add addresses, start named and Unbound; stop them and clean up on exit."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(LoopbackAddresses(self.addresses.all()))
            stack.callback(self._stop_named)
            self._start_named()
            stack.callback(self._stop_unbound)
            self._start_unbound()
            yield self

    def _start_named(self) -> None:
        self.named_conf.write_text(named_config(self.workdir, self.addresses.servers, self.zones))
        self._named = start_named(self.workdir, self.named_conf, self._named_ready)

    def _named_ready(self) -> bool:
        servers = self.addresses.servers
        probes = ((".", servers.root), ("test.", servers.tld), ("sec.test.", servers.leaf))
        options = QueryOptions(dnssec=False, recurse=False, timeout=1)
        for name, address in probes:
            result = query(name, "SOA", address, source=self.addresses.client, options=options)
            if result.rcode != "NOERROR" or not result.aa:
                return False
        return True

    def _start_unbound(self) -> None:
        self.resolver_ipv6 = "::1" if ipv6_port_free() else None
        self.root_hints_file.write_text(root_hints(self.addresses.servers))
        resolver = ResolverAddresses(ipv4=self.addresses.resolver, ipv6=self.resolver_ipv6)
        self.unbound_conf.write_text(
            unbound_config(self.workdir, resolver, self.trust_anchor_file, self.root_hints_file)
        )
        self._unbound = start_unbound(self.workdir, self.unbound_conf, self._unbound_ready)

    def _unbound_control(self, *args: str) -> bool:
        argv = [program("unbound-control"), "-c", str(self.unbound_conf), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        return done.returncode == 0

    def _unbound_ready(self) -> bool:
        return self._unbound_control("status")

    def flush_resolver(self) -> None:
        """Empty Unbound's caches (``unbound-control reload``) so the next query goes upstream."""
        if not self._unbound_control("reload"):
            raise LabError("unbound-control reload failed")
        if not wait_until(self._unbound_ready, timeout=10):
            raise LabError("unbound not ready after reload")

    def _stop_named(self) -> None:
        if self._named is not None:
            self._named.stop()
            self._named = None

    def _stop_unbound(self) -> None:
        if self._unbound is not None:
            self._unbound.stop()
            self._unbound = None

    def validation_failures(self) -> dict[str, list[str]]:
        """Unbound's logged validation failures (val-log-level 2): qname -> reasons."""
        failures: dict[str, list[str]] = {}
        for line in self.resolver_log.read_text(errors="replace").splitlines():
            match = _VALIDATION_FAILURE.search(line)
            if match:
                failures.setdefault(match.group(1), []).append(match.group(2))
        return failures

    @property
    def pids(self) -> dict[str, int | None]:
        """PIDs of the running servers."""
        return {
            "named": self._named.pid if self._named else None,
            "unbound": self._unbound.pid if self._unbound else None,
        }

    # -- traffic -------------------------------------------------------------------------

    def query_resolver(
        self,
        qname: str,
        rdtype: str = "A",
        *,
        dnssec: bool = True,
        tcp: bool = False,
        cd: bool = False,
        ipv6: bool = False,
        tool: Tool = Tool.DIG,
        timeout: int = 5,
    ) -> QueryResult:
        """Ask the validating Unbound (over ``::1`` if *ipv6*)."""
        options = QueryOptions(dnssec=dnssec, tcp=tcp, cd=cd, tool=tool, timeout=timeout)
        if ipv6:
            if self.resolver_ipv6 is None:
                raise LabError("Unbound is not listening on ::1 (port 53 was taken)")
            return query(qname, rdtype, self.resolver_ipv6, options=options)
        return query(
            qname, rdtype, self.addresses.resolver, source=self.addresses.client, options=options
        )

    def query_authoritative(
        self,
        qname: str,
        rdtype: str = "A",
        *,
        server: str | None = None,
        dnssec: bool = True,
        tcp: bool = False,
        ignore_tc: bool = False,
        tool: Tool = Tool.DIG,
        timeout: int = 5,
    ) -> QueryResult:
        """Ask an authoritative address directly (default: the one serving *qname*'s zone)."""
        options = QueryOptions(
            dnssec=dnssec, tcp=tcp, recurse=False, ignore_tc=ignore_tc, tool=tool, timeout=timeout
        )
        address = server or self.authoritative_for(qname, rdtype)
        return query(qname, rdtype, address, source=self.addresses.client, options=options)

    def server_for(self, role: Role) -> str:
        """Authoritative address of *role*."""
        return self.addresses.servers.for_role(role)

    def capture(self, path: Path, *, bpf: str | None = None) -> TcpdumpCapture:
        """A tcpdump context manager writing lab traffic to *path*."""
        return TcpdumpCapture(path, bpf or self.capture_filter)


def build_lab(
    workdir: Path,
    *,
    now: int | None = None,
    key_cache: Path | None = None,
    addresses: LabAddresses = DEFAULT_ADDRESSES,
) -> Lab:
    """Generate keys and signed zones under *workdir*; servers start with `Lab.running`.

    Signature windows are relative to *now* (default: the current wall-clock second),
    because Unbound validates at wall-clock time.
    """
    built_at = int(time.time()) if now is None else now
    workdir.mkdir(parents=True, exist_ok=True)
    zones = build_zones(workdir, addresses.servers, now=built_at, key_cache=key_cache)
    return Lab(workdir, addresses, zones, built_at)

"""Write configurations for the authoritative BIND server and the validating Unbound."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.lab.process import ManagedProcess
from tests.lab.zones import BuiltZone, Role, ServerAddresses

logger = logging.getLogger(__name__)

DNS_PORT = 53


@dataclass(frozen=True, slots=True)
class ResolverAddresses:
    """Where the validating resolver listens and sends from."""

    ipv4: str
    """IPv4 listening and outgoing address."""
    ipv6: str | None
    """IPv6 listening address (``::1``) or ``None`` when port 53 there is taken."""


def _view(name: str, address: str, zones: Sequence[BuiltZone]) -> str:
    zone_blocks = "".join(
        f'    zone "{zone.name}" {{ type primary; file "{zone.zone_file}"; }};\n' for zone in zones
    )
    return f'view "{name}" {{\n    match-destinations {{ {address}; }};\n{zone_blocks}}};\n'


def named_config(workdir: Path, addresses: ServerAddresses, zones: Mapping[str, BuiltZone]) -> str:
    """Return a named.conf serving each role's zones only on that role's address.

    One process, three views selected by destination address, so a query to the root
    address gets a referral exactly as from a separate root server.
    """
    listen = "; ".join((addresses.root, addresses.tld, addresses.leaf))
    views = "".join(
        _view(
            role.value, addresses.for_role(role), [z for z in zones.values() if z.spec.role is role]
        )
        for role in Role
    )
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
    querylog yes;
}};
controls {{ }};
{views}"""


def start_named(workdir: Path, conf: Path, ready_check: Callable[[], bool]) -> ManagedProcess:
    """Start ``named -g`` (foreground, logging to its log file) and wait for *ready_check*."""
    process = ManagedProcess(
        "named", ["named", "-g", "-n", "1", "-c", str(conf)], workdir / "named.log"
    )
    process.start(ready_check)
    return process


def root_hints(addresses: ServerAddresses) -> str:
    """Return the Unbound root-hints file pointing at the private root."""
    return f".            3600000 IN NS a.root.test.\na.root.test. 3600000 IN A  {addresses.root}\n"


def unbound_config(
    workdir: Path,
    resolver: ResolverAddresses,
    trust_anchor_file: Path,
    hints: Path,
    extra: Sequence[str] = (),
) -> str:
    """Return an unbound.conf validating from the private root trust anchor.

    *extra* server options (``name: value``) are appended; a repeated option overrides.
    """
    extra_lines = "".join(f"    {option}\n" for option in extra)
    interfaces = [resolver.ipv4] + ([resolver.ipv6] if resolver.ipv6 else [])
    interface_lines = "".join(f"    interface: {address}\n" for address in interfaces)
    return f"""server:
    verbosity: 1
    val-log-level: 2
    log-queries: yes
    use-syslog: no
    logfile: ""
    chroot: ""
    username: ""
    directory: "{workdir}"
{interface_lines}    port: {DNS_PORT}
    outgoing-interface: {resolver.ipv4}
    do-ip4: yes
    do-ip6: {"yes" if resolver.ipv6 else "no"}
    prefer-ip4: yes
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    access-control: ::1/128 allow
    do-not-query-localhost: no
    root-hints: "{hints}"
    trust-anchor-file: "{trust_anchor_file}"
    module-config: "validator iterator"
    local-zone: "test." nodefault
    num-threads: 1
    msg-cache-size: 4m
    rrset-cache-size: 8m
    key-cache-size: 4m
    neg-cache-size: 1m
    infra-cache-numhosts: 1000
    edns-buffer-size: 1232
    qname-minimisation: yes
    aggressive-nsec: no
    prefetch: no
    minimal-responses: no
    trust-anchor-signaling: no
    root-key-sentinel: no
{extra_lines}
remote-control:
    control-enable: yes
    control-use-cert: no
    control-interface: "{workdir}/unbound.ctl"
"""


def start_unbound(workdir: Path, conf: Path, ready_check: Callable[[], bool]) -> ManagedProcess:
    """Start ``unbound -d`` (foreground) and wait for *ready_check*."""
    process = ManagedProcess(
        "unbound", ["unbound", "-d", "-p", "-c", str(conf)], workdir / "unbound.log"
    )
    process.start(ready_check)
    return process

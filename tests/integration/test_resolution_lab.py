"""Resolution reconstruction against real resolvers: Unbound and BIND 9 resolve CNAME chains
into broken zones while tcpdump records both sides; every client SERVFAIL must be explained by
the upstream answer that caused it, a dead server as a timeout (the negative twin: never as
bogus data), and a repeat from cache by the earlier failure.

The lab here is private to this module (127.53.17.x, its own zones), so it can run while
another lab uses 127.53.0.x.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agreement import Audit, Record, run_audit
from tests.lab import (
    LEAF_ZONES,
    Expectation,
    LabAddresses,
    LoopbackAddresses,
    ZoneSpec,
    skip_unless_lab,
)
from tests.lab.lab import Lab
from tests.lab.process import ManagedProcess
from tests.lab.query import QueryOptions, QueryResult, query
from tests.lab.servers import ResolverAddresses, root_hints, start_unbound, unbound_config
from tests.lab.zones import P256, ServerAddresses, _ksk_zsk, build_zones

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NET = "127.53.17"
ADDRESSES = LabAddresses(
    servers=ServerAddresses(root=f"{NET}.1", tld=f"{NET}.2", leaf=f"{NET}.3"),
    resolver=f"{NET}.254", client=f"{NET}.100", network=f"{NET}.0/24")
BIND_RESOLVER = f"{NET}.253"
DEAD_SERVER = f"{NET}.9"
"""A socket here reads every query and answers none (a dead server, not a refused port)."""

CHAIN = ZoneSpec(
    "chain.test.", _ksk_zsk(P256), Expectation.SECURE,
    "CNAMEs into the broken zones, and a delegation to a server that never answers",
    extra=("toexpired CNAME www.expired.test.", "tobadds CNAME www.badds.test.",
           "tounsigned CNAME www.unsigned.test.", "todead CNAME www.dead.chain.test.",
           "dead NS ns.dead.chain.test.", f"ns.dead A {DEAD_SERVER}"))
LEAVES = (*(z for z in LEAF_ZONES if z.name in {"sec.test.", "expired.test.", "badds.test.",
                                                 "unsigned.test."}), CHAIN)


@contextlib.contextmanager
def _black_hole(address: str) -> Iterator[None]:
    """A UDP port 53 that swallows every query, until the context ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    sock.settimeout(0.2)
    stop = threading.Event()

    def swallow() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                sock.recv(4096)

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sock.close()


class ResolutionLab(Lab):
    """The lab with Unbound sending EDE (RFC 8914) and listening on IPv4 only."""

    def _start_unbound(self) -> None:
        self.resolver_ipv6 = None
        self.root_hints_file.write_text(root_hints(self.addresses.servers))
        conf = unbound_config(self.workdir, ResolverAddresses(self.addresses.resolver, None),
                              self.trust_anchor_file, self.root_hints_file,
                              extra=("ede: yes", "val-bogus-ttl: 120",
                                     "infra-cache-max-rtt: 1000"))
        self.unbound_conf.write_text(conf)
        self._unbound = start_unbound(self.workdir, self.unbound_conf, self._unbound_ready)


def _bind_resolver_conf(lab: Lab, workdir: Path) -> str:
    anchors = []
    for line in lab.trust_anchor_file.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[3] == "DS":
            tag, algorithm, digest_type = fields[4:7]
            anchors.append(f'    . static-ds {tag} {algorithm} {digest_type} '
                           f'"{"".join(fields[7:])}";\n')
    return f"""options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    managed-keys-directory "{workdir}";
    listen-on port 53 {{ {BIND_RESOLVER}; }};
    listen-on-v6 {{ none; }};
    query-source address {BIND_RESOLVER};
    recursion yes;
    allow-recursion {{ any; }};
    allow-query-cache {{ any; }};
    dnssec-validation yes;
    minimal-responses no;
    notify no;
}};
trust-anchors {{
{"".join(anchors)}}};
controls {{ }};
zone "." {{ type hint; file "{lab.root_hints_file}"; }};
"""


@dataclass(frozen=True, slots=True)
class Resolved:
    """One resolver's run: what dig got per probe, and the audit of the capture."""

    resolver: str
    answers: dict[str, list[QueryResult]]
    audit: Audit

    def client_answers(self, qname: str) -> list[Record]:
        """The resolver's answers to the lab client for ``qname`` A, in capture order."""
        return [r for r in self.audit.records if r["qname"] == qname and r["qtype"] == "A"
                and r["src"] == self.resolver and r["dst"] == ADDRESSES.client]


PROBES = ("toexpired.chain.test.", "tobadds.chain.test.", "tounsigned.chain.test.",
          "todead.chain.test.", "www.sec.test.")
REPEATED = ("toexpired.chain.test.", "www.sec.test.")
"""Asked a second time: answered from cache."""


@pytest.fixture(scope="module")
def resolution_lab(tmp_path_factory: pytest.TempPathFactory,
                   request: pytest.FixtureRequest) -> Iterator[Lab]:
    skip_unless_lab()
    workdir = tmp_path_factory.mktemp("resolution-lab")
    cache = getattr(request.config, "cache", None)
    key_cache = cache.mkdir("dnssec-lab-keys") if cache is not None else None
    now = int(time.time())
    zones = build_zones(workdir, ADDRESSES.servers, now=now, key_cache=key_cache,
                        leaves=LEAVES)
    lab = ResolutionLab(workdir, ADDRESSES, zones, now)
    with contextlib.ExitStack() as stack:
        stack.enter_context(lab.running())
        stack.enter_context(LoopbackAddresses((BIND_RESOLVER, DEAD_SERVER)))
        stack.enter_context(_black_hole(DEAD_SERVER))
        bind_dir = workdir / "bind-resolver"
        bind_dir.mkdir()
        conf = bind_dir / "named.conf"
        conf.write_text(_bind_resolver_conf(lab, bind_dir))
        named = ManagedProcess("named-resolver", ["named", "-4", "-g", "-n", "1", "-c",
                                                  str(conf)], bind_dir / "named.log")
        # Ready when the log says so: a test query would fetch the root and test. keys before
        # the capture starts, and the audit could then judge nothing.
        named.start(lambda: "running" in _text(bind_dir / "named.log"))
        stack.callback(named.stop)
        yield lab


def _ask(server: str, qname: str) -> QueryResult:
    return query(qname, "A", server, source=ADDRESSES.client,
                 options=QueryOptions(dnssec=True, timeout=25))


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _resolve(lab: Lab, server: str, tmp: Path) -> Resolved:
    pcap = tmp / "resolution.pcap"
    answers: dict[str, list[QueryResult]] = {}
    with lab.capture(pcap, bpf=f"net {ADDRESSES.network}"):
        for qname in (*PROBES, *REPEATED):
            answers.setdefault(qname, []).append(_ask(server, qname))
    audit = run_audit(pcap, tmp / "out", lab.trust_anchor_file)
    return Resolved(server, answers, audit)


@pytest.fixture(scope="module", params=["unbound", "bind"])
def resolved(request: pytest.FixtureRequest, resolution_lab: Lab,
             tmp_path_factory: pytest.TempPathFactory) -> Resolved:
    server = ADDRESSES.resolver if request.param == "unbound" else BIND_RESOLVER
    return _resolve(resolution_lab, server, tmp_path_factory.mktemp(request.param))


def _first_failure(resolved: Resolved, qname: str) -> dict[str, Any]:
    assert resolved.answers[qname][0].rcode == "SERVFAIL", resolved.answers[qname][0].output
    answers = resolved.client_answers(qname)
    assert answers, f"no client answer for {qname} in the capture"
    resolution = answers[0]["resolution"]
    assert resolution is not None and resolution["failed"], answers[0]
    return dict(resolution)


def _codes(resolution: dict[str, Any]) -> set[str]:
    return {c for answer in resolution["causing"] for c in answer["codes"]}


def test_cname_into_an_expired_zone(resolved: Resolved) -> None:
    resolution = _first_failure(resolved, "toexpired.chain.test.")
    assert resolution["cause"] == "bogus_upstream", resolution
    assert "signature_expired" in _codes(resolution), resolution
    assert resolution["causing"][0]["zone"] == "expired.test.", resolution
    assert resolution["explanation"].startswith("SERVFAIL for toexpired.chain.test. A: ")
    assert "its signature expired at " in resolution["explanation"]
    frames = {r["frame"] for r in resolved.audit.records}
    assert {a["frame"] for a in resolution["causing"]} <= frames


def test_a_ds_that_matches_no_key(resolved: Resolved) -> None:
    resolution = _first_failure(resolved, "tobadds.chain.test.")
    assert resolution["cause"] == "bogus_upstream", resolution
    assert "ds_mismatch" in _codes(resolution), resolution
    assert "badds.test." in resolution["explanation"]


def test_a_missing_dnskey(resolved: Resolved) -> None:
    resolution = _first_failure(resolved, "tounsigned.chain.test.")
    assert resolution["cause"] in ("dnskey_missing", "bogus_upstream"), resolution
    assert _codes(resolution) & {"dnskey_missing", "rrsigs_missing"}, resolution
    assert "unsigned.test." in resolution["explanation"]


def test_a_dead_server_is_a_timeout_not_bogus_data(resolved: Resolved) -> None:
    if resolved.answers["todead.chain.test."][0].rcode is None:
        # Unbound 1.17 here keeps the client waiting (no SERVFAIL within 25 s) once the only
        # server of a zone is marked down: there is no client answer to explain.
        assert not resolved.client_answers("todead.chain.test.")
        pytest.skip(f"{resolved.resolver} sent no answer for a zone whose server is dead")
    resolution = _first_failure(resolved, "todead.chain.test.")
    assert resolution["cause"] == "upstream_timeout", resolution
    assert {a["server"] for a in resolution["causing"]} == {DEAD_SERVER}, resolution
    assert all(a["frame"] is None for a in resolution["causing"])
    assert "bogus" not in resolution["explanation"] and "timeout" in resolution["explanation"]


def test_a_repeated_failure_from_cache(resolved: Resolved) -> None:
    first, again = resolved.client_answers("toexpired.chain.test.")[:2]
    resolution = again["resolution"]
    if resolution["from_cache"]:
        assert resolution["cause"] == "cached_failure", resolution
        assert resolution["causing"] == first["resolution"]["causing"]
        assert resolution["upstream_frames"] == []
    else:  # the resolver fetched again (BIND keeps no bogus data): explained afresh
        assert resolution["cause"] == "bogus_upstream", resolution
    if resolved.resolver == ADDRESSES.resolver:  # Unbound keeps bogus data (val-bogus-ttl)
        assert resolution["from_cache"], resolution


def test_a_good_answer_is_linked_then_served_from_cache(resolved: Resolved) -> None:
    first, again = resolved.client_answers("www.sec.test.")[:2]
    assert first["resolution"]["failed"] is False and first["resolution"]["cause"] is None
    assert first["resolution"]["upstream_frames"], first
    assert again["resolution"]["from_cache"] and not again["resolution"]["upstream_frames"]


def test_the_resolvers_ede_is_held_against_the_capture(resolved: Resolved) -> None:
    checks = [r["resolution"]["ede_check"] for r in resolved.audit.records
              if r["resolution"] and r["resolution"]["ede_check"]]
    if resolved.resolver == ADDRESSES.resolver:
        assert checks, "Unbound with ede: yes sent no EDE"
    disagreements = [c for c in checks if c["agrees"] is False]
    assert not disagreements, disagreements

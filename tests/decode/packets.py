"""Builders for decode tests: reference packets (scapy layers, tests only) and frames."""

from __future__ import annotations

import struct
from typing import Any

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from auditor.capture.frame import Frame, LinkType
from auditor.decode.dissect import IPDatagram, dissect
from auditor.ledger import Ledger

V4_SRC = "192.0.2.1"
V4_DST = "198.51.100.53"
V6_SRC = "2001:db8::1"
V6_DST = "2001:db8:0:1::53"
TS = 1_700_000_000_000_000_000


def frame(
    data: bytes,
    linktype: int = LinkType.ETHERNET,
    *,
    number: int = 1,
    ts_ns: int = TS,
    wirelen: int | None = None,
    capture: str = "test.pcap",
    interface: int = 0,
    interface_name: str | None = None,
) -> Frame:
    """A captured frame; ``wirelen`` defaults to the captured length (no snaplen cut)."""
    return Frame(
        capture=capture,
        number=number,
        ts_ns=ts_ns,
        linktype=int(linktype),
        data=data,
        wirelen=len(data) if wirelen is None else wirelen,
        interface=interface,
        interface_name=interface_name,
    )


def udp4(payload: bytes = b"dns-payload", *, sport: int = 53, dport: int = 33333, **ip: Any) -> IP:
    """A reference IPv4/UDP packet (checksums filled in by scapy)."""
    fields: dict[str, Any] = {"src": V4_SRC, "dst": V4_DST, "ttl": 57, "id": 4321, **ip}
    return IP(**fields) / UDP(sport=sport, dport=dport) / payload


def udp6(payload: bytes = b"dns-payload", *, sport: int = 53, dport: int = 33333) -> IPv6:
    """A reference IPv6/UDP packet (checksums filled in by scapy)."""
    return IPv6(src=V6_SRC, dst=V6_DST, hlim=61) / UDP(sport=sport, dport=dport) / payload


def ether(ip_bytes: bytes, ethertype: int = 0x0800) -> bytes:
    """An Ethernet II header in front of ``ip_bytes``."""
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=ethertype)) + ip_bytes


def vlan_tags(*next_types: int) -> bytes:
    """The rest of a stack of VLAN tags after the outer TPID: each tag's TCI, then the next
    TPID or the final EtherType (IEEE 802.1Q 9.3)."""
    return b"".join(struct.pack("!HH", 100 + i, kind) for i, kind in enumerate(next_types))


def dissect_one(
    data: bytes, linktype: int = LinkType.ETHERNET, **kw: object
) -> tuple[IPDatagram | None, Ledger]:
    """Dissect one frame in a fresh ledger (with the frame counted as read)."""
    ledger = Ledger()
    ledger.read()
    return dissect(frame(data, linktype, **kw), ledger), ledger  # type: ignore[arg-type]

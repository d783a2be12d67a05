"""Live capture: the default BPF compiles and passes DNS and every fragment, the privilege
error names what is missing, and real sockets on lo (and a second interface) deliver frames."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from auditor.capture.frame import Frame, LinkType
from auditor.capture.live import (
    LiveCapture,
    _accept_whole_frames,
    _compile_with_libpcap,
    _compile_with_tcpdump,
    compile_bpf,
    default_filter,
    privilege_error,
)
from auditor.errors import CaptureError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="packet sockets need root")


def test_default_filter_names_every_port_and_fragments() -> None:
    text = default_filter({53, 5353})
    assert "port 53" in text and "port 5353" in text
    assert "ip[6:2] & 0x1fff != 0" in text and "ip6[6] == 44" in text


@pytest.mark.parametrize("linktype", [LinkType.ETHERNET, LinkType.RAW])
def test_default_filter_compiles(linktype: LinkType) -> None:
    program = compile_bpf(default_filter(), linktype)
    assert program and len(program) % 8 == 0


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_tcpdump_fallback_compiles_the_same_program_as_libpcap() -> None:
    expression = default_filter({53, 853})
    by_tcpdump = _compile_with_tcpdump(expression, LinkType.ETHERNET)
    by_libpcap = _compile_with_libpcap(expression, LinkType.ETHERNET)
    assert _accept_whole_frames(by_tcpdump) == _accept_whole_frames(by_libpcap)
    assert _accept_whole_frames(by_libpcap) == compile_bpf(expression, LinkType.ETHERNET)


def test_a_bad_filter_is_a_capture_error() -> None:
    with pytest.raises(CaptureError, match="cannot compile"):
        compile_bpf("port and and", LinkType.ETHERNET)


def test_privilege_error_names_root_and_cap_net_raw() -> None:
    message = str(privilege_error("eth0"))
    assert "eth0" in message and "root" in message and "CAP_NET_RAW" in message


def _collect(capture: LiveCapture, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frames.extend(capture.poll(0.05))
    return frames


@needs_root
def test_unknown_interface_is_named() -> None:
    with pytest.raises(CaptureError, match="no such network interface"):
        LiveCapture(["no-such-if0"], default_filter())


@needs_root
@pytest.mark.integration
def test_lo_capture_passes_dns_and_fragments_and_nothing_else() -> None:
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.packet import Raw
    from scapy.sendrecv import send

    marker = uuid.uuid4().bytes
    address = "127.53.99.1"
    capture = LiveCapture(["lo"], f"host {address} and ({default_filter()})")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(marker, (address, 53))
            sock.sendto(marker, (address, 54))
        big = IP(src="127.0.0.1", dst=address, id=4242) / UDP(sport=5353, dport=53) / Raw(
            marker * 200)
        pieces = list(fragment(big, fragsize=800))
        for piece in pieces:
            send(piece, iface="lo", verbose=False)
        frames = _collect(capture, 1.0)
        counters = capture.counters()
    finally:
        capture.close()
    to_53 = [f for f in frames if marker in f.data and b"\x00\x35" in f.data[34:38]]
    assert len(to_53) >= 1
    assert not [f for f in frames if f.data[36:38] == b"\x00\x36"]  # port 54 filtered out
    fragments = [f for f in frames if f.data[18:20] == (4242).to_bytes(2, "big")]
    assert len(fragments) == len(pieces) >= 3  # each once: lo's outgoing copies are skipped
    assert all(f.capture == "lo" and f.linktype == LinkType.ETHERNET for f in frames)
    assert [f.number for f in frames] == list(range(1, len(frames) + 1))
    assert abs(frames[0].ts_ns / 1e9 - time.time()) < 60
    assert counters["dropped"] == 0


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str]]:
    """A veth pair made for the test (nothing else is on it), removed afterwards."""
    ours, peer = f"dla{os.getpid() % 100000}", f"dlb{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", ours, "type", "veth", "peer", "name", peer],
                   check=True)
    try:
        for name in (ours, peer):
            subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield ours, peer
    finally:
        subprocess.run(["ip", "link", "del", ours], check=False)


@needs_root
@pytest.mark.integration
def test_several_interfaces_in_one_capture(veth_pair: tuple[str, str]) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.sendrecv import sendp

    marker = uuid.uuid4().bytes
    ours, peer = veth_pair
    capture = LiveCapture(["lo", ours], "udp port 53")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(marker, ("127.53.99.2", 53))
        sendp(Ether() / IP(src="127.0.0.1", dst="127.53.99.3") / UDP(sport=1, dport=53)
              / Raw(marker), iface=peer, verbose=False)
        frames = [f for f in _collect(capture, 1.0) if marker in f.data]
    finally:
        capture.close()
    assert {f.capture for f in frames} == {"lo", ours}

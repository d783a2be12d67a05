"""Hypothesis strategies for hostile input at every layer: DNS messages (compression loops,
wrong counts, wrong RDLENGTH, odd RRSIG/DNSKEY/NSEC3/OPT fields), UDP/TCP over IPv4/IPv6 in
Ethernet frames (fragments, odd header fields), and pcap/pcapng files of such frames."""

from __future__ import annotations

import struct

from hypothesis import strategies as st


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

# --- DNS ---------------------------------------------------------------------------------

_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "TXT": 16, "AAAA": 28, "DS": 43,
          "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "NSEC3": 50, "NSEC3PARAM": 51, "OPT": 41}
_ZONE = b"\x07example\x00"


@st.composite
def labels(draw: st.DrawFn) -> bytes:
    """A wire name: plain labels, sometimes with a compression pointer (to anywhere, itself
    included: loops), an over-long label or no terminator."""
    parts = draw(st.lists(st.binary(min_size=1, max_size=12), max_size=4))
    name = b"".join(bytes((len(p),)) + p for p in parts)
    ending = draw(st.sampled_from(["root", "zone", "pointer", "loop", "long", "cut"]))
    if ending == "root":
        return name + b"\x00"
    if ending == "zone":
        return name + _ZONE
    if ending == "pointer":
        return name + struct.pack("!H", 0xC000 | draw(st.integers(0, 0x3FFF)))
    if ending == "loop":
        return name + b"\xc0\x0c"  # points at the question name: a loop when inside it
    if ending == "long":
        return name + bytes((draw(st.integers(64, 255)),)) + b"x" * 8 + b"\x00"
    return name


def _type_bitmap(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=12))
    window, length = draw(st.integers(0, 255)), draw(st.integers(0, 40))
    return bytes((window, length)) + draw(st.binary(min_size=min(length, 32), max_size=32))


@st.composite
def rdata(draw: st.DrawFn, rtype: int) -> bytes:
    """Record data for ``rtype``: mostly shaped like the type with odd field values, sometimes
    random bytes."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=40))
    if rtype == 46:  # RRSIG, RFC 4034 3.1
        return (struct.pack("!HBBIIIH", draw(st.sampled_from([1, 48, 46, 0, 65535])),
                            draw(st.sampled_from([8, 13, 15, 253, 0, 255])),
                            draw(st.integers(0, 255)), draw(st.integers(0, 2**32 - 1)),
                            draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                            draw(st.integers(0, 65535)))
                + draw(labels()) + draw(st.binary(max_size=72)))
    if rtype == 48:  # DNSKEY, RFC 4034 2.1
        return (struct.pack("!HBB", draw(st.sampled_from([256, 257, 0, 0xFFFF, 385])),
                            draw(st.sampled_from([3, 0, 255])),
                            draw(st.sampled_from([8, 13, 15, 5, 253, 0])))
                + draw(st.sampled_from([b"", b"\x00", b"\x03\x01\x00\x01", b"\xff" * 3]))
                + draw(st.binary(max_size=64)))
    if rtype == 50:  # NSEC3, RFC 5155 3.2
        salt = draw(st.binary(max_size=8))
        hashed = draw(st.binary(max_size=24))
        return (struct.pack("!BBH", draw(st.sampled_from([1, 0, 2, 255])),
                            draw(st.integers(0, 255)),
                            draw(st.sampled_from([0, 1, 150, 2500, 65535])))
                + bytes((draw(st.sampled_from([len(salt), 255])),)) + salt
                + bytes((draw(st.sampled_from([len(hashed), 255, 0])),)) + hashed
                + _type_bitmap(draw))
    if rtype == 47:  # NSEC, RFC 4034 4.1
        return draw(labels()) + _type_bitmap(draw)
    if rtype == 43:  # DS, RFC 4034 5.1
        return (struct.pack("!HBB", draw(st.integers(0, 65535)),
                            draw(st.sampled_from([8, 13, 0, 253])),
                            draw(st.sampled_from([1, 2, 4, 0, 255])))
                + draw(st.binary(max_size=48)))
    if rtype == 1:
        return draw(st.binary(min_size=4, max_size=4))
    if rtype == 28:
        return draw(st.binary(min_size=16, max_size=16))
    if rtype in (2, 5):
        return draw(labels())
    if rtype == 41:  # OPT options, RFC 6891 6.1.2; 15 = EDE (RFC 8914)
        code = draw(st.sampled_from([15, 10, 8, 12, 0]))
        body = draw(st.binary(max_size=12))
        length = draw(st.sampled_from([len(body), len(body) + 5, 0]))
        return struct.pack("!HH", code, length) + body
    return draw(st.binary(max_size=32))


@st.composite
def record(draw: st.DrawFn) -> bytes:
    """A resource record; its RDLENGTH is sometimes wrong."""
    rtype = draw(st.sampled_from(sorted(_TYPES.values())) | st.integers(0, 65535))
    owner = draw(st.sampled_from([b"\xc0\x0c", b"\x00", _ZONE]) | labels())
    body = draw(rdata(rtype))
    length = len(body) if draw(st.integers(0, 4)) else draw(st.integers(0, 65535))
    rclass = 1 if rtype != 41 else draw(st.sampled_from([512, 1232, 4096, 0]))
    ttl = draw(st.sampled_from([300, 0, 2**31, 0x00008000]))  # 0x8000: OPT DO bit
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, length) + body


@st.composite
def dns_message(draw: st.DrawFn, response: bool | None = None) -> bytes:
    """A DNS message whose header counts may disagree with what follows."""
    is_response = draw(st.booleans()) if response is None else response
    flags = draw(st.integers(0, 0xFFFF)) & ~0x8000 | (0x8000 if is_response else 0)
    if draw(st.integers(0, 3)):
        flags &= ~0x7800  # mostly opcode QUERY
    question = draw(labels()) + struct.pack("!HH", draw(st.sampled_from([1, 28, 48, 43, 255])),
                                            draw(st.sampled_from([1, 1, 3, 255])))
    records = draw(st.lists(record(), max_size=6))
    split = sorted(draw(st.lists(st.integers(0, len(records)), min_size=2, max_size=2)))
    counts = [1, split[0], split[1] - split[0], len(records) - split[1]]
    if draw(st.integers(0, 3)) == 0:
        counts = [draw(st.integers(0, 65535)) for _ in range(4)]
    header = struct.pack("!HHHHHH", draw(st.integers(0, 65535)), flags, *counts)
    return header + question + b"".join(records)


# --- frames ------------------------------------------------------------------------------

CLIENT4, SERVER4 = bytes((192, 0, 2, 10)), bytes((192, 0, 2, 53))
CLIENT6, SERVER6 = bytes.fromhex("20010db8" + "0" * 22 + "10"), bytes.fromhex(
    "20010db8" + "0" * 22 + "53")


def _ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int, frag: int,
          ttl: int, total: int | None = None) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total or 20 + len(payload), ident, frag,
                         ttl, proto, 0, src, dst)
    return header[:10] + checksum(header).to_bytes(2, "big") + header[12:] + payload


def _transport(proto: int, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes,
               seq: int, flags: int) -> bytes:
    if proto == 17:
        body = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    else:
        body = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, flags, 65535, 0, 0)
        body += payload
    pseudo = (src + dst + struct.pack("!BBH", 0, proto, len(body)) if len(src) == 4
              else src + dst + struct.pack("!I3xB", len(body), proto))
    value = checksum(pseudo + body) or 0xFFFF
    at = 6 if proto == 17 else 16
    return body[:at] + value.to_bytes(2, "big") + body[at + 2:]


@st.composite
def frame(draw: st.DrawFn) -> bytes:
    """An Ethernet frame carrying a DNS message over UDP or TCP (IPv4 or IPv6), sometimes as
    an IPv4 fragment, sometimes with odd header fields or cut short."""
    response = draw(st.booleans())
    payload = draw(dns_message(response=response))
    six = draw(st.integers(0, 3)) == 0
    client, server = (CLIENT6, SERVER6) if six else (CLIENT4, SERVER4)
    src, dst = (server, client) if response else (client, server)
    sport, dport = (53, 40000) if response else (40000, 53)
    tcp = draw(st.integers(0, 3)) == 0
    if tcp:
        payload = struct.pack("!H", draw(st.sampled_from([len(payload), 65535, 3]))) + payload
        flags = draw(st.sampled_from([0x18, 0x10, 0x02, 0x12, 0x11, 0x04, 0x3F]))
        seq = draw(st.sampled_from([1, 0, 2**32 - 1, 1000]))
        body = _transport(6, src, dst, sport, dport, payload, seq, flags)
    else:
        body = _transport(17, src, dst, sport, dport, payload, 0, 0)
    proto = 6 if tcp else 17
    if six:
        packet = struct.pack("!IHBB16s16s", 0x6000_0000, len(body), proto,
                             draw(st.integers(0, 255)), src, dst) + body
        ethertype = 0x86DD
    else:
        frag = draw(st.sampled_from([0x4000, 0x4000, 0x2000, 0x0001, 0x2003, 0]))
        packet = _ipv4(src, dst, proto, body, draw(st.integers(0, 3)), frag,
                       draw(st.integers(0, 255)),
                       draw(st.sampled_from([None, None, 20, 65535])))
        ethertype = 0x0800
    data = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02" + struct.pack("!H", ethertype)
    data += packet
    if draw(st.integers(0, 7)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


# --- capture files -----------------------------------------------------------------------

@st.composite
def pcap_file(draw: st.DrawFn, frames: st.SearchStrategy[bytes] | None = None) -> bytes:
    """A classic pcap (either byte order, µs or ns) of hostile frames; record lengths are
    sometimes wrong and the file sometimes ends mid-record."""
    order = draw(st.sampled_from(["<", ">"]))
    magic = draw(st.sampled_from([0xA1B2C3D4, 0xA1B23C4D]))
    snaplen = draw(st.sampled_from([65535, 96, 0, 262144]))
    data = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen,
                       draw(st.sampled_from([1, 1, 1, 101, 113, 0, 276])))
    for index, body in enumerate(draw(st.lists(frames or frame(), min_size=1, max_size=8))):
        caplen = len(body) if draw(st.integers(0, 9)) else draw(st.integers(0, 2**32 - 1))
        wirelen = max(caplen, len(body)) if draw(st.booleans()) else len(body)
        ts = 1_748_779_200 + index
        data += struct.pack(order + "IIII", ts, draw(st.integers(0, 999_999)), caplen,
                            wirelen) + body
    if draw(st.integers(0, 7)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _block(order: str, kind: int, body: bytes, bad_length: int | None = None) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body) if bad_length is None else bad_length
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


@st.composite
def pcapng_file(draw: st.DrawFn) -> bytes:
    """A pcapng file: section header, interfaces (odd link types, resolution options) and
    enhanced/simple packet blocks, some with wrong lengths or unknown interface ids."""
    order = draw(st.sampled_from(["<", ">"]))
    data = _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    options = b""
    if draw(st.booleans()):  # if_tsresol (9): 10^-n or 2^-n
        options = struct.pack(order + "HH", 9, 1) + bytes((draw(st.integers(0, 255)),)) \
            + b"\x00" * 3 + struct.pack(order + "HH", 0, 0)
    data += _block(order, 1, struct.pack(order + "HHI", draw(st.sampled_from([1, 1, 101, 0])),
                                         0, 0) + options)
    for body in draw(st.lists(frame(), min_size=1, max_size=6)):
        kind = draw(st.sampled_from([6, 6, 6, 3, 2, 0x0BAD]))
        bad = None if draw(st.integers(0, 9)) else draw(st.integers(0, 200))
        if kind == 3:
            block = struct.pack(order + "I", len(body)) + body
        else:
            interface = 0 if draw(st.integers(0, 9)) else draw(st.integers(1, 5))
            block = struct.pack(order + "IIIII", interface, 0x00061234, 0x56789ABC,
                                len(body), len(body)) + body
        data += _block(order, kind, block, bad)
    if draw(st.integers(0, 7)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data

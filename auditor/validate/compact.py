"""Compact denial of existence (RFC 9824, "black lies") and the NSEC records online signers
make on the fly (RFC 4470 "white lies"): the NXNAME pseudo-type and the shapes that prove a name
absent although the record is owned by the name itself."""

from __future__ import annotations

import dns.name
import dns.rdatatype

NXNAME = int(dns.rdatatype.NXNAME)
"""RFC 9824 2.1: the NXNAME pseudo-type (128), set in the bitmap of an NSEC owned by a name
that does not exist."""

COMPACT_NXNAME_TEXT = "compact denial: the name does not exist (RFC 9824)"
"""The detail attached to an answer that RFC 9824 compact denial says does not exist."""


def successor(name: dns.name.Name) -> dns.name.Name:
    """The immediate canonical successor of ``name``: ``\\000.<name>`` (RFC 4471 3.1.2.1,
    RFC 9824 3: the next name of a compact denial NSEC). Names too long for one more label
    have no such successor and are returned unchanged."""
    try:
        return dns.name.Name((b"\x00", *name.labels))
    except dns.name.NameTooLong:
        return name


def says_nonexistent(types: frozenset[int]) -> bool:
    """RFC 9824 3: an NSEC owned by the query name whose bitmap holds NXNAME says the name
    does not exist (the responder answered NOERROR; a resolver may restore NXDOMAIN)."""
    return NXNAME in types


def is_compact_shape(owner: dns.name.Name, following: dns.name.Name) -> bool:
    """The NSEC spans only its owner: the next name is the owner's immediate successor
    (RFC 9824 3, RFC 4470 "epsilon" functions of RFC 4471)."""
    return following == successor(owner)


def is_minimally_covering(following: dns.name.Name) -> bool:
    """Whether an NSEC with next name ``following`` was made on the fly around one name
    rather than taken from a zone's chain: the next name is a successor built for the name
    asked, ``\\000.<name>`` (RFC 4471 absolute method, RFC 9824 3) or ``<label>\\000.<parent>``
    (RFC 4471 modified method, RFC 4470 3). Such records cannot be walked to list the zone
    (RFC 4470 1)."""
    first = following.labels[0] if following.labels else b""
    return first.endswith(b"\x00")

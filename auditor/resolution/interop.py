"""Valid answers that a validating resolver is known to reject: shapes to name when a client's
failure has no invalid upstream answer behind it."""

from __future__ import annotations

from dataclasses import dataclass

import dns.name
import dns.rcode
import dns.rdatatype

from auditor.evidence import ResponseEvidence, Section
from auditor.validate.denial_common import nsec_covers

_WILD = b"*"


@dataclass(frozen=True, slots=True)
class WildcardNextName:
    """An NXDOMAIN whose proof holds an NSEC with a next name below a wildcard
    (``\\) NSEC \\000.*.Z``, the example of RFC 4470 section 3). The proof is valid (the
    made-up next name names nothing, RFC 4470 3), but when a CNAME leads to the denied name,
    Unbound's ``validate_cname_noanswer_response`` walks that next name up to ``*.Z``, takes
    the wildcard for an existing empty non-terminal, i.e. for a NODATA proof of the name,
    and rejects the answer because another NSEC proves the name does not exist. The same
    proof asked for directly it accepts."""

    target: dns.name.Name
    """The last name of the chain, denied by the answer."""
    owner: dns.name.Name
    """Owner of the NSEC whose next name lies below the wildcard."""
    following: dns.name.Name
    """That NSEC's next name."""
    wildcard: dns.name.Name
    """The wildcard it lies below."""

    @property
    def better_next_name(self) -> dns.name.Name:
        """A next name that covers the wildcard without lying below it (``*\\000.Z``)."""
        return dns.name.Name((_WILD + b"\x00", *self.wildcard.labels[1:]))

    def reason(self) -> str:
        return (f"the answer is valid (RFC 4470 3), but its NSEC {self.owner} -> "
                f"{self.following} names a next name below the wildcard {self.wildcard}: "
                f"Unbound takes that wildcard for an existing empty non-terminal and rejects "
                f"the NXDOMAIN for {self.target} when a CNAME leads to it (\"CNAMEchain to "
                f"noanswer proves that name exists and not exists\"); the signer can use "
                f"{self.better_next_name} as next name instead")


def _chain_end(evidence: ResponseEvidence) -> dns.name.Name | None:
    """The name the answer denies: the last CNAME target, or the name asked."""
    name = evidence.qname
    cnames = {item.rrset.name: item.rrset for item in evidence.section(Section.ANSWER)
              if int(item.rrset.rdtype) == dns.rdatatype.CNAME}
    if name is None:
        return None
    for _ in range(len(cnames)):
        rrset = cnames.get(name)
        if rrset is None:
            break
        name = rrset[0].target  # type: ignore[attr-defined]
    return name


def _wildcard_above(owner: dns.name.Name, following: dns.name.Name,
                    target: dns.name.Name) -> dns.name.Name | None:
    """The wildcard that Unbound's ``nsec_proves_nodata`` finds by removing labels from the
    next name while it stays after the owner (val_nsec.c), when *target* lies below it."""
    name = following
    while owner < name and name.labels != (b"",):
        if target.is_subdomain(name):
            return None
        if name.labels[0] == _WILD and target != name.parent() and (
                target.is_subdomain(name.parent())):
            return name
        name = name.parent()
    return None


def wildcard_next_name(evidence: ResponseEvidence) -> WildcardNextName | None:
    """The shape described by `WildcardNextName` in *evidence*, or None."""
    if evidence.rcode != dns.rcode.NXDOMAIN:
        return None
    target = _chain_end(evidence)
    if target is None:
        return None
    nsecs = [(item.rrset.name, item.rrset[0].next)  # type: ignore[attr-defined]
             for item in evidence.section(Section.AUTHORITY)
             if int(item.rrset.rdtype) == dns.rdatatype.NSEC and len(item.rrset)]
    if not any(nsec_covers(owner, following, target) for owner, following in nsecs):
        return None
    for owner, following in nsecs:
        wildcard = _wildcard_above(owner, following, target)
        if wildcard is not None:
            return WildcardNextName(target, owner, following, wildcard)
    return None

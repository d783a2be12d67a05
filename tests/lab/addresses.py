"""Add and remove the lab's private 127.53.0.0/16 addresses on the loopback interface."""

from __future__ import annotations

import logging
import types
from collections.abc import Iterable

from tests.lab.tools import run

logger = logging.getLogger(__name__)

LAB_NETWORK = "127.53.0.0/16"
"""The loopback range reserved for the lab (clear of 127.0.0.1 and 127.0.0.53)."""


def loopback_addresses() -> set[str]:
    """Return the IPv4 addresses currently configured on `lo`."""
    output = run(["ip", "-o", "-4", "addr", "show", "dev", "lo"])
    found: set[str] = set()
    for line in output.splitlines():
        fields = line.split()
        if "inet" in fields:
            found.add(fields[fields.index("inet") + 1].split("/")[0])
    return found


class LoopbackAddresses:
    """Context manager adding /32 addresses to `lo` and removing, on exit, those it added.

    Idempotent: addresses already present are used and left in place; exit removes
    exactly the addresses this instance added, even when the body raised.
    """

    def __init__(self, addresses: Iterable[str]) -> None:
        self.addresses: tuple[str, ...] = tuple(dict.fromkeys(addresses))
        self.added: list[str] = []

    def __enter__(self) -> LoopbackAddresses:
        try:
            present = loopback_addresses()
            for address in self.addresses:
                if address not in present:
                    run(["ip", "addr", "add", f"{address}/32", "dev", "lo"])
                    self.added.append(address)
        except BaseException:
            self.remove_added()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.remove_added()

    def remove_added(self) -> None:
        """Remove every address this instance added (errors are logged, not raised)."""
        while self.added:
            address = self.added.pop()
            try:
                run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)
            except Exception:
                logger.exception("could not remove %s from lo", address)

"""One ``Limits`` with a preset per driver: the file preset is what the stages were tuned with
(the outputs of a file audit must not change with it), the live preset is ``LiveLimits``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auditor.decode import dissect
from auditor.decode.defrag import Defragmenter
from auditor.decode.tcpstream import TCPReassembler
from auditor.engine.limits import FILE_LIMITS, LIVE_LIMITS, Limits
from auditor.findings import zones
from auditor.forgery import ForgeryConfig
from auditor.live import LiveLimits
from auditor.messages import MessageParser
from auditor.pipeline import AuditOptions
from auditor.transactions import Matcher
from auditor.trust import KeyMaterial
from auditor.validate.reuse import VerdictCache


def _default(callable_: Callable[..., Any], name: str) -> Any:
    return inspect.signature(callable_).parameters[name].default


def test_file_preset_is_what_the_stages_default_to() -> None:
    limits = FILE_LIMITS
    assert limits.fragment_sets == _default(Defragmenter, "max_sets")
    assert limits.fragment_bytes == _default(Defragmenter, "max_bytes")
    assert limits.fragment_timeout_ns == _default(Defragmenter, "timeout_ns")
    assert limits.tcp_flows == _default(TCPReassembler, "max_flows")
    assert limits.tcp_bytes == _default(TCPReassembler, "max_total_bytes")
    assert limits.tcp_timeout_ns == _default(TCPReassembler, "timeout_ns")
    assert limits.pending_queries == _default(Matcher, "max_pending")
    assert limits.query_timeout_ns == _default(Matcher, "timeout_ns")
    assert limits.parse_cache == _default(MessageParser, "cache_size")
    assert limits.signed_copies == _default(KeyMaterial, "max_signed_copies")
    assert limits.denial_records == _default(KeyMaterial, "max_denial")
    assert limits.chain_rrsets == _default(KeyMaterial, "max_chain_rrsets")
    assert limits.verdict_cache == _default(VerdictCache, "max_entries")
    assert limits.verdict_cache_bytes == _default(VerdictCache, "max_bytes")
    assert limits.zones == zones.MAX_ZONES
    assert limits.address_memo == dissect.ADDRESS_MEMO_SIZE
    config = ForgeryConfig()
    assert (limits.forgery_entries, limits.holdon_waiting, limits.burst_window_ns) == (
        config.max_entries, config.holdon_waiting, config.burst_window_ns)


def test_presets_and_overrides() -> None:
    assert LiveLimits is Limits and LiveLimits() == LIVE_LIMITS == Limits.live()
    assert Limits.file(zones=7) == Limits(**{**_fields(FILE_LIMITS), "zones": 7})
    assert Limits.live(hold_ns=1).zones == LIVE_LIMITS.zones
    assert AuditOptions(captures=("x",), out_dir=Path("out")).limits == FILE_LIMITS
    assert FILE_LIMITS.hold_ns == 5_000_000_000  # single-pass (standard input) wait


def _fields(limits: Limits) -> dict[str, int]:
    return {name: getattr(limits, name) for name in Limits.__dataclass_fields__}


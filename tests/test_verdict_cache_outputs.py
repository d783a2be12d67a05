"""The verdict cache changes no output: responses.jsonl and findings.jsonl are byte-identical
with it on and off (issue 14), on the sample, the lab-made differential captures, real
captures and generated benchmark traffic, judged at capture time and at a fixed time."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest

from auditor.pipeline import AuditOptions, AuditOutcome, run_audit
from tests.realcaps import REALCAPS, absent_outside_ci

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "differential" / "fixtures"
COMPARED = ("responses.jsonl", "findings.jsonl")
REAL = (
    "zeek/dns-edns-ecs.pcap",
    "nDPI/dns_fragmented.pcap",
    "zeek/dnssec__rrsig.pcap",
    "zeek/dns-two-responses.pcap",
    "zeek/dnssec__dnskey2.pcap",
)
"""Real captures with repeated answers (hits), expired signatures (windows of one second)
and DNSSEC material, judged with every anchor of the corpus."""


def _audit(
    capture: Path, out: Path, anchors: tuple[Path, ...], *, cache: bool, at_ns: int | None = None
) -> AuditOutcome:
    options = AuditOptions(
        captures=(str(capture),),
        out_dir=out,
        verdict_cache=cache,
        trust_anchors=tuple(str(a) for a in anchors),
        at_ns=at_ns,
        report_formats=frozenset(),
    )
    return run_audit(options)


def _assert_same(
    capture: Path, tmp_path: Path, anchors: tuple[Path, ...], at_ns: int | None = None
) -> dict[str, int]:
    on = _audit(capture, tmp_path / "on", anchors, cache=True, at_ns=at_ns)
    _audit(capture, tmp_path / "off", anchors, cache=False, at_ns=at_ns)
    for name in COMPARED:
        assert (tmp_path / "on" / name).read_bytes() == (tmp_path / "off" / name).read_bytes()
    counts: dict[str, int] = on.stats["validation"]["verdict_cache"]
    return counts


def test_sample_capture_identical_with_and_without_cache(tmp_path: Path) -> None:
    counts = _assert_same(
        ROOT / "captures" / "sample-dnssec.pcap",
        tmp_path,
        (ROOT / "captures" / "sample-dnssec.anchor",),
    )
    assert counts["hits"] > 0


def test_sample_capture_at_fixed_time_identical(tmp_path: Path) -> None:
    # --at: signatures judged at one time, the resolver's claims at capture time.
    _assert_same(
        ROOT / "captures" / "sample-dnssec.pcap",
        tmp_path,
        (ROOT / "captures" / "sample-dnssec.anchor",),
        at_ns=1_900_000_000 * 10**9,
    )


@pytest.mark.parametrize(
    "fixture", sorted(p.name for p in FIXTURES.glob("*/capture.pcap") for p in [p.parent])
)
def test_lab_captures_identical_with_and_without_cache(fixture: str, tmp_path: Path) -> None:
    directory = FIXTURES / fixture
    counts = _assert_same(directory / "capture.pcap", tmp_path, (directory / "root.ds",))
    assert counts["hits"] > 0


@pytest.mark.parametrize("name", REAL)
@pytest.mark.skipif(absent_outside_ci(REALCAPS / REAL[0]), reason="realcaps not checked out")
def test_real_captures_identical_with_and_without_cache(name: str, tmp_path: Path) -> None:
    anchors = tuple(sorted((REALCAPS / "anchors").glob("*.anchor")))
    _assert_same(REALCAPS / name, tmp_path, anchors)


def _make_capture_module() -> object:
    path = ROOT / "benchmarks" / "make_capture.py"
    spec = importlib.util.spec_from_file_location("bench_make_capture_cache", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("ttl_decay", [False, True])
def test_benchmark_traffic_identical_with_and_without_cache(
    ttl_decay: bool, tmp_path: Path
) -> None:
    make_capture = _make_capture_module()
    capture = tmp_path / "bench.pcap"
    make_capture.write_capture(capture, 6_000, 2, ttl_decay=ttl_decay)  # type: ignore[attr-defined]
    counts = _assert_same(capture, tmp_path, (capture.with_suffix(".anchor"),))
    assert counts["hits"] > 0


def test_single_pass_standard_input_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Standard input is judged in one pass while keys arrive: the key material's generation
    # is part of the key, and held responses are judged again when it changes.
    directory = FIXTURES / "seed1-s00033"
    for cache in (True, False):
        stream = io.TextIOWrapper(io.BytesIO((directory / "capture.pcap").read_bytes()))
        monkeypatch.setattr(sys, "stdin", stream)
        options = AuditOptions(
            captures=("-",),
            out_dir=tmp_path / str(cache),
            verdict_cache=cache,
            report_formats=frozenset(),
            trust_anchors=(str(directory / "root.ds"),),
        )
        run_audit(options)
    for name in COMPARED:
        assert (tmp_path / "True" / name).read_bytes() == (tmp_path / "False" / name).read_bytes()

"""Fuzzing in the suite (issue 13): hostile input at every stage never raises, and every frame
read is settled exactly once. A short fixed-seed slice (``derandomize``); the long run is
``benchmarks/fuzz.py``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.capture.frame import Frame
from auditor.capture.sources import CaptureSet
from auditor.errors import CaptureError
from auditor.evidence import build_evidence
from auditor.findings.validation import ValidationFindings
from auditor.forgery import ForgeryDetector
from auditor.ledger import Ledger
from auditor.messages import MessageParser, read_records, summarise
from auditor.pipeline import DecodeChain, judge_response
from auditor.transactions import Transaction
from auditor.trust import KeyMaterial, KeyView, load_anchors
from auditor.validate import RFC8624, Validator
from tests.fuzz.strategies import dns_message, frame, pcap_file, pcapng_file
from tests.fuzz.target import audit_bytes, mutate, sample_frames
from tests.helpers import wire_message

FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=8, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@FAST
@given(dns_message())
def test_parse_stage_never_raises(data: bytes) -> None:
    summarise(data)
    ledger = Ledger()
    ledger.frames_read = 1
    observed = MessageParser(ledger).feed(wire_message(data))
    assert ledger.pending == 0
    if observed is not None:
        assert observed.parsed.message is not None or observed.parsed.problems
    read_records(data)  # a Message or None (declined), never an exception


@FAST
@given(query=dns_message(response=False), response=dns_message(response=True),
       matched=st.booleans())
def test_evidence_validation_and_findings_never_raise(query: bytes, response: bytes,
                                                     matched: bool) -> None:
    asked = MessageParser(Ledger()).feed(wire_message(query))
    answered = MessageParser(Ledger()).feed(
        wire_message(response, src="198.51.100.53", sport=53, dst="192.0.2.10", dport=40000,
                     frame=2, ts_ns=1_700_000_000_100_000_000))
    assert answered is not None
    evidence = build_evidence(Transaction(answered, asked if matched else None, 0))
    material = KeyMaterial()
    material.observe(evidence)
    validator = Validator(KeyView(load_anchors([]), material), RFC8624)
    verdict = judge_response(validator, evidence)
    detector = ForgeryDetector()
    if asked is not None:
        detector.observe_query(asked)
    for source in (detector, ValidationFindings()):
        list(source.feed(evidence, verdict))
        list(source.flush())


@FAST
@given(st.lists(frame(), min_size=1, max_size=12))
def test_decode_chain_settles_every_frame(frames: list[bytes]) -> None:
    ledger = Ledger()
    chain = DecodeChain(ledger)
    for number, data in enumerate(frames, 1):
        chain.feed(Frame("fuzz.pcap", number, 1_748_779_200_000_000_000 + number * 1000, 1,
                         data, len(data)))
    chain.flush()
    assert ledger.frames_read == len(frames)
    assert ledger.pending == 0
    assert sum(ledger.as_dict().values()) == len(frames)


@FAST
@given(st.one_of(pcap_file(), pcapng_file()))
def test_capture_readers_never_raise_but_capture_errors(tmp_path_factory: pytest.TempPathFactory,
                                                        data: bytes) -> None:
    path = tmp_path_factory.mktemp("cap") / "fuzz.pcap"
    path.write_bytes(data)
    try:
        with CaptureSet([str(path)]) as frames:
            for _ in frames:
                pass
    except CaptureError as exc:
        assert "fuzz.pcap" in str(exc)


@SLOW
@given(st.one_of(pcap_file(), pcapng_file()))
def test_whole_audit_path(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    audit_bytes(data, tmp_path_factory.mktemp("audit"))  # raises on a crash or lost frame


def test_mutation_slice(tmp_path: Path) -> None:
    """A fixed-seed slice of ``benchmarks/fuzz.py``'s mutation engine over the sample."""
    rng = random.Random(20261206)
    frames = sample_frames()
    for _ in range(25):
        audit_bytes(mutate(rng, frames), tmp_path)

"""JSON Lines through orjson are byte for byte what the standard library wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from auditor.report.files import _default, json_line


@dataclass(frozen=True)
class _Point:
    x: int


RECORDS = [
    {"a": 1, "b": "text", "c": [1, 2, None, True], "d": {"e": False}},
    {"tiny": 1e-05, "small": 0.0001, "exp": 1e16, "neg": -2.5e-9, "plain": 0.5},
    {"list": [1e-7, 3.25], "nested": {"deep": [{"x": 4e-30}]}},
    {"accents": "caf\u00e9 \u2014 \u00fc", "quote": '"\\\n\t'},
    {"set": frozenset({3}), "tuple": (1, 2), "point": _Point(1), 7: "int key"},
    {"ts": "2025-05-01T00:00:00.000000Z", "n": 10**18},
]


@pytest.mark.parametrize("record", RECORDS)
def test_line_equals_the_standard_library(record: dict[object, object]) -> None:
    expected = json.dumps(record, separators=(",", ":"), default=_default) + "\n"
    assert json_line(record) == expected.encode()  # type: ignore[arg-type]


def test_float_free_records_skip_the_check() -> None:
    record = {"a": [1, 2], "b": "x 1e5 0.00001"}
    expected = json.dumps(record, separators=(",", ":")) + "\n"
    assert json_line(record, floats=False) == expected.encode()

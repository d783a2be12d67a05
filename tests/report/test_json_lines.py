"""JSON Lines through orjson are byte for byte what the standard library wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.report.files import JsonLinesWriter, _default, json_head, json_line


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


# --- records whose first fields came encoded (``json_head``, ``write_after``) ------------

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12)
_FIELDS = st.dictionaries(_TEXT, _VALUES, max_size=6)


@settings(max_examples=300, deadline=None)
@given(head=_FIELDS, rest=_FIELDS)
def test_a_record_written_after_its_encoded_head_is_the_whole_records_line(
        tmp_path_factory: pytest.TempPathFactory, head: dict[str, object],
        rest: dict[str, object]) -> None:
    # Non-ASCII text (json escapes it, orjson would not), integers past 64 bits (orjson
    # refuses them), empty parts: the line is the one ``write`` makes of the merged record.
    rest = {key: value for key, value in rest.items() if key not in head}
    folder = tmp_path_factory.mktemp("lines")
    with JsonLinesWriter(folder / "whole.jsonl", floats=False) as whole, \
            JsonLinesWriter(folder / "after.jsonl", floats=False) as after:
        whole.write({**head, **rest})
        after.write_after(json_head(head), rest)
    assert (folder / "after.jsonl").read_bytes() == (folder / "whole.jsonl").read_bytes()
    assert after.count == 1


@pytest.mark.parametrize("options", [{"transform": dict}, {"floats": True}])
def test_writers_that_need_the_record_whole_refuse_an_encoded_head(
        tmp_path: Path, options: dict[str, Any]) -> None:
    with JsonLinesWriter(tmp_path / "x.jsonl", **options) as writer, \
            pytest.raises(ValueError, match="write_after"):
        writer.write_after(json_head({"a": 1}), {"resolution": None})

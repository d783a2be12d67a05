"""The exceptions we raise on purpose survive pickling: one raised in a worker process (a
Dask task, a ``--jobs`` harvester) reaches the process that reports it whole."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.errors import (
    AuditorError,
    CaptureError,
    ConfigError,
    KeyCacheError,
    ProcessLost,
    ReportInputError,
    TrustAnchorError,
)

WHERE = st.one_of(st.none(), st.integers(min_value=0, max_value=2**63))


@given(source=st.text(), problem=st.text(), where=WHERE)
def test_errors_with_a_source_come_back_equal(source: str, problem: str,
                                              where: int | None) -> None:
    for error in (CaptureError(source, problem, where), TrustAnchorError(source, problem, where),
                  ReportInputError(source, problem, where)):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error)
        assert str(again) == str(error)
        assert (again.source, again.problem) == (source, problem)
        assert vars(again) == vars(error)


@pytest.mark.parametrize("kind", [AuditorError, ConfigError, KeyCacheError, ProcessLost])
def test_plain_errors_come_back_equal(kind: type[AuditorError]) -> None:
    again = pickle.loads(pickle.dumps(kind("what went wrong")))
    assert type(again) is kind and str(again) == "what went wrong"

"""The findings catalogue: one table, well-formed entries, doctested rendering and merging."""

from __future__ import annotations

import doctest
import re
import string

import pytest

import auditor.findings.catalogue as catalogue
import auditor.findings.merge as merge
import auditor.findings.words as words
from auditor.findings.catalogue import CATALOGUE, Provenance, Severity, make_finding
from auditor.findings.codes import ValidationCode
from auditor.findings.merge import FindingMerger

_RFC = re.compile(r"^RFC \d+( [0-9A-Z.]+)?$")


@pytest.mark.parametrize("module", [catalogue, merge, words])
def test_doctests_pass(module: object) -> None:
    result = doctest.testmod(module, verbose=False)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_spec_is_well_formed_and_renders(code: str) -> None:
    spec = CATALOGUE[code]
    assert spec.code == code and re.fullmatch(r"[a-z][a-z0-9_]*", code)
    assert spec.title and isinstance(spec.severity, Severity)
    assert all(_RFC.match(ref) for ref in spec.rfcs), spec.rfcs
    fields = {f for _, f, _, _ in string.Formatter().parse(spec.template) if f}
    assert spec.params == fields
    rendered = spec.render({name: f"<{name}>" for name in fields})
    assert all(f"<{name}>" in rendered for name in fields)


def test_missing_parameter_is_named() -> None:
    with pytest.raises(KeyError, match="zone"):
        CATALOGUE["bogus_answer"].render({"server": "192.0.2.1", "reasons": "x"})


def test_finding_first_and_last_seen_default_to_provenance_time() -> None:
    found = make_finding("ds_mismatch", {"zone": "example."}, Provenance("c", (1,), 42))
    assert (found.count, found.first_seen_ns, found.last_seen_ns) == (1, 42, 42)


def test_validation_codes_have_plain_words() -> None:
    for code in ValidationCode:
        phrase = words.plain(code.value)
        assert phrase and "_" not in phrase
    assert words.plain(ValidationCode.BAD_SIGNATURE.value).startswith("signature does not")


def test_merger_is_bounded_by_distinct_keys() -> None:
    merger = FindingMerger(max_keys=2)
    for n in range(5):
        for repeat in range(3):
            merger.add("ds_mismatch", (f"z{n}.",), {"zone": f"z{n}."},
                       Provenance("c", (n * 10 + repeat + 1,), n * 10 + repeat))
    assert len(merger) == 2 and merger.dropped == 9
    found = list(merger.flush())
    assert [(f.params["zone"], f.count, f.first_seen_ns, f.last_seen_ns) for f in found] == [
        ("z0.", 3, 0, 2), ("z1.", 3, 10, 12)]
    assert list(merger.flush()) == []


def test_every_forgery_and_validation_finding_is_explained_in_the_findings_doc() -> None:
    from pathlib import Path

    from auditor.findings.catalogue import FORGERY_FINDINGS, VALIDATION_FINDINGS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "FINDINGS.md").read_text()
    undocumented = [spec.code for spec in (*FORGERY_FINDINGS, *VALIDATION_FINDINGS)
                    if f"{spec.code}" not in doc]
    assert not undocumented


def test_every_entry_says_what_to_do_with_its_own_parameters() -> None:
    import string

    from auditor.findings.catalogue import CATALOGUE

    for code, spec in CATALOGUE.items():
        assert spec.remediation.strip(), f"{code} has no remediation line"
        fields = {f for _, f, _, _ in string.Formatter().parse(spec.remediation) if f}
        assert fields <= spec.params, f"{code}: remediation needs {fields - spec.params}"
        rendered = spec.render_remediation({name: f"<{name}>" for name in spec.params})
        assert "{" not in rendered and rendered.endswith("."), (code, rendered)


def test_every_finding_code_has_one_catalogue_entry_and_every_entry_a_code() -> None:
    from auditor.anomaly import AnomalyCode
    from auditor.findings.catalogue import DECODE_FINDINGS
    from auditor.findings.codes import FindingCode

    assert set(CATALOGUE) == set(FindingCode)
    assert all(type(code) is FindingCode and spec.code is code
               for code, spec in CATALOGUE.items())
    assert [code.value for code in FindingCode] == [spec.code.value for spec in (
        *catalogue.DECODE_FINDINGS, *catalogue.VALIDATION_FINDINGS,
        *catalogue.ZONE_FINDINGS, *catalogue.FORGERY_FINDINGS)], "same families, same order"
    # The decode entries describe anomalies: their codes are the anomalies' own.
    assert {spec.code.value for spec in DECODE_FINDINGS} <= {a.value for a in AnomalyCode}


def test_a_finding_code_is_written_as_its_plain_value() -> None:
    # Values are a public contract (findings.jsonl, EVE, metrics labels, stats.json): every
    # writer must see the plain string, never the enum's repr.
    import json
    import pickle

    import orjson
    import pyarrow as pa

    from auditor.findings.codes import FindingCode
    from auditor.report.files import json_line
    from auditor.report.records import finding_record

    found = make_finding("ds_mismatch", {"zone": "example."},  # a string still finds its entry
                         Provenance("c", (1,), 42))
    assert found.code is FindingCode.DS_MISMATCH
    record = finding_record(found)
    assert str(record["code"]) == f"{found.code}" == "ds_mismatch"
    assert b'"code":"ds_mismatch"' in json_line(record)
    assert json.dumps({found.code: [found.code]}) == '{"ds_mismatch": ["ds_mismatch"]}'
    assert orjson.dumps({"code": found.code}) == b'{"code":"ds_mismatch"}'
    assert pa.array([found.code]).type == pa.string()
    assert pa.array([found.code]).to_pylist() == ["ds_mismatch"]
    assert pickle.loads(pickle.dumps(found.code)) is FindingCode.DS_MISMATCH
    assert CATALOGUE.get("ds_mismatch") is CATALOGUE[FindingCode.DS_MISMATCH]

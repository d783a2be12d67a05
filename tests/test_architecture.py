"""The import graph is the pipeline graph (docs/ARCHITECTURE.md): no stage reaches downstream."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "auditor"

LEAVES = (
    "auditor.errors",
    "auditor.ledger",
    "auditor.anomaly",
    "auditor.memo",
    "auditor.findings.codes",
    "auditor.findings.catalogue",
    "auditor.findings.words",
    "auditor.findings.merge",
)
"""Vocabulary any stage may use."""

STAGES: tuple[tuple[str, ...], ...] = (
    ("auditor.capture",),
    ("auditor.decode",),
    ("auditor.messages",),
    ("auditor.transactions",),
    ("auditor.evidence",),
    ("auditor.trust",),
    ("auditor.validate",),
    ("auditor.findings", "auditor.forgery", "auditor.resolution"),
    ("auditor.report",),
    ("auditor.engine",),
    ("auditor.pipeline", "auditor.live", "auditor.scale"),
    ("auditor.cli", "auditor.cli_live", "auditor.__main__"),
)
"""Stages in pipeline order; a module may import its own stage, upstream stages and leaves."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _rank(module: str) -> int | None:
    if module in ("auditor", "auditor.__init__") or any(
        module == leaf or module.startswith(leaf + ".") for leaf in LEAVES
    ):
        return None
    for rank, prefixes in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no stage: add it to STAGES or LEAVES")


def _imports(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_module_imports_only_upstream_stages_and_leaves(path: Path) -> None:
    module = _module_name(path)
    own = _rank(module)
    for imported in _imports(path):
        if imported != "auditor" and not imported.startswith("auditor."):
            continue
        rank = _rank(imported)
        if rank is None or own is None:
            continue
        assert rank <= own, f"{module} (stage {own}) imports downstream {imported} (stage {rank})"


def test_scapy_is_imported_per_layer_never_scapy_all() -> None:
    # scapy.all has import-time side effects (STYLE.md); import the layers needed.
    offenders = [str(p) for p in MODULES if "scapy.all" in _imports(p)]
    assert offenders == []


def test_the_live_driver_does_not_import_the_file_driver() -> None:
    # One engine, two drivers (issue 15): what both need lives in auditor/engine/.
    imported = _imports(PACKAGE / "live.py")
    assert "auditor.pipeline" not in imported
    assert "auditor.live" not in _imports(PACKAGE / "pipeline.py")


def test_the_engine_imports_no_driver() -> None:
    drivers = {"auditor.pipeline", "auditor.live", "auditor.scale", "auditor.cli",
               "auditor.cli_live"}
    for path in sorted((PACKAGE / "engine").glob("*.py")):
        wrong = {m for m in _imports(path) if any(m == d or m.startswith(d + ".")
                                                  for d in drivers)}
        assert wrong == set(), f"{path.name} imports drivers {wrong}"


_MEMO_CALLS = frozenset({"IdentityMemo", "OrderedDict", "dict", "set", "list", "deque",
                         "Counter", "defaultdict"})
"""Calls that make a mutable table: bound to a module name, it would be process-wide state."""

MODULE_TABLES: dict[tuple[str, str], str] = {
    ("auditor.messages", "_RDATATYPES"):
        "a constant table filled on demand: RdataType.make of a 16-bit field, the same in "
        "every run and process",
    ("auditor.decode.dissect", "_warned_linktypes"):
        "one warning per run and interface, keyed by the run's ledger (not a memo)",
    ("auditor.decode.dissect", "_noted_interfaces"):
        "one anomaly per run and interface, keyed by the run's ledger (not a memo)",
    ("auditor.scale.pickling", "_FIELDS"):
        "field names per pickled dataclass: constant per class",
    ("auditor.scale.pickling", "_RESTORERS"):
        "the function restoring each pickled dataclass from its field values: constant per "
        "class",
    ("auditor.scale.work", "_KEPT"):
        "a Dask worker's harvests, by run and shard, for the same shard's judging task in "
        "this process: a shortcut (a task elsewhere parses again, with the same result), "
        "never a memo a result depends on",
    ("auditor.report.check", "schema"):
        "the packaged JSON schemas, read once: constant",
}
"""Module-level mutable tables allowed, with why: a run's memos are objects handed to the
stages (``engine/caches.py``), never module state a worker process or Dask task cannot see."""


def _decorator_name(decorator: ast.expr) -> str:
    """``lru_cache`` of ``@functools.lru_cache(maxsize=8)``, ``cache`` of ``@cache``."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def _module_tables(path: Path) -> set[str]:
    """Names ``path`` binds at module level to an empty mutable table or a memo, and functions
    it memoises with ``functools.cache``/``lru_cache``."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.FunctionDef) and any(
                _decorator_name(d) in ("cache", "lru_cache") for d in node.decorator_list):
            found.add(node.name)
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        empty = isinstance(value, ast.Dict | ast.List | ast.Set) and not (
            getattr(value, "keys", None) or getattr(value, "elts", None))
        call = isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and (
            value.func.id in _MEMO_CALLS)
        if empty or call:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found.update(t.id for t in targets if isinstance(t, ast.Name))
    return found


def test_no_stage_keeps_a_memo_in_module_state() -> None:
    found = {(_module_name(path), name) for path in MODULES for name in _module_tables(path)}
    assert found - MODULE_TABLES.keys() == set()
    assert MODULE_TABLES.keys() - found == set(), "stale entries in MODULE_TABLES"


FINDING_CODE_SPELLINGS: dict[tuple[str, str], str] = {
    ("auditor.anomaly", "unsupported_linktype"):
        "AnomalyCode, the decode vocabulary: the anomaly its catalogue entry describes",
    ("auditor.anomaly", "fragment_overlap_conflict"):
        "AnomalyCode, the decode vocabulary: the anomaly its catalogue entry describes",
    ("auditor.ledger", "unsupported_linktype"):
        "Reason, a key of stats.json's frames (why a frame ended there), not a finding",
    ("auditor.ledger", "fragment_overlap_conflict"):
        "Reason, a key of stats.json's frames (why a frame ended there), not a finding",
    ("auditor.validate.denial", "nsec3_opt_out"):
        "ProofKind, how an insecure delegation was proven, not a finding",
    ("auditor.validate.denial", "nsec3_iterations"):
        "ProofKind, how an insecure delegation was proven, not a finding",
    ("auditor.report.tables", "nsec3_iterations"):
        "a zones.csv/zones.parquet column (ZoneHealthRow field), not a finding",
    ("auditor.report.tables", "nsec3_opt_out"):
        "a zones.csv/zones.parquet column (ZoneHealthRow field), not a finding",
    ("auditor.report.run", "trust_anchor_mismatch"):
        "a field of stats.json's findings block (the anchors behind that finding)",
    ("auditor.cli", "trust_anchor_mismatch"):
        "reads that field of stats.json's findings block",
}
"""String constants equal to a finding code allowed outside ``auditor/findings/codes.py``,
with why: each names something else that happens to share the spelling."""


def _string_constants(path: Path) -> set[str]:
    """Every string constant of ``path`` (docstrings included: none is a bare code)."""
    return {node.value for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_finding_codes_are_spelled_once_in_the_leaf_vocabulary() -> None:
    # Issue 15: every stage builds and compares findings with FindingCode members, so a code
    # is spelled once (mypy rejects a bare string where a FindingCode parameter is typed;
    # this also catches comparisons and tables of codes).
    from auditor.findings.codes import FindingCode

    values = {code.value for code in FindingCode}
    found = {(_module_name(path), text) for path in MODULES
             if _module_name(path) != "auditor.findings.codes"
             for text in _string_constants(path) & values}
    assert found - FINDING_CODE_SPELLINGS.keys() == set(), "use FindingCode members"
    assert FINDING_CODE_SPELLINGS.keys() - found == set(), "stale entries"

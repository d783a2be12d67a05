"""Checks a saved record against its JSON Schema (``schemas/*.json``) before a report uses it.

A small validator for the keywords our schemas use (type, const, enum, $ref, required,
properties, items, oneOf, minimum, maximum, minItems, minLength, pattern); anything else is
ignored. jsonschema is a test dependency only; this keeps ``report DIR`` free of it.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.resources
import json
import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list,), "object": (dict,), "null": (type(None),),
}


SCHEMA_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("schema_checks",
                                                                      default=False)
"""Whether saved records are checked against their JSON Schema when read: on for files a user
hands over (``report DIR``), off for the files an audit has just written itself (the check
walks every nested field and would double the time of a large report). Here, not in
``tables`` (pandas, pyarrow), so the command line can set it without loading those (about 85
MB) before an audit."""

LATEST: dict[str, int] = {"responses": 2}
"""The current version of each schema not at version 1."""


@functools.cache
def schema(name: str, version: int | None = None) -> dict[str, Any]:
    """The packaged schema ``schemas/<name>-<version>.json`` (``responses``, ``findings``),
    the latest version by default."""
    version = version if version is not None else LATEST.get(name, 1)
    text = importlib.resources.files("auditor.report").joinpath(
        f"schemas/{name}-{version}.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_of(name: str, record: object) -> dict[str, Any]:
    """The schema a saved record declares in its ``schema`` field (``.../responses/1`` of an
    older run), the latest of ``name`` when it declares none we know."""
    declared = record.get("schema") if isinstance(record, dict) else None
    prefix = f"dnssec-auditor/{name}/"
    if isinstance(declared, str) and declared.startswith(prefix):
        version = declared.removeprefix(prefix)
        if version.isdigit() and 1 <= int(version) <= LATEST.get(name, 1):
            return schema(name, int(version))
    return schema(name)


def problem(root: dict[str, Any], value: object, node: dict[str, Any] | None = None,
            where: str = "") -> str | None:
    """Why ``value`` does not fit ``node`` of schema ``root`` (the root itself by default),
    or None when it fits."""
    node = root if node is None else node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return problem(root, value, root["$defs"][name], where)
    label = where or "record"
    if "oneOf" in node:
        found = [problem(root, value, option, where) for option in node["oneOf"]]
        if all(found):
            return next(p for p in found if p)
        return None
    if "const" in node and value != node["const"]:
        return f"{label} is {_short(value)}, not {node['const']!r}"
    if "enum" in node and value not in node["enum"]:
        return f"{label} is {_short(value)}, not one of {node['enum']}"
    wanted = node.get("type")
    if wanted is not None:
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        fits = any(isinstance(value, _TYPES[n]) and not (n in ("integer", "number")
                                                         and isinstance(value, bool))
                   for n in names)
        if not fits:
            return f"{label} is {_short(value)}, not {' or '.join(names)}"
    return _content(root, node, value, label, where)


def _content(root: dict[str, Any], node: dict[str, Any], value: object, label: str,
             where: str) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if "minimum" in node and value < node["minimum"]:
            return f"{label} is {value}, below {node['minimum']}"
        if "maximum" in node and value > node["maximum"]:
            return f"{label} is {value}, above {node['maximum']}"
    if isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            return f"{label} is empty"
        if "pattern" in node and not re.search(node["pattern"], value):
            return f"{label} is {_short(value)}, not of the form {node['pattern']}"
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            return f"{label} has fewer than {node['minItems']} items"
        if "items" in node:
            for index, item in enumerate(value):
                found = problem(root, item, node["items"], f"{where or 'record'}[{index}]")
                if found:
                    return found
    if isinstance(value, dict):
        for name in node.get("required", ()):
            if name not in value:
                return f"{label} has no field {name!r}"
        for name, sub in node.get("properties", {}).items():
            if name in value:
                found = problem(root, value[name], sub, f"{where}.{name}" if where else name)
                if found:
                    return found
    return None


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

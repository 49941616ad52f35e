"""Structural rules of the Avro specification that fastavro's parser lets through.

fastavro is lenient where a registry must not be: it accepts records without fields, enum symbols given
as one string, a non-integer fixed size, duplicate or nested union branches and non-list aliases. Confluent's
registry (Avro's Java parser) rejects all of these, so the local registry does too, before fastavro sees
the schema. Depth is bounded so a hostile, deeply nested schema is a 42201, not a crashed request.
"""

from __future__ import annotations

from typing import Any

from devstack.registry.errors import invalid_schema

__all__ = ["check_structure"]

_MAX_DEPTH = 64
_NAMED = ("record", "error", "enum", "fixed")


def check_structure(node: Any, depth: int = 0) -> None:
    """Raise 42201 (`ApiError`) when `node` (parsed JSON) breaks one of the rules above."""
    if depth > _MAX_DEPTH:
        raise invalid_schema(f"the schema nests deeper than {_MAX_DEPTH} levels")
    if isinstance(node, list):
        _check_union(node, depth)
    elif isinstance(node, dict):
        _check_complex(node, depth)


def _check_union(branches: list[Any], depth: int) -> None:
    seen: set[str] = set()
    for branch in branches:
        if isinstance(branch, list):
            raise invalid_schema("a union may not directly contain another union")
        key = _branch_key(branch)
        if key in seen:
            raise invalid_schema(f"the union has two branches of type {key!r}")
        seen.add(key)
        check_structure(branch, depth + 1)


def _branch_key(branch: Any) -> str:
    """What makes union branches distinct: the type for unnamed types, the name for named ones."""
    if isinstance(branch, dict):
        kind = branch.get("type")
        if kind in _NAMED:
            return str(branch.get("name"))
        return _branch_key(kind) if isinstance(kind, dict | str) else str(kind)
    return str(branch)


def _check_complex(node: dict[str, Any], depth: int) -> None:
    kind = node.get("type")
    if kind in _NAMED:
        if not isinstance(node.get("name"), str):
            raise invalid_schema(f"a {kind} needs a string name")
        _check_aliases(node, f"{kind} {node['name']!r}")
    if kind in ("record", "error"):
        _check_fields(node, depth)
    elif kind == "enum":
        symbols = node.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise invalid_schema(f"enum {node['name']!r} needs a list of string symbols")
        if len(set(symbols)) != len(symbols):
            raise invalid_schema(f"enum {node['name']!r} repeats a symbol")
    elif kind == "fixed":
        size = node.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise invalid_schema(f"fixed {node['name']!r} needs a non-negative integer size")
    elif kind == "array":
        _check_child(node, "items", depth)
    elif kind == "map":
        _check_child(node, "values", depth)
    elif isinstance(kind, dict | list):
        check_structure(kind, depth + 1)


def _check_fields(node: dict[str, Any], depth: int) -> None:
    fields = node.get("fields")
    if not isinstance(fields, list):
        raise invalid_schema(f"record {node['name']!r} has no 'fields' list")
    names: set[str] = set()
    for fld in fields:
        if not isinstance(fld, dict) or not isinstance(fld.get("name"), str) or "type" not in fld:
            raise invalid_schema(f"record {node['name']!r} has a field without a name or type")
        if fld["name"] in names:
            raise invalid_schema(f"record {node['name']!r} has two fields named {fld['name']!r}")
        names.add(fld["name"])
        _check_aliases(fld, f"field {fld['name']!r}")
        check_structure(fld["type"], depth + 1)


def _check_child(node: dict[str, Any], key: str, depth: int) -> None:
    if key not in node:
        raise invalid_schema(f"{node['type']} schemas need '{key}'")
    check_structure(node[key], depth + 1)


def _check_aliases(node: dict[str, Any], what: str) -> None:
    aliases = node.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise invalid_schema(f"the aliases of {what} must be a list of strings")

"""How the fit rules name Avro types, and which Python values each union branch takes.

`registry_codecs.fit` uses these to word its errors (``record ns.Item``, ``fixed ns.Id (16 bytes)``) and
to tell when a union needs fastavro's tuple notation: when two of its branches take the same kind of
Python value (two records, int and long, string and enum ...), fastavro would pick one by its own rules,
so the fitter names the branch it chose.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

#: Logical types over int or long, and the Python type each takes besides its underlying ints.
LOGICAL_TYPES: Final = {
    "date": ("int", datetime.date),
    "time-millis": ("int", datetime.time),
    "time-micros": ("long", datetime.time),
    "timestamp-millis": ("long", datetime.datetime),
    "timestamp-micros": ("long", datetime.datetime),
    "timestamp-nanos": ("long", datetime.datetime),
    "local-timestamp-millis": ("long", datetime.datetime),
    "local-timestamp-micros": ("long", datetime.datetime),
    "local-timestamp-nanos": ("long", datetime.datetime),
}


def accepts_name(node: Mapping[str, Any], name: str) -> bool:
    """Whether a value naming `name` is of the named type `node` (its full name or one of its aliases)."""
    return name == node["name"] or name in node.get("aliases", ())


def type_name(node: Any) -> str:
    """How errors name an Avro type: ``int``, ``record ns.Item``, ``fixed ns.Id (16 bytes)`` ..."""
    if isinstance(node, list):
        return "union [" + ", ".join(notation_name(b) for b in node) + "]"
    if isinstance(node, str):
        return node
    kind = node["type"]
    logical = node.get("logicalType")
    if logical == "decimal":
        return f"{kind} (decimal({node.get('precision')}, {node.get('scale', 0)}))"
    if logical:
        return f"{kind} ({logical})"
    if kind == "fixed":
        return f"fixed {node['name']} ({node['size']} bytes)"
    if kind in ("record", "error", "enum"):
        return f"{kind} {node['name']}"
    return str(kind)


def kind_of_node(node: Any) -> str:
    return node if isinstance(node, str) else str(node["type"])


def notation_name(node: Any) -> str:
    if isinstance(node, dict) and node["type"] in ("record", "error", "enum", "fixed"):
        return str(node["name"])
    return kind_of_node(node)


def names_of(node: Any) -> list[str]:
    if isinstance(node, dict) and node["type"] in ("record", "error", "enum", "fixed"):
        return [node["name"], *node.get("aliases", ())]
    return [kind_of_node(node)]


_PYTHON_KIND: Final = {
    "null": "none",
    "boolean": "bool",
    "int": "number",
    "long": "number",
    "float": "number",
    "double": "number",
    "string": "text",
    "enum": "text",
    "bytes": "bytes",
    "fixed": "bytes",
    "record": "mapping",
    "error": "mapping",
    "map": "mapping",
    "array": "sequence",
}


def python_kind(node: Any) -> str:
    """Which Python values a branch takes; two branches of one kind make a union need tuple notation."""
    logical = node.get("logicalType") if isinstance(node, dict) else None
    if logical in LOGICAL_TYPES or logical in ("decimal", "uuid"):
        return f"logical:{logical}"  # they also take their underlying values: tell fastavro every time
    return _PYTHON_KIND.get(kind_of_node(node), kind_of_node(node))


def kind_of_value(datum: Any) -> str:
    if datum is None:
        return "none"
    if isinstance(datum, bool):
        return "bool"
    if isinstance(datum, int | float):
        return "number"
    if isinstance(datum, str):
        return "text"
    if isinstance(datum, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(datum, Mapping):
        return "mapping"
    if isinstance(datum, list | tuple):
        return "sequence"
    return type(datum).__name__


__all__ = [
    "LOGICAL_TYPES",
    "accepts_name",
    "kind_of_node",
    "kind_of_value",
    "names_of",
    "notation_name",
    "python_kind",
    "type_name",
]

"""Precomputed Avro schema resolution: turn a record read with its writer schema into the reader's shape.

fastavro resolves a writer schema against a reader schema while it reads, and redoes the matching for every
message, which costs about 40% of the decode. Most evolutions are simpler than that: fields added with a
default, fields dropped, fields renamed through aliases, numeric promotions, enum symbols added. For
those, :func:`compile_projection` generates once per (writer, reader) pair a small Python function that
reshapes what fastavro's plain (writer-only) reader returns, following the same rules as fastavro's
resolution (`fastavro._read_py.read_record`, `match_schemas`, `maybe_promote`, `read_enum`), so the
result is equal to fastavro's. Anything it cannot prove equal (unions whose branches need converting,
logical types that differ, mutable defaults in odd places, recursive types) returns None and the caller
falls back to fastavro's own resolution.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

#: What compile_projection returns when no conversion is needed at all: read with the writer schema only.
IDENTITY: Callable[[Any], Any] = lambda value: value  # noqa: E731

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_PROMOTIONS: dict[tuple[str, str], str | None] = {
    ("int", "long"): None,
    ("int", "float"): "float({})",
    ("int", "double"): "float({})",
    ("long", "float"): "float({})",
    ("long", "double"): "float({})",
    ("float", "double"): None,
    ("string", "bytes"): "{}.encode()",
    ("bytes", "string"): "{}.decode()",
}
_IGNORED = frozenset({"doc", "default", "aliases", "order"})


class _Unsupported(Exception):
    """This pair needs fastavro's own resolution."""


def compile_projection(writer: Any, reader: Any) -> Callable[[Any], Any] | None:
    """Return a function applying writer-to-reader resolution to records decoded with `writer`.

    Args:
        writer, reader: schemas parsed by `fastavro.parse_schema`.

    Returns:
        :data:`IDENTITY` when values read with `writer` already have the reader's shape, a projection
        function, or None when fastavro's own resolution must be used.
    """
    compiler = _Compiler(_named(writer), _named(reader))
    try:
        expression = compiler.convert(writer, reader, "value")
    except _Unsupported:
        return None
    if expression is None:
        return IDENTITY
    return compiler.build(expression)


def _named(parsed: Any) -> Mapping[str, Any]:
    return parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}


class _Compiler:
    def __init__(self, writer_named: Mapping[str, Any], reader_named: Mapping[str, Any]) -> None:
        self._wn = writer_named
        self._rn = reader_named
        self._namespace: dict[str, Any] = {"_deepcopy": copy.deepcopy}
        self._functions: list[str] = []
        self._in_progress: set[tuple[str, str]] = set()
        self._counter = 0

    def build(self, expression: str) -> Callable[[Any], Any]:
        source = "\n".join([*self._functions, f"def _project(value):\n    return {expression}\n"])
        # The source is generated from schema field names written as repr() literals, never from data.
        exec(compile(source, "<avro projection>", "exec"), self._namespace)  # noqa: S102
        project: Callable[[Any], Any] = self._namespace["_project"]
        return project

    def _name(self, prefix: str) -> str:
        self._counter += 1
        return f"_{prefix}{self._counter}"

    def _const(self, value: Any) -> str:
        name = self._name("c")
        self._namespace[name] = value
        return name

    def _resolve(self, schema: Any, named: Mapping[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            if schema not in named:
                raise _Unsupported(schema)
            return named[schema]
        if isinstance(schema, dict) and isinstance(schema["type"], dict | list):
            return schema["type"]
        return schema

    def convert(self, writer: Any, reader: Any, expr: str) -> str | None:
        """Return an expression converting `expr` (read with `writer`) to `reader`, None if unchanged."""
        w = self._resolve(writer, self._wn)
        r = self._resolve(reader, self._rn)
        if isinstance(w, list) or isinstance(r, list):
            return self._union(w, r, expr)
        w_type = w["type"] if isinstance(w, dict) else w
        r_type = r["type"] if isinstance(r, dict) else r
        if _logical(w) or _logical(r):
            if _strip(w) != _strip(r):
                raise _Unsupported("logical types differ")
            return None
        if w_type in _PRIMITIVES and r_type in _PRIMITIVES:
            if w_type == r_type:
                return None
            if (w_type, r_type) not in _PROMOTIONS:
                raise _Unsupported(f"{w_type} -> {r_type}")
            template = _PROMOTIONS[(w_type, r_type)]
            return template.format(expr) if template else None
        if w_type != r_type and not (w_type in ("record", "error") and r_type in ("record", "error")):
            raise _Unsupported(f"{w_type} -> {r_type}")
        if w_type == "array":
            inner = self.convert(w["items"], r["items"], "_x")
            return None if inner is None else f"[{inner} for _x in {expr}]"
        if w_type == "map":
            inner = self.convert(w["values"], r["values"], "_x")
            return None if inner is None else f"{{_k: {inner} for _k, _x in {expr}.items()}}"
        if not _names_match(w, r):
            raise _Unsupported("names differ")
        if w_type == "enum":
            return self._enum(w, r, expr)
        if w_type == "fixed":
            if w["size"] != r["size"]:
                raise _Unsupported("fixed sizes differ")
            return None
        return self._record(w, r, expr)

    def _enum(self, w: Mapping[str, Any], r: Mapping[str, Any], expr: str) -> str | None:
        if set(w["symbols"]) <= set(r["symbols"]):
            return None
        default = r.get("default")
        if not default:  # fastavro raises for unknown symbols then; only it knows when one occurs
            raise _Unsupported("enum symbols removed without a default")
        known = self._const(frozenset(r["symbols"]))
        return f"({expr} if {expr} in {known} else {self._const(default)})"

    def _record(self, w: Mapping[str, Any], r: Mapping[str, Any], expr: str) -> str | None:
        key = (w["name"], r["name"])
        if key in self._in_progress:
            raise _Unsupported("recursive record")
        self._in_progress.add(key)
        by_name = {f["name"]: f for f in r["fields"]}
        by_alias = {alias: f for f in r["fields"] for alias in f.get("aliases", [])}
        items: list[str] = []
        changed = False
        for field in w["fields"]:
            target = by_name.get(field["name"], by_alias.get(field["name"]))
            if target is None:
                changed = True  # a field the reader does not have: dropped
                continue
            if target["name"] not in by_name:
                raise _Unsupported("two writer fields resolve to one reader field")
            del by_name[target["name"]]
            value = f"_v[{field['name']!r}]"
            inner = self.convert(field["type"], target["type"], value)
            changed = changed or inner is not None or target["name"] != field["name"]
            items.append(f"{target['name']!r}: {inner or value}")
        for name, target in by_name.items():
            if "default" not in target:
                raise _Unsupported(f"no default for {name}")
            changed = True
            items.append(f"{name!r}: {self._default(target['default'])}")
        self._in_progress.discard(key)
        if not changed:
            return None
        function = self._name("record")
        self._functions.append(f"def {function}(_v):\n    return {{{', '.join(items)}}}\n")
        return f"{function}({expr})"

    def _default(self, value: Any) -> str:
        if isinstance(value, list | dict):
            return f"_deepcopy({self._const(value)})"  # a fresh copy per record: callers may mutate it
        return self._const(value)

    def _union(self, w: Any, r: Any, expr: str) -> str | None:
        r_branches = r if isinstance(r, list) else [r]
        if not isinstance(w, list):  # fastavro reads it as the first reader branch that matches
            match = next((rb for rb in r_branches if self._matches(w, rb)), None)
            if match is None:
                raise _Unsupported("no reader branch matches")
            return self.convert(w, match, expr)
        converted: list[str] = []
        for branch in w:
            match = next((rb for rb in r_branches if self._matches(branch, rb)), None)
            if match is None:
                raise _Unsupported("a writer branch has no reader branch")  # fastavro fails on such values
            inner = self.convert(branch, match, "_x")
            if inner is not None:
                converted.append(inner)
        if not converted:
            return None
        # The branch a value came from is only known for a nullable single type: None, or that type.
        if len(w) != 2 or "null" not in w or len(converted) != 1:
            raise _Unsupported("a union branch needs converting")
        return f"(lambda _x: None if _x is None else {converted[0]})({expr})"

    def _matches(self, w: Any, r: Any) -> bool:
        """fastavro's `match_types`: could a value of `w` be read as `r`?"""
        w = self._resolve(w, self._wn)
        r = self._resolve(r, self._rn)
        if isinstance(w, list) or isinstance(r, list):
            return True
        w_type = w["type"] if isinstance(w, dict) else w
        r_type = r["type"] if isinstance(r, dict) else r
        if w_type in _PRIMITIVES or r_type in _PRIMITIVES:
            return w_type == r_type or (w_type, r_type) in _PROMOTIONS
        if w_type == r_type == "array":
            return self._matches(w["items"], r["items"])
        if w_type == r_type == "map":
            return self._matches(w["values"], r["values"])
        if w_type in _NAMED and r_type in _NAMED:
            if w_type == r_type == "fixed" and w["size"] != r["size"]:
                return False
            return _names_match(w, r)
        return False


def _names_match(w: Mapping[str, Any], r: Mapping[str, Any]) -> bool:
    w_short = w["name"].split(".")[-1]
    aliases = r.get("aliases", [])
    return bool(w_short == r["name"].split(".")[-1] or w["name"] in aliases or w_short in aliases)


def _logical(schema: Any) -> bool:
    return isinstance(schema, dict) and "logicalType" in schema


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in _IGNORED and not k.startswith("__")}
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


__all__ = ["IDENTITY", "compile_projection"]

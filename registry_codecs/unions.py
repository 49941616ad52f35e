"""Records that keep their union branch: `NamedRecord`, and marking them when a frame is decoded.

A union of several record types (``[Created, Deleted]``) holds records that a plain dict cannot tell apart:
``{"id": 1}`` may be either. The deserializer asks fastavro for the branch's full name wherever a union has
more than one record branch (`return_record_name` with its override, so a nullable single record stays a
plain dict) and hands the record over as a `NamedRecord`: a dict that also carries ``avro_name``. Transforms
read and change it like any dict; the serializer writes it as the branch it names. Records anywhere else stay
plain dicts. :func:`compile_marker` builds, once per schema, the pass that turns fastavro's ``(name, record)``
tuples into `NamedRecord` values; schemas without such unions get None and cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

Marker = Callable[[Any], Any]


class NamedRecord(dict[str, Any]):
    """A record of a union of several record types: a dict that knows its branch (the record's full name).

    ``NamedRecord("shop.Deleted", {"id": 1})``. Copying it with ``{**record}`` or ``dict(record)`` gives a
    plain dict, which the serializer places by its fields, and refuses when several branches would fit.
    """

    __slots__ = ("avro_name",)

    def __init__(self, avro_name: str, fields: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__(fields)
        self.avro_name = avro_name

    def __repr__(self) -> str:
        return f"NamedRecord({self.avro_name!r}, {dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (NamedRecord, (self.avro_name, dict(self)))

    def copy(self) -> NamedRecord:
        """A shallow copy that keeps the branch."""
        return NamedRecord(self.avro_name, self)


def compile_marker(parsed: Any) -> Marker | None:
    """Return the pass turning ``(name, record)`` union values into `NamedRecord`, or None when `parsed` has
    no union of several record types (fastavro then returns no tuples)."""
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    return _MarkerCompiler(named).compile(parsed)


class _MarkerCompiler:
    def __init__(self, named: Mapping[str, Any]) -> None:
        self._named = named
        self._table: dict[str, Marker | None] = {}

    def _resolve(self, schema: Any) -> Any:
        while True:
            if isinstance(schema, str) and schema in self._named:
                schema = self._named[schema]
            elif isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
                schema = schema["type"]
            else:
                return schema

    def needs(self, schema: Any, visiting: frozenset[str] = frozenset()) -> bool:
        """Whether a union of several records is reachable from `schema`."""
        node = self._resolve(schema)
        if isinstance(node, list):
            return _record_count(node, self._resolve) > 1 or any(self.needs(b, visiting) for b in node)
        if not isinstance(node, dict):
            return False
        kind = node["type"]
        if kind in ("record", "error"):
            if node["name"] in visiting:
                return False
            inner = visiting | {node["name"]}
            return any(self.needs(f["type"], inner) for f in node["fields"])
        if kind == "array":
            return self.needs(node["items"], visiting)
        if kind == "map":
            return self.needs(node["values"], visiting)
        return False

    def compile(self, schema: Any) -> Marker | None:
        if not self.needs(schema):
            return None
        if isinstance(schema, str) and schema in self._named:
            return self._by_name(schema)
        node = self._resolve(schema)
        if isinstance(node, list):
            return self._union(node)
        kind = node["type"]
        if kind in ("record", "error"):
            return self._by_name(node["name"]) if node.get("name") in self._named else self._record(node)
        inner = self.compile(node["items"] if kind == "array" else node["values"])
        assert inner is not None  # noqa: S101 - needs() said a marked union is inside
        if kind == "array":
            return lambda v: [inner(x) for x in v]
        return lambda v: {k: inner(x) for k, x in v.items()}

    def _by_name(self, name: str) -> Marker:
        if name not in self._table:
            self._table[name] = None  # in progress: a recursive reference goes through the table
            self._table[name] = self._record(self._named[name])
        table = self._table
        return lambda v: table[name](v)  # type: ignore[misc]  # set above before any record is marked

    def _record(self, node: Mapping[str, Any]) -> Marker:
        fields = [(f["name"], m) for f in node["fields"] if (m := self.compile(f["type"])) is not None]

        def mark(record: Any) -> Any:
            for name, inner in fields:
                record[name] = inner(record[name])
            return record

        return mark

    def _union(self, branches: list[Any]) -> Marker:
        by_name: dict[str, Marker | None] = {}
        others: list[tuple[type, Marker]] = []
        for branch in branches:
            node = self._resolve(branch)
            kind = node.get("type") if isinstance(node, dict) else node
            inner = self.compile(branch)
            if kind in ("record", "error"):
                by_name[node["name"]] = inner
            elif inner is not None:
                others.append((list if kind == "array" else dict, inner))

        # A single record branch comes back as a plain dict (return_record_name_override).
        single = next(iter(by_name.values())) if len(by_name) == 1 else None

        def mark(value: Any) -> Any:
            if single is not None and type(value) is dict:
                return single(value)
            if type(value) is tuple:
                name, record = value
                inner = by_name.get(name)
                return NamedRecord(name, inner(record) if inner is not None else record)
            for python_type, inner in others:
                if type(value) is python_type:
                    return inner(value)
            return value

        return mark


def _record_count(branches: list[Any], resolve: Callable[[Any], Any]) -> int:
    count = 0
    for branch in branches:
        node = resolve(branch)
        count += isinstance(node, dict) and node.get("type") in ("record", "error")
    return count


__all__ = ["Marker", "NamedRecord", "compile_marker"]

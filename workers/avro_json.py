"""JSON in and out of Avro records for the console tools, guided by the schema.

`from_json` turns a record parsed from natural JSON into what fastavro writes: ISO-8601 strings become
datetimes for timestamp fields and dates for date fields, numbers or numeric strings become `Decimal`
for decimal fields, strings of code points 0-255 become bytes, and a union value may be given plainly
(``null`` or the value) or in Avro's JSON form (``{"string": "x"}``). A plain object for a union of
several record types becomes a `NamedRecord` of the one record type whose fields it matches (every key is
a field of it, every field without a default is present); none or several matching is an error naming
the candidates. Keys a record does not have are kept, so the encoder refuses them: nothing is dropped.
`to_json_default` is the other way, for `json.dumps`: every value fastavro can hand back prints as JSON
instead of crashing.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Mapping
from typing import Any

from registry_codecs.unions import NamedRecord

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_JSON_KINDS: dict[type, frozenset[str]] = {
    bool: frozenset({"boolean"}),
    int: frozenset({"int", "long", "float", "double"}),
    float: frozenset({"float", "double"}),
    str: frozenset({"string", "bytes", "enum", "fixed", "int", "long"}),
    dict: frozenset({"record", "map", "error"}),
    list: frozenset({"array"}),
}


class JsonConversionError(ValueError):
    """A JSON value cannot stand for the Avro type at `path`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '<record>'}: {message}")
        self.path = path


def from_json(schema: Any, value: Any) -> Any:
    """Return `value` (parsed JSON) converted to the Python types fastavro writes for `schema`.

    Args:
        schema: the Avro schema as loaded JSON (a dict, list or type name).
        value: the JSON value.

    Raises:
        JsonConversionError: a value has the wrong shape for its logical type (a bad ISO date ...).
    """
    converter = _Converter()
    converter.collect(schema, "")
    return converter.convert(schema, value, "", "")


class _Converter:
    def __init__(self) -> None:
        self.named: dict[str, Any] = {}  # full name -> definition
        self.space: dict[int, str] = {}  # id(definition) -> the namespace its own references resolve in

    def collect(self, schema: Any, namespace: str) -> None:
        """Learn every named type up front: a value may use a type whose defining field is absent."""
        if isinstance(schema, list):
            for branch in schema:
                self.collect(branch, namespace)
            return
        if not isinstance(schema, dict):
            return
        kind = schema.get("type")
        if "name" in schema and kind in ("record", "error", "enum", "fixed"):
            full = _qualify(schema["name"], schema.get("namespace", namespace))
            self.named[full] = schema
            namespace = self.space[id(schema)] = full.rpartition(".")[0]
        if kind in ("record", "error"):
            for f in schema.get("fields", ()):
                self.collect(f["type"], namespace)
        elif kind in ("array", "map"):
            self.collect(schema.get("items" if kind == "array" else "values"), namespace)
        elif isinstance(kind, dict | list):
            self.collect(kind, namespace)

    def convert(self, schema: Any, value: Any, path: str, namespace: str) -> Any:
        if isinstance(schema, list):
            return self._union(schema, value, path, namespace)
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self._primitive(schema, value, path)
            return self.convert(self._resolve(schema, namespace, path), value, path, namespace)
        kind = schema.get("type")
        namespace = self.space.get(id(schema), namespace)
        if schema.get("logicalType") and value is not None:
            return _logical(schema, value, path)
        if kind in ("record", "error") and isinstance(value, Mapping):
            converted = {
                f["name"]: self.convert(
                    f["type"], value[f["name"]], f"{path}.{f['name']}".lstrip("."), namespace
                )
                for f in schema["fields"]
                if f["name"] in value
            }
            # keys the record does not have stay, for the encoder to refuse with their path
            return {**converted, **{k: v for k, v in value.items() if k not in converted}}
        if kind == "array" and isinstance(value, list):
            return [self.convert(schema["items"], v, f"{path}[{i}]", namespace) for i, v in enumerate(value)]
        if kind == "map" and isinstance(value, Mapping):
            return {k: self.convert(schema["values"], v, f"{path}.{k}", namespace) for k, v in value.items()}
        if kind == "fixed" and isinstance(value, str):
            return _latin1(value, path)
        if kind not in ("record", "error", "array", "map", "enum", "fixed"):
            return self.convert(kind, value, path, namespace)  # {"type": "string"} and the like
        return value  # enums and mismatches: the encoder says what does not fit, with the field path

    def _primitive(self, kind: str, value: Any, path: str) -> Any:
        if kind == "bytes" and isinstance(value, str):
            return _latin1(value, path)
        return value

    def _union(self, branches: list[Any], value: Any, path: str, namespace: str) -> Any:
        if value is None:
            return None
        names = {self._branch_name(b, namespace): b for b in branches}
        if isinstance(value, Mapping) and len(value) == 1 and "map" not in names:
            [(tag, inner)] = value.items()
            full = tag if tag in names else _qualify(tag, namespace)
            branch = names.get(full)
            if branch is not None:
                converted = self.convert(branch, inner, path, namespace)
                if isinstance(converted, dict) and full not in _PRIMITIVES and full != "map":
                    return NamedRecord(full, converted)  # the branch it names, written as that branch
                return converted
        records = [b for b in branches if self._record_of(b, namespace) is not None]
        if isinstance(value, Mapping) and len(records) > 1:
            has_map = "map" in names
            chosen = self._matching_record(records, value, path, namespace, has_map=has_map)
            if chosen is not None:
                return chosen
        for branch in branches:
            if self._accepts(branch, value, namespace):
                return self.convert(branch, value, path, namespace)
        return value

    def _record_of(self, branch: Any, namespace: str) -> Mapping[str, Any] | None:
        schema = self._resolve(branch, namespace, "") if isinstance(branch, str) else branch
        if isinstance(schema, dict) and schema.get("type") in ("record", "error"):
            return schema
        return None

    def _matching_record(
        self, records: list[Any], value: Mapping[str, Any], path: str, namespace: str, *, has_map: bool
    ) -> NamedRecord | None:
        """The `NamedRecord` of the one record branch `value` matches; None to try a map branch.

        Raises:
            JsonConversionError: `value` matches several record branches, or none and the union has no map.
        """
        matched: list[tuple[str, Any]] = []
        for branch in records:
            schema = self._record_of(branch, namespace)
            assert schema is not None  # noqa: S101 - records holds record branches only
            fields = {f["name"]: f for f in schema["fields"]}
            required = {name for name, f in fields.items() if "default" not in f}
            if value.keys() <= fields.keys() and required <= value.keys():
                matched.append((self._branch_name(branch, namespace), branch))
        if len(matched) == 1:
            [(full, branch)] = matched
            converted = self.convert(branch, value, path, namespace)
            return NamedRecord(full, converted)
        if not matched and has_map:
            return None
        names = ", ".join(self._branch_name(b, namespace) for b in records)
        raise JsonConversionError(
            path,
            f"a plain object for a union of several record types must match exactly one of them (every "
            f"key a field, every field without default present); it matches "
            f"{', '.join(n for n, _ in matched) or 'none'} of [{names}]. Name the branch: "
            '{"<full name>": {...}}',
        )

    def _accepts(self, branch: Any, value: Any, namespace: str) -> bool:
        kinds = _JSON_KINDS.get(type(value), frozenset())
        schema = self._resolve(branch, namespace, "") if isinstance(branch, str) else branch
        if isinstance(schema, str):
            return schema in kinds
        if isinstance(schema, dict):
            return schema.get("type") in kinds
        return False

    def _branch_name(self, branch: Any, namespace: str) -> str:
        if isinstance(branch, str):
            return branch if branch in _PRIMITIVES else _qualify(branch, namespace)
        if isinstance(branch, dict):
            if "name" in branch:
                return _qualify(branch["name"], branch.get("namespace", namespace))
            return str(branch.get("type"))
        return "union"

    def _resolve(self, name: str, namespace: str, path: str) -> Any:
        if name in _PRIMITIVES:
            return name
        found = self.named.get(_qualify(name, namespace)) or self.named.get(name)
        if found is None:
            raise JsonConversionError(path, f"unknown named type {name!r}")
        return found


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _latin1(value: str, path: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise JsonConversionError(path, "bytes are written as a string of code points 0-255") from None


def _logical(schema: Mapping[str, Any], value: Any, path: str) -> Any:
    logical = schema["logicalType"]
    try:
        if logical in ("timestamp-millis", "timestamp-micros") and isinstance(value, str):
            moment = dt.datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        if logical in ("local-timestamp-millis", "local-timestamp-micros") and isinstance(value, str):
            return dt.datetime.fromisoformat(value).replace(tzinfo=None)
        if logical == "date" and isinstance(value, str):
            return dt.date.fromisoformat(value)
        if logical in ("time-millis", "time-micros") and isinstance(value, str):
            return dt.time.fromisoformat(value)
        if logical == "decimal" and isinstance(value, int | float | str):
            return decimal.Decimal(str(value))
    except (ValueError, decimal.InvalidOperation) as exc:
        raise JsonConversionError(path, f"not a valid {logical} value: {value!r} ({exc})") from None
    if schema.get("type") in ("bytes", "fixed") and isinstance(value, str):
        return _latin1(value, path)
    return value


def to_json_default(value: Any) -> Any:
    """`json.dumps` default: render what fastavro decodes (datetimes, Decimal, bytes, UUID) as JSON.

    Datetimes, dates and times become ISO-8601 strings, decimals strings (no float rounding), bytes a
    string of code points 0-255 (Avro's JSON encoding, which `from_json` reads back) and UUIDs strings.
    """
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


__all__ = ["JsonConversionError", "from_json", "to_json_default"]

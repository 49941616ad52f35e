"""Avro's JSON encoding (the Avro specification's "JSON Encoding"), to and from Avro binary bodies.

This is what kafka-avro-console-consumer prints and kafka-avro-console-producer reads: a union value other
than null is ``{"<branch>": value}`` (the full name of a named type, else ``int``, ``array``, ``map`` ...);
bytes and fixed are strings whose code points 0-255 are the byte values; logical types are their underlying
type (a decimal is its bytes, a timestamp its long); an enum is its symbol. `AvroJsonCodec` works on the
binary body itself, not on fastavro's Python values, so nothing those values cannot tell apart is lost
(which branch of ``["int", "long"]`` or ``[enum, string]`` a value was, float32 against double), and
``from_json(to_json(body)) == body`` for every body a standard writer produces (one block per array or
map; a NaN with a payload other than the canonical one comes back canonical).

The text is what Avro's Java `JsonEncoder` (Jackson) prints (`workers.avro_json_text`; checked against
Avro 1.12 itself by tests/integration/test_avro_json_java.py), with two deliberate differences: map
entries keep the body's order (Java prints its HashMap's order, which would not write back the same
bytes), and numbers are printed as Java 19+ prints them (the shortest decimal that reads back; Java 17
prints some with more digits, the same value). NaN and the infinities are the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"``, as Jackson quotes them, which Avro's `JsonDecoder` reads back. The
primitive types, both ways, are in `workers.avro_json_primitives`; this module walks the schema.

Reading is as strict as Avro's `JsonDecoder`, and stricter where Java would lose data: every field must
be present (defaults are not filled in, as in Java), a field the record does not have is refused (Java
skips it), a number too large for a float is refused (Java makes it Infinity).
"""

from __future__ import annotations

import contextlib
import decimal
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from registry_codecs.bounds import MAX_DEPTH
from workers.avro_json_primitives import (
    EMIT_PRIMITIVE,
    ENCODE_PRIMITIVE,
    NON_FINITE,
    AvroBodyError,
    AvroJsonError,
    Body,
    describe,
    encode_string,
    latin1,
    write_long,
)
from workers.avro_json_text import java_double, java_float, quote

#: Python frames the walks may need: a few per level (value, union, field) for MAX_DEPTH levels. Python
#: 3.11 keeps a Python-to-Python call off the C stack, so a higher limit does not risk the C stack here.
_RECURSION_LIMIT = 8 * MAX_DEPTH + 1000


class AvroJsonCodec:
    """Avro JSON text for one parsed schema (`registry_codecs.avro.parse_avro`'s output).

    Args:
        parsed: the schema as fastavro parses it (full names, named types defined once).
    """

    def __init__(self, parsed: Any) -> None:
        self._schema = parsed
        self._named: dict[str, Any] = {}
        _collect(parsed, self._named)

    def to_json(self, body: bytes) -> str:
        """Return the Avro JSON text of a binary `body`.

        Raises:
            AvroBodyError: `body` does not read with the schema, or has bytes left over.
        """
        reader = Body(body)
        out: list[str] = []
        try:
            with _deep_enough():
                self._emit(self._schema, reader, out)
        except RecursionError:
            raise AvroBodyError("nested deeper than this process can print") from None
        if reader.pos != len(body):
            raise AvroBodyError(f"{len(body) - reader.pos} byte(s) left after the value")
        return "".join(out)

    def from_json(self, text: str) -> bytes:
        """Return the binary body of the Avro JSON `text`.

        Raises:
            AvroJsonError: `text` is not JSON, or not the Avro JSON encoding of a value of the schema; the
                path names the field (``change.items[2]``, ``props['k']``).
        """
        try:
            with _deep_enough():  # the C parser counts its levels against the same limit
                value = json.loads(text, parse_float=decimal.Decimal, parse_constant=NON_FINITE.__getitem__)
        except ValueError as exc:
            raise AvroJsonError("", f"not JSON: {exc}") from None
        except RecursionError:
            raise AvroJsonError("", "nested deeper than this process can read") from None
        out = bytearray()
        try:
            with _deep_enough():
                self._encode(self._schema, value, out, "")
        except RecursionError:
            raise AvroJsonError("", "nested deeper than this process can encode") from None
        return bytes(out)

    # -- binary to JSON --------------------------------------------------------------------------------

    def _node(self, schema: Any) -> Any:
        if isinstance(schema, str):
            return self._named.get(schema, schema)
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list | str):
            inner = schema["type"]
            if inner not in ("record", "error", "enum", "fixed", "array", "map"):
                return self._node(inner)  # {"type": "long", "logicalType": ...}: the underlying type
        return schema

    def _emit(self, schema: Any, body: Body, out: list[str]) -> None:
        node = self._node(schema)
        if isinstance(node, list):
            index = body.long()
            if not 0 <= index < len(node):
                raise AvroBodyError(f"union index {index} out of range (the union has {len(node)} branches)")
            branch = node[index]
            if self._node(branch) == "null":
                out.append("null")
                return
            out.append(f"{{{quote(_label(self._node(branch)))}:")
            self._emit(branch, body, out)
            out.append("}")
        elif isinstance(node, str):
            out.append(EMIT_PRIMITIVE[node](body))
        else:
            _EMIT_COMPLEX[node["type"]](self, node, body, out)

    def _emit_record(self, node: Mapping[str, Any], body: Body, out: list[str]) -> None:
        out.append("{")
        for i, field in enumerate(node["fields"]):
            out.append(f"{',' if i else ''}{quote(field['name'])}:")
            self._emit(field["type"], body, out)
        out.append("}")

    def _emit_blocks(self, node: Mapping[str, Any], body: Body, out: list[str]) -> None:
        is_map = node["type"] == "map"
        items = node["values" if is_map else "items"]
        out.append("{" if is_map else "[")
        first = True
        while count := body.long():
            if count < 0:
                count = -count
                body.long()  # the block's size in bytes, for skipping; not needed here
            for _ in range(count):
                if not first:
                    out.append(",")
                first = False
                if is_map:
                    out.append(f"{quote(body.string())}:")
                self._emit(items, body, out)
        out.append("}" if is_map else "]")

    def _emit_enum(self, node: Mapping[str, Any], body: Body, out: list[str]) -> None:
        index = body.long()
        if not 0 <= index < len(node["symbols"]):
            raise AvroBodyError(f"enum index {index} out of range for {node['name']}")
        out.append(quote(node["symbols"][index]))

    def _emit_fixed(self, node: Mapping[str, Any], body: Body, out: list[str]) -> None:
        out.append(quote(body.take(node["size"]).decode("latin-1")))

    # -- JSON to binary --------------------------------------------------------------------------------

    def _encode(self, schema: Any, value: Any, out: bytearray, path: str) -> None:
        node = self._node(schema)
        if isinstance(node, list):
            self._encode_union(node, value, out, path)
        elif isinstance(node, str):
            ENCODE_PRIMITIVE[node](value, out, path)
        else:
            _ENCODE_COMPLEX[node["type"]](self, node, value, out, path)

    def _encode_union(self, branches: list[Any], value: Any, out: bytearray, path: str) -> None:
        labels = [_label(self._node(b)) for b in branches]
        if value is None:
            if "null" not in labels:
                raise AvroJsonError(path, f"null is not a branch of the union {_names(labels)}")
            write_long(labels.index("null"), out)
            return
        if not (isinstance(value, dict) and len(value) == 1):
            raise AvroJsonError(
                path,
                f'a union value other than null is written {{"<branch>": value}}, one of {_names(labels)};'
                f" got {describe(value)}",
            )
        [(label, inner)] = value.items()
        if label not in labels or label == "null":
            raise AvroJsonError(path, f"unknown union branch {label!r}: the branches are {_names(labels)}")
        index = labels.index(label)
        write_long(index, out)
        self._encode(branches[index], inner, out, path)

    def _encode_record(self, node: Mapping[str, Any], value: Any, out: bytearray, path: str) -> None:
        if not isinstance(value, dict):
            raise AvroJsonError(path, f"expected an object for record {node['name']}, got {describe(value)}")
        names = [f["name"] for f in node["fields"]]
        unknown = [k for k in value if k not in names]
        if unknown:
            raise AvroJsonError(_join(path, unknown[0]), f"record {node['name']} has no field {unknown[0]!r}")
        for field in node["fields"]:
            name = field["name"]
            if name not in value:
                raise AvroJsonError(_join(path, name), f"missing field {name!r} of record {node['name']}")
            self._encode(field["type"], value[name], out, _join(path, name))

    def _encode_array(self, node: Mapping[str, Any], value: Any, out: bytearray, path: str) -> None:
        if not isinstance(value, list):
            raise AvroJsonError(path, f"expected an array, got {describe(value)}")
        if value:
            write_long(len(value), out)
            for i, item in enumerate(value):
                self._encode(node["items"], item, out, f"{path}[{i}]")
        out.append(0)

    def _encode_map(self, node: Mapping[str, Any], value: Any, out: bytearray, path: str) -> None:
        if not isinstance(value, dict):
            raise AvroJsonError(path, f"expected an object for a map, got {describe(value)}")
        if value:
            write_long(len(value), out)
            for key, item in value.items():
                encode_string(key, out, path)
                self._encode(node["values"], item, out, f"{path}[{key!r}]")
        out.append(0)

    def _encode_enum(self, node: Mapping[str, Any], value: Any, out: bytearray, path: str) -> None:
        symbols = node["symbols"]
        if not isinstance(value, str) or value not in symbols:
            raise AvroJsonError(
                path,
                f"expected a symbol of enum {node['name']} ({', '.join(symbols)}), got {describe(value)}",
            )
        write_long(symbols.index(value), out)

    def _encode_fixed(self, node: Mapping[str, Any], value: Any, out: bytearray, path: str) -> None:
        data = latin1(value, path, f"fixed {node['name']}")
        if len(data) != node["size"]:
            raise AvroJsonError(
                path, f"fixed {node['name']} holds {node['size']} bytes, got a string of {len(data)}"
            )
        out += data


@contextlib.contextmanager
def _deep_enough() -> Iterator[None]:
    """Records nested to `MAX_DEPTH` levels (what the codec reads and writes) print and read back."""
    before = sys.getrecursionlimit()
    if before < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)
    try:
        yield
    finally:
        if before < _RECURSION_LIMIT:
            sys.setrecursionlimit(before)


_EMIT_COMPLEX: dict[str, Callable[[AvroJsonCodec, Any, Any, list[str]], None]] = {
    "record": AvroJsonCodec._emit_record,
    "error": AvroJsonCodec._emit_record,
    "array": AvroJsonCodec._emit_blocks,
    "map": AvroJsonCodec._emit_blocks,
    "enum": AvroJsonCodec._emit_enum,
    "fixed": AvroJsonCodec._emit_fixed,
}
_ENCODE_COMPLEX: dict[str, Callable[[AvroJsonCodec, Any, Any, bytearray, str], None]] = {
    "record": AvroJsonCodec._encode_record,
    "error": AvroJsonCodec._encode_record,
    "array": AvroJsonCodec._encode_array,
    "map": AvroJsonCodec._encode_map,
    "enum": AvroJsonCodec._encode_enum,
    "fixed": AvroJsonCodec._encode_fixed,
}


def _label(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        return str(node["name"]) if "name" in node and node.get("type") in _NAMED else str(node["type"])
    return "union"


_NAMED = frozenset({"record", "error", "enum", "fixed"})


def _collect(schema: Any, named: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, named)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in _NAMED and "name" in schema:
            named[schema["name"]] = schema
        for sub in (schema.get("items"), schema.get("values"), kind):
            if isinstance(sub, dict | list):
                _collect(sub, named)
        for field in schema.get("fields", ()) if kind in ("record", "error") else ():
            _collect(field["type"], named)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _names(labels: list[str]) -> str:
    return "[" + ", ".join(labels) + "]"


__all__ = ["AvroBodyError", "AvroJsonCodec", "AvroJsonError", "java_double", "java_float"]

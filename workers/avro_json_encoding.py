"""Avro's JSON encoding (the Avro specification's "JSON Encoding"), to and from Avro binary bodies.

This is what kafka-avro-console-consumer prints and kafka-avro-console-producer reads: a union value other
than null is ``{"<branch>": value}`` (the full name of a named type, else ``int``, ``array``, ``map`` ...);
bytes and fixed are strings whose code points 0-255 are the byte values; logical types are their underlying
type (a decimal is its bytes, a timestamp its long); an enum is its symbol. `AvroJsonCodec` works on the
binary body itself, not on fastavro's Python values, so nothing those values cannot tell apart is lost
(which branch of ``["int", "long"]`` or ``[enum, string]`` a value was, float32 against double), and
``from_json(to_json(body)) == body`` for every body a standard writer produces (one block per array or
map; a NaN with a payload other than the canonical one comes back canonical).

The text is Avro's Java `JsonEncoder` (Jackson) output byte for byte (tests/interop checks it against the
real one): no spaces; ``"``, ``\\``, ``\\b \\t \\n \\f \\r`` escaped short, other characters below U+0020
as ``\\u00XX`` (upper-case hex), characters beyond U+FFFF as their escaped UTF-16 surrogate pair, the rest
as UTF-8; numbers as Java's ``Float.toString``/``Double.toString`` (Java 19+: the shortest decimal that
reads back, at least two digits; Java 17 prints a few doubles with more digits, the same value); NaN and
infinities as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, as Jackson quotes them, which Avro's
`JsonDecoder` reads back.

Reading is as strict as Avro's `JsonDecoder`, and stricter where Java would lose data: every field must
be present (defaults are not filled in, as in Java), a field the record does not have is refused (Java
skips it), a number too large for a float is refused (Java makes it Infinity).
"""

from __future__ import annotations

import contextlib
import decimal
import json
import math
import re
import struct
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from registry_codecs.bounds import MAX_DEPTH
from workers.avro_json import JsonConversionError

_INT = (-(2**31), 2**31 - 1)
_LONG = (-(2**63), 2**63 - 1)
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_ESCAPED = re.compile('["\\\\\x00-\x1f\U00010000-\U0010ffff]')
#: Python frames the walks may need: a few per level (value, union, field) for MAX_DEPTH levels. Python
#: 3.11 keeps a Python-to-Python call off the C stack, so a higher limit does not risk the C stack here.
_RECURSION_LIMIT = 8 * MAX_DEPTH + 1000
_pack_float = struct.Struct("<f").pack
_pack_double = struct.Struct("<d").pack
_unpack_float = struct.Struct("<f").unpack_from
_unpack_double = struct.Struct("<d").unpack_from


class AvroJsonError(JsonConversionError):
    """A JSON value is not the Avro JSON encoding of its type at `path` (a union without its branch, an
    unknown branch, a bytes string with code points above 255, a wrong type ...)."""


class AvroBodyError(ValueError):
    """A binary body does not read with the schema (truncated, a bad union index, invalid UTF-8 ...)."""


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
        reader = _Body(body)
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
                value = json.loads(text, parse_float=decimal.Decimal, parse_constant=_NON_FINITE.__getitem__)
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

    def _emit(self, schema: Any, body: _Body, out: list[str]) -> None:
        node = self._node(schema)
        if isinstance(node, list):
            index = body.long()
            if not 0 <= index < len(node):
                raise AvroBodyError(f"union index {index} out of range (the union has {len(node)} branches)")
            branch = node[index]
            if self._node(branch) == "null":
                out.append("null")
                return
            out.append(f"{{{_quote(_label(self._node(branch)))}:")
            self._emit(branch, body, out)
            out.append("}")
        elif isinstance(node, str):
            out.append(_EMIT_PRIMITIVE[node](body))
        else:
            _EMIT_COMPLEX[node["type"]](self, node, body, out)

    def _emit_record(self, node: Mapping[str, Any], body: _Body, out: list[str]) -> None:
        out.append("{")
        for i, field in enumerate(node["fields"]):
            out.append(f"{',' if i else ''}{_quote(field['name'])}:")
            self._emit(field["type"], body, out)
        out.append("}")

    def _emit_blocks(self, node: Mapping[str, Any], body: _Body, out: list[str]) -> None:
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
                    out.append(f"{_quote(body.string())}:")
                self._emit(items, body, out)
        out.append("}" if is_map else "]")

    def _emit_enum(self, node: Mapping[str, Any], body: _Body, out: list[str]) -> None:
        index = body.long()
        if not 0 <= index < len(node["symbols"]):
            raise AvroBodyError(f"enum index {index} out of range for {node['name']}")
        out.append(_quote(node["symbols"][index]))

    def _emit_fixed(self, node: Mapping[str, Any], body: _Body, out: list[str]) -> None:
        out.append(_quote(body.take(node["size"]).decode("latin-1")))

    # -- JSON to binary --------------------------------------------------------------------------------

    def _encode(self, schema: Any, value: Any, out: bytearray, path: str) -> None:
        node = self._node(schema)
        if isinstance(node, list):
            self._encode_union(node, value, out, path)
        elif isinstance(node, str):
            _ENCODE_PRIMITIVE[node](value, out, path)
        else:
            _ENCODE_COMPLEX[node["type"]](self, node, value, out, path)

    def _encode_union(self, branches: list[Any], value: Any, out: bytearray, path: str) -> None:
        labels = [_label(self._node(b)) for b in branches]
        if value is None:
            if "null" not in labels:
                raise AvroJsonError(path, f"null is not a branch of the union {_names(labels)}")
            _write_long(labels.index("null"), out)
            return
        if not (isinstance(value, dict) and len(value) == 1):
            raise AvroJsonError(
                path,
                f'a union value other than null is written {{"<branch>": value}}, one of {_names(labels)};'
                f" got {_describe(value)}",
            )
        [(label, inner)] = value.items()
        if label not in labels or label == "null":
            raise AvroJsonError(path, f"unknown union branch {label!r}: the branches are {_names(labels)}")
        index = labels.index(label)
        _write_long(index, out)
        self._encode(branches[index], inner, out, path)

    def _encode_record(self, node: Mapping[str, Any], value: Any, out: bytearray, path: str) -> None:
        if not isinstance(value, dict):
            raise AvroJsonError(path, f"expected an object for record {node['name']}, got {_describe(value)}")
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
            raise AvroJsonError(path, f"expected an array, got {_describe(value)}")
        if value:
            _write_long(len(value), out)
            for i, item in enumerate(value):
                self._encode(node["items"], item, out, f"{path}[{i}]")
        out.append(0)

    def _encode_map(self, node: Mapping[str, Any], value: Any, out: bytearray, path: str) -> None:
        if not isinstance(value, dict):
            raise AvroJsonError(path, f"expected an object for a map, got {_describe(value)}")
        if value:
            _write_long(len(value), out)
            for key, item in value.items():
                _encode_string(key, out, path)
                self._encode(node["values"], item, out, f"{path}[{key!r}]")
        out.append(0)

    def _encode_enum(self, node: Mapping[str, Any], value: Any, out: bytearray, path: str) -> None:
        symbols = node["symbols"]
        if not isinstance(value, str) or value not in symbols:
            raise AvroJsonError(
                path,
                f"expected a symbol of enum {node['name']} ({', '.join(symbols)}), got {_describe(value)}",
            )
        _write_long(symbols.index(value), out)

    def _encode_fixed(self, node: Mapping[str, Any], value: Any, out: bytearray, path: str) -> None:
        data = _latin1(value, path, f"fixed {node['name']}")
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


class _Body:
    """A binary body and the read position in it."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if size < 0 or end > len(self.data):
            raise AvroBodyError(f"truncated: {size} byte(s) wanted at offset {self.pos} of {len(self.data)}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def long(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise AvroBodyError(f"truncated: a number runs past the end ({len(self.data)} bytes)")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
            if shift > 63:
                raise AvroBodyError(f"a number longer than 10 bytes at offset {self.pos}")

    def string(self) -> str:
        try:
            return self.take(self.long()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AvroBodyError(f"a string that is not UTF-8: {exc}") from None


def _emit_boolean(body: _Body) -> str:
    byte = body.take(1)[0]
    if byte > 1:
        raise AvroBodyError(f"boolean byte {byte} is neither 0 nor 1")
    return "true" if byte else "false"


def _emit_int(body: _Body) -> str:
    value = body.long()
    if not _INT[0] <= value <= _INT[1]:
        raise AvroBodyError(f"int {value} out of the 32-bit range")
    return str(value)


_EMIT_PRIMITIVE: dict[str, Callable[[_Body], str]] = {
    "null": lambda body: "null",
    "boolean": _emit_boolean,
    "int": _emit_int,
    "long": lambda body: str(body.long()),
    "float": lambda body: java_float(_unpack_float(body.take(4))[0]),
    "double": lambda body: java_double(_unpack_double(body.take(8))[0]),
    "bytes": lambda body: _quote(body.take(body.long()).decode("latin-1")),
    "string": lambda body: _quote(body.string()),
}


def _write_long(value: int, out: bytearray) -> None:
    n = (value << 1) ^ (value >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _encode_null(value: Any, out: bytearray, path: str) -> None:
    if value is not None:
        raise AvroJsonError(path, f"expected null, got {_describe(value)}")


def _encode_boolean(value: Any, out: bytearray, path: str) -> None:
    if not isinstance(value, bool):
        raise AvroJsonError(path, f"expected true or false, got {_describe(value)}")
    out.append(1 if value else 0)


def _integer(kind: str, bounds: tuple[int, int]) -> Callable[[Any, bytearray, str], None]:
    def encode(value: Any, out: bytearray, path: str) -> None:
        if type(value) is not int:
            raise AvroJsonError(path, f"expected an {kind} (a whole number), got {_describe(value)}")
        if not bounds[0] <= value <= bounds[1]:
            raise AvroJsonError(path, f"{value} is out of the range of {kind} ({bounds[0]}..{bounds[1]})")
        _write_long(value, out)

    return encode


def _real(value: Any, path: str, kind: str) -> float:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, decimal.Decimal | float) or type(value) is int:
        try:
            number = float(value)
        except OverflowError:
            raise AvroJsonError(path, f"{value} is too large for a {kind}") from None
        if math.isinf(number) and not (isinstance(value, float) and math.isinf(value)):
            raise AvroJsonError(path, f"{value} is too large for a {kind}")
        return number
    raise AvroJsonError(
        path, f'expected a number (or "NaN", "Infinity", "-Infinity"), got {_describe(value)}'
    )


def _encode_float(value: Any, out: bytearray, path: str) -> None:
    try:
        out += _pack_float(_real(value, path, "float"))
    except OverflowError:
        raise AvroJsonError(path, f"{value} is too large for a float (32-bit)") from None


def _encode_double(value: Any, out: bytearray, path: str) -> None:
    out += _pack_double(_real(value, path, "double"))


def _encode_bytes(value: Any, out: bytearray, path: str) -> None:
    data = _latin1(value, path, "bytes")
    _write_long(len(data), out)
    out += data


def _encode_string(value: Any, out: bytearray, path: str) -> None:
    if not isinstance(value, str):
        raise AvroJsonError(path, f"expected a string, got {_describe(value)}")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise AvroJsonError(
            path, "a string with a lone surrogate (\\uD800-\\uDFFF) is not Unicode text"
        ) from None
    _write_long(len(data), out)
    out += data


_ENCODE_PRIMITIVE: dict[str, Callable[[Any, bytearray, str], None]] = {
    "null": _encode_null,
    "boolean": _encode_boolean,
    "int": _integer("int", _INT),
    "long": _integer("long", _LONG),
    "float": _encode_float,
    "double": _encode_double,
    "bytes": _encode_bytes,
    "string": _encode_string,
}


def _latin1(value: Any, path: str, kind: str) -> bytes:
    if not isinstance(value, str):
        raise AvroJsonError(
            path, f"expected a string of code points 0-255 for {kind}, got {_describe(value)}"
        )
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError as exc:
        char = value[exc.start]
        raise AvroJsonError(
            path,
            f"{kind} is written as a string of code points 0-255 (\\u0000-\\u00FF); position {exc.start} is "
            f"U+{ord(char):04X}",
        ) from None


def java_float(value: float) -> str:
    """Java's ``Float.toString`` of a float32 value (Java 19+), as Jackson writes it (non-finite quoted)."""
    if not math.isfinite(value):
        return _quote(_java_non_finite(value))
    for precision in range(1, 10):
        text = f"{value:.{precision - 1}e}"
        try:
            if _unpack_float(_pack_float(float(text)))[0] == value:
                break
        except OverflowError:  # rounded up past the largest float
            continue
    if precision == 1:
        text = f"{value:.1e}"
    return _java_layout(text)


def java_double(value: float) -> str:
    """Java's ``Double.toString`` (Java 19+), as Jackson writes it (non-finite quoted)."""
    if not math.isfinite(value):
        return _quote(_java_non_finite(value))
    text = repr(value)
    digits = "".join(map(str, decimal.Decimal(text).as_tuple().digits)).rstrip("0")
    if len(digits) <= 1:
        text = f"{value:.1e}"
    return _java_layout(text)


def _java_non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _java_layout(text: str) -> str:
    """Lay out a decimal as Java does: plain for 1e-3 <= |x| < 1e7, else d.dddEn; always a fraction digit."""
    sign, digit_tuple, exponent = decimal.Decimal(text).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)  # noqa: S101 - finite values only reach here
    # the power of ten of the first digit: value = d.ddd x 10**point
    point = exponent + len(digit_tuple) - 1 if any(digit_tuple) else 0
    negative = "-" if sign else ""
    if digits == "0":
        return f"{negative}0.0"
    if -3 <= point < 7:
        if point >= 0:
            whole = digits[: point + 1].ljust(point + 1, "0")
            return f"{negative}{whole}.{digits[point + 1 :] or '0'}"
        return f"{negative}0.{'0' * (-point - 1)}{digits}"
    return f"{negative}{digits[0]}.{digits[1:] or '0'}E{point}"


def _quote(text: str) -> str:
    return f'"{_ESCAPED.sub(_escape, text)}"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04X}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"


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


def _describe(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    kind = kinds.get(type(value), "a number")
    shown = json.dumps(value, default=str)
    return f"{kind} {shown[:40]}{'...' if len(shown) > 40 else ''}"


__all__ = ["AvroBodyError", "AvroJsonCodec", "AvroJsonError", "java_double", "java_float"]

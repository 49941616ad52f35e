"""The primitive types of Avro JSON, each both ways: a binary body read to JSON text, JSON values written.

Used by `workers.avro_json_encoding`, which walks the schema's records, arrays, maps, enums, fixed and
unions; the errors of both live here.
"""

from __future__ import annotations

import decimal
import json
import math
import struct
from collections.abc import Callable
from typing import Any

from workers.avro_json import JsonConversionError
from workers.avro_json_text import java_double, java_float, quote

_INT = (-(2**31), 2**31 - 1)
_LONG = (-(2**63), 2**63 - 1)
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_pack_float = struct.Struct("<f").pack
_pack_double = struct.Struct("<d").pack
_unpack_float = struct.Struct("<f").unpack_from
_unpack_double = struct.Struct("<d").unpack_from


class AvroJsonError(JsonConversionError):
    """A JSON value is not the Avro JSON encoding of its type at `path` (a union without its branch, an
    unknown branch, a bytes string with code points above 255, a wrong type ...)."""


class AvroBodyError(ValueError):
    """A binary body does not read with the schema (truncated, a bad union index, invalid UTF-8 ...)."""


class Body:
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


def _emit_boolean(body: Body) -> str:
    byte = body.take(1)[0]
    if byte > 1:
        raise AvroBodyError(f"boolean byte {byte} is neither 0 nor 1")
    return "true" if byte else "false"


def _emit_int(body: Body) -> str:
    value = body.long()
    if not _INT[0] <= value <= _INT[1]:
        raise AvroBodyError(f"int {value} out of the 32-bit range")
    return str(value)


EMIT_PRIMITIVE: dict[str, Callable[[Body], str]] = {
    "null": lambda body: "null",
    "boolean": _emit_boolean,
    "int": _emit_int,
    "long": lambda body: str(body.long()),
    "float": lambda body: java_float(_unpack_float(body.take(4))[0]),
    "double": lambda body: java_double(_unpack_double(body.take(8))[0]),
    "bytes": lambda body: quote(body.take(body.long()).decode("latin-1")),
    "string": lambda body: quote(body.string()),
}


def write_long(value: int, out: bytearray) -> None:
    n = (value << 1) ^ (value >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _encode_null(value: Any, out: bytearray, path: str) -> None:
    if value is not None:
        raise AvroJsonError(path, f"expected null, got {describe(value)}")


def _encode_boolean(value: Any, out: bytearray, path: str) -> None:
    if not isinstance(value, bool):
        raise AvroJsonError(path, f"expected true or false, got {describe(value)}")
    out.append(1 if value else 0)


def _integer(kind: str, bounds: tuple[int, int]) -> Callable[[Any, bytearray, str], None]:
    def encode(value: Any, out: bytearray, path: str) -> None:
        if type(value) is not int:
            raise AvroJsonError(path, f"expected an {kind} (a whole number), got {describe(value)}")
        if not bounds[0] <= value <= bounds[1]:
            raise AvroJsonError(path, f"{value} is out of the range of {kind} ({bounds[0]}..{bounds[1]})")
        write_long(value, out)

    return encode


def _real(value: Any, path: str, kind: str) -> float:
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    if isinstance(value, decimal.Decimal | float) or type(value) is int:
        try:
            number = float(value)
        except OverflowError:
            raise AvroJsonError(path, f"{value} is too large for a {kind}") from None
        if math.isinf(number) and not (isinstance(value, float) and math.isinf(value)):
            raise AvroJsonError(path, f"{value} is too large for a {kind}")
        return number
    raise AvroJsonError(path, f'expected a number (or "NaN", "Infinity", "-Infinity"), got {describe(value)}')


def _encode_float(value: Any, out: bytearray, path: str) -> None:
    try:
        out += _pack_float(_real(value, path, "float"))
    except OverflowError:
        raise AvroJsonError(path, f"{value} is too large for a float (32-bit)") from None


def _encode_double(value: Any, out: bytearray, path: str) -> None:
    out += _pack_double(_real(value, path, "double"))


def _encode_bytes(value: Any, out: bytearray, path: str) -> None:
    data = latin1(value, path, "bytes")
    write_long(len(data), out)
    out += data


def encode_string(value: Any, out: bytearray, path: str) -> None:
    if not isinstance(value, str):
        raise AvroJsonError(path, f"expected a string, got {describe(value)}")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise AvroJsonError(
            path, "a string with a lone surrogate (\\uD800-\\uDFFF) is not Unicode text"
        ) from None
    write_long(len(data), out)
    out += data


ENCODE_PRIMITIVE: dict[str, Callable[[Any, bytearray, str], None]] = {
    "null": _encode_null,
    "boolean": _encode_boolean,
    "int": _integer("int", _INT),
    "long": _integer("long", _LONG),
    "float": _encode_float,
    "double": _encode_double,
    "bytes": _encode_bytes,
    "string": encode_string,
}


def latin1(value: Any, path: str, kind: str) -> bytes:
    if not isinstance(value, str):
        raise AvroJsonError(path, f"expected a string of code points 0-255 for {kind}, got {describe(value)}")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError as exc:
        char = value[exc.start]
        raise AvroJsonError(
            path,
            f"{kind} is written as a string of code points 0-255 (\\u0000-\\u00FF); position {exc.start} is "
            f"U+{ord(char):04X}",
        ) from None


def describe(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    kind = kinds.get(type(value), "a number")
    shown = json.dumps(value, default=str)
    return f"{kind} {shown[:40]}{'...' if len(shown) > 40 else ''}"


__all__ = [
    "EMIT_PRIMITIVE",
    "ENCODE_PRIMITIVE",
    "NON_FINITE",
    "AvroBodyError",
    "AvroJsonError",
    "Body",
    "describe",
    "encode_string",
    "latin1",
    "write_long",
]

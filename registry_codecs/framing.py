"""Confluent wire-format framing: pure functions over bytes, no I/O.

A frame is the magic byte ``0x00``, the schema id as a 4-byte big-endian unsigned integer, then the
serialized body. This module is the one place in the project that knows that layout.
"""

from __future__ import annotations

import struct

from registry_codecs.errors import FramingError

MAGIC_BYTE = 0
HEADER_SIZE = 5
MAX_SCHEMA_ID = 2**32 - 1

_HEADER = struct.Struct(">BI")


def header(schema_id: int) -> bytes:
    """Return the 5-byte header for `schema_id`.

    Raises:
        FramingError: the id does not fit in an unsigned 32-bit integer.
    """
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise FramingError(f"schema id {schema_id} is outside 0..{MAX_SCHEMA_ID}")
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def frame(schema_id: int, body: bytes) -> bytes:
    """Return `body` prefixed with the Confluent header for `schema_id`."""
    return header(schema_id) + body


def schema_id_of(data: bytes | bytearray | memoryview) -> int:
    """Return the schema id of a frame without touching its body.

    Raises:
        FramingError: `data` is empty, shorter than 5 bytes, or does not start with the magic byte.
    """
    if len(data) < HEADER_SIZE:
        raise _short(data)
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise FramingError(
            f"unknown magic byte 0x{magic:02x} (expected 0x00) in a frame of {len(data)} bytes"
        )
    return int(schema_id)


def looks_framed(data: bytes | bytearray | memoryview) -> bool:
    """Whether `data` starts like a frame: the magic byte and room for the schema id (the body may be
    empty: a record with no fields, or a null, encodes to no bytes)."""
    return len(data) >= HEADER_SIZE and data[0] == MAGIC_BYTE


def unframe(data: bytes | bytearray | memoryview) -> tuple[int, memoryview]:
    """Split a frame into its schema id and its body (a zero-copy view).

    Raises:
        FramingError: `data` is empty, shorter than 5 bytes, or does not start with the magic byte.
    """
    schema_id = schema_id_of(data)
    return schema_id, memoryview(data)[HEADER_SIZE:]


def _short(data: bytes | bytearray | memoryview) -> FramingError:
    if not data:
        return FramingError("empty message: expected a 5-byte Confluent header (got 0 bytes)")
    return FramingError(
        f"message of {len(data)} bytes is shorter than the 5-byte Confluent header "
        f"(starts with {bytes(data[:HEADER_SIZE]).hex(' ')})"
    )


__all__ = [
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "MAX_SCHEMA_ID",
    "frame",
    "header",
    "looks_framed",
    "schema_id_of",
    "unframe",
]

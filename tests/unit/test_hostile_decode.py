"""Hostile Avro bodies against the decode path: lengths and counts past the end of the body, arrays of
items that take no bytes, recursion deeper than the C stack. Each is refused with a DecodeError, quickly and
without allocating what the body claims; valid bodies of the same schemas still decode."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_codecs import AvroDeserializer, DecodeError, RegisteredSchema, frame
from registry_codecs.avro import parse_avro
from registry_codecs.bounds import MAX_DEPTH, MAX_EMPTY_ITEMS, BodyOutOfBounds, check_body, needs_check
from registry_codecs.errors import SchemaNotFound

NODE = {
    "type": "record",
    "name": "Node",
    "namespace": "t",
    "fields": [{"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
}
EMPTY = {"type": "record", "name": "Empty", "namespace": "t", "fields": []}
HOSTILE_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "long"},
    {"name": "name", "type": "string"},
    {"name": "blob", "type": "bytes"},
    {"name": "tags", "type": {"type": "array", "items": "int"}},
    {"name": "attrs", "type": {"type": "map", "values": "null"}},
    {"name": "nulls", "type": {"type": "array", "items": "null"}},
    {"name": "empties", "type": {"type": "array", "items": EMPTY}},
    {"name": "tree", "type": ["null", NODE]},
]
HOSTILE = {"type": "record", "name": "Hostile", "namespace": "t", "fields": HOSTILE_FIELDS}


def zigzag(n: int) -> bytes:
    """Avro's long encoding (zig-zag varint)."""
    value = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


class Lookup:
    """A SchemaLookup holding schemas by id (the decode path's only collaborator)."""

    def __init__(self, schemas: dict[int, Any]) -> None:
        self.schemas = {i: json.dumps(s) for i, s in schemas.items()}

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        if schema_id not in self.schemas:
            raise SchemaNotFound(f"schema {schema_id} not found")
        return RegisteredSchema(schema_id, self.schemas[schema_id])

    def get_latest(self, subject: str) -> RegisteredSchema:
        raise NotImplementedError

    def register(self, subject: str, schema_str: str, schema_type: str = "AVRO") -> int:
        raise NotImplementedError


def decoder(schema: Any) -> AvroDeserializer:
    return AvroDeserializer(Lookup({1: schema}))  # type: ignore[arg-type]  # a minimal SchemaLookup


def valid_hostile(depth: int = 3) -> dict[str, Any]:
    tree: dict[str, Any] | None = None
    for i in range(depth):
        tree = {"value": i, "next": tree}
    return {
        "id": 7,
        "name": "n",
        "blob": b"\x00\x01",
        "tags": [1, 2, 3],
        "attrs": {"a": None},
        "nulls": [None] * 5,
        "empties": [{}, {}],
        "tree": tree,
    }


def body_of(schema: Any, record: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def refused_quickly(schema: Any, body: bytes) -> DecodeError:
    """Decode `body`; assert it is refused with a DecodeError and allocates little on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError) as caught:
            decoder(schema).decode(frame(1, body))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, f"refusing a {len(body)}-byte body allocated {peak} bytes"
    return caught.value


@pytest.mark.parametrize("kind", ["string", "bytes"])
def test_a_length_of_2_to_the_40_is_refused_without_allocating_it(kind: str) -> None:
    error = refused_quickly(kind, zigzag(2**40) + b"abc")
    assert "1099511627776" in str(error)


def test_an_array_of_2_to_the_40_nulls_is_refused_without_building_it() -> None:
    error = refused_quickly({"type": "array", "items": "null"}, zigzag(2**40) + zigzag(0))
    assert isinstance(error.__cause__, BodyOutOfBounds)
    assert "empty items" in str(error)


def test_an_array_block_of_2_to_the_40_empty_records_with_a_block_size_is_refused() -> None:
    body = zigzag(-(2**40)) + zigzag(0) + zigzag(0)  # negative count: a byte size follows
    error = refused_quickly({"type": "array", "items": EMPTY}, body)
    assert isinstance(error.__cause__, BodyOutOfBounds)


def test_an_array_of_2_to_the_40_ints_in_ten_bytes_is_refused() -> None:
    refused_quickly({"type": "array", "items": "int"}, zigzag(2**40) + b"\x02" * 10)


def test_a_map_claiming_2_to_the_40_entries_is_refused() -> None:
    refused_quickly({"type": "map", "values": "null"}, zigzag(2**40) + b"\x02a" * 5)


def test_empty_items_skipped_by_a_reader_schema_are_refused_too() -> None:
    # The reader drops the field, so fastavro would skip 2**40 nulls: no memory, but a CPU stall.
    reader = {"type": "record", "name": "Hostile", "namespace": "t", "fields": HOSTILE_FIELDS[:1]}
    body = zigzag(1) + zigzag(0) + zigzag(0) + zigzag(0) + zigzag(0) + zigzag(2**40) + zigzag(0)
    deserializer = AvroDeserializer(Lookup({1: HOSTILE}), reader_schema=json.dumps(reader))  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="empty items"):
        deserializer.decode(frame(1, body))


def test_recursion_deeper_than_the_bound_is_refused_not_a_segfault() -> None:
    # fastavro's compiled reader recurses on the C stack: 10 000 levels kill the interpreter. Run in a
    # child process so that, were the guard missing, the test fails instead of taking pytest down.
    script = (
        "import json, sys\n"
        "from registry_codecs import AvroDeserializer, DecodeError, RegisteredSchema, frame\n"
        "class L:\n"
        "    def get_schema(self, i): return RegisteredSchema(1, sys.argv[1])\n"
        "body = b'\\x02\\x02' * 20000 + b'\\x02\\x00'\n"
        "try:\n"
        "    AvroDeserializer(L()).decode(frame(1, body))\n"
        "except DecodeError as exc:\n"
        "    print('refused:', exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(NODE)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "refused:" in done.stdout and f"deeper than {MAX_DEPTH}" in done.stdout


def test_valid_bodies_of_guarded_schemas_still_decode() -> None:
    record = valid_hostile(depth=100)  # deep records: tests/unit/test_deep_records.py
    assert decoder(HOSTILE).decode(frame(1, body_of(HOSTILE, record))) == record
    nulls = [None] * MAX_EMPTY_ITEMS
    array_of_nulls = {"type": "array", "items": "null"}
    assert decoder(array_of_nulls).decode(frame(1, body_of(array_of_nulls, nulls))) == nulls


def test_only_schemas_with_unbounded_shapes_are_walked() -> None:
    assert needs_check(parse_avro(json.dumps(NODE)))
    assert needs_check(parse_avro(json.dumps({"type": "array", "items": "null"})))
    assert needs_check(parse_avro(json.dumps({"type": "array", "items": EMPTY})))
    assert needs_check(parse_avro(json.dumps(HOSTILE)))
    zero_fixed = {"type": "array", "items": {"type": "fixed", "name": "Z", "size": 0}}
    assert needs_check(parse_avro(json.dumps(zero_fixed)))
    for bounded in (
        "string",
        {"type": "map", "values": "null"},
        {"type": "array", "items": ["null", "int"]},
        {"type": "array", "items": {"type": "array", "items": "int"}},
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "e", "type": EMPTY}, {"name": "f", "type": "t.Empty"}],
        },
    ):
        assert not needs_check(parse_avro(json.dumps(bounded))), bounded


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_bodies_never_escape_as_anything_but_decode_errors(data: st.DataObject) -> None:
    body = bytearray(body_of(HOSTILE, valid_hostile()))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "huge"]))
        if action == "flip" and at < len(body):
            body[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del body[at:]
        elif action == "insert":
            body[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            body[at:at] = zigzag(data.draw(st.sampled_from([2**31, 2**40, -(2**40), 2**62])))
    try:
        decoder(HOSTILE).decode(frame(1, bytes(body)))
    except DecodeError:
        pass


def test_the_walk_agrees_with_fastavro_on_valid_bodies() -> None:
    parsed = parse_avro(json.dumps(HOSTILE))
    for depth in (0, 1, 10):
        check_body(parsed, body_of(HOSTILE, valid_hostile(depth)))
    with pytest.raises(BodyOutOfBounds, match="past the end"):
        check_body(parsed, body_of(HOSTILE, valid_hostile(2))[:-1])

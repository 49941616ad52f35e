"""Deep records of a recursive schema: up to `MAX_DEPTH` levels (each record, array and map counts one; a
union none) decode and encode; past it, decode and encode refuse with ``record_too_deep`` instead of
crashing the interpreter in fastavro's C reader or writer. The crashing cases run in a child process, so a
missing guard fails the test rather than taking pytest down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from registry_codecs import AvroDeserializer, AvroSerializer, DecodeError, InMemorySchemaLookup, frame
from registry_codecs.bounds import MAX_DEPTH, BodyTooDeep, RecordTooDeep

CHAIN = {
    "type": "record",
    "name": "Chain",
    "namespace": "t",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "next", "type": ["null", "Chain"], "default": None},
    ],
}
#: A tree: a record, an array, a record per level (two levels each).
TREE = {
    "type": "record",
    "name": "Tree",
    "namespace": "t",
    "fields": [{"name": "children", "type": {"type": "array", "items": "Tree"}}],
}


def zigzag(n: int) -> bytes:
    value, out = (n << 1) ^ (n >> 63), bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            return bytes(out + bytes([byte]))
        out.append(byte | 0x80)


def chain_body(levels: int) -> bytes:
    """The Avro body of a chain of `levels` records, written by hand (fastavro's writer is what is tested)."""
    return b"".join(zigzag(i) + b"\x02" for i in range(levels - 1)) + zigzag(levels - 1) + b"\x00"


def chain(levels: int) -> dict[str, Any]:
    record: dict[str, Any] = {"id": levels - 1, "next": None}
    for i in range(levels - 2, -1, -1):
        record = {"id": i, "next": record}
    return record


def chain_levels(record: dict[str, Any]) -> list[int]:
    """The ids down the chain, walked without recursion (== on such a dict recurses past Python's limit)."""
    ids = []
    node: dict[str, Any] | None = record
    while node is not None:
        ids.append(node["id"])
        node = node["next"]
    return ids


@pytest.fixture
def lookup() -> InMemorySchemaLookup:
    lookup = InMemorySchemaLookup()
    lookup.register("chain-value", json.dumps(CHAIN))
    lookup.register("tree-value", json.dumps(TREE))
    return lookup


def test_a_chain_of_max_depth_records_decodes(lookup: InMemorySchemaLookup) -> None:
    record = AvroDeserializer(lookup).decode(frame(1, chain_body(MAX_DEPTH)))
    assert chain_levels(record) == list(range(MAX_DEPTH))


def test_a_chain_of_1000_records_encodes_to_the_bytes_java_would_write(lookup: InMemorySchemaLookup) -> None:
    assert MAX_DEPTH >= 1000
    encoded = AvroSerializer(lookup, "chain-value").encode(chain(1000))
    assert encoded == frame(1, chain_body(1000))


def test_one_level_past_the_limit_is_refused_on_decode_and_encode(lookup: InMemorySchemaLookup) -> None:
    with pytest.raises(BodyTooDeep, match=f"deeper than {MAX_DEPTH}") as refused:
        AvroDeserializer(lookup).decode(frame(1, chain_body(MAX_DEPTH + 1)))
    assert isinstance(refused.value, DecodeError) and refused.value.reason == "record_too_deep"
    with pytest.raises(RecordTooDeep, match=f"deeper than {MAX_DEPTH}") as too_deep:
        AvroSerializer(lookup, "chain-value").encode(chain(MAX_DEPTH + 1))
    assert too_deep.value.reason == "record_too_deep" and too_deep.value.schema_id == 1


def test_arrays_count_as_levels(lookup: InMemorySchemaLookup) -> None:
    records = MAX_DEPTH // 2  # a record and its array per level: MAX_DEPTH levels in all
    tree: dict[str, Any] = {"children": []}
    for _ in range(records - 1):
        tree = {"children": [tree]}
    body = b"\x02" * (records - 1) + b"\x00" + b"\x00" * (records - 1)
    assert AvroSerializer(lookup, "tree-value").encode(tree) == frame(2, body)
    assert AvroDeserializer(lookup).decode(frame(2, body)) is not None
    with pytest.raises(RecordTooDeep):
        AvroSerializer(lookup, "tree-value").encode({"children": [tree]})
    with pytest.raises(BodyTooDeep):
        AvroDeserializer(lookup).decode(frame(2, b"\x02" + body + b"\x00"))


SCRIPT = """
import json, sys
from registry_codecs import AvroSerializer, AvroDeserializer, CodecError, InMemorySchemaLookup, frame
lookup = InMemorySchemaLookup()
lookup.register("chain-value", sys.argv[1])
record = None
for i in range(10_000):
    record = {"id": i, "next": record}
try:
    AvroSerializer(lookup, "chain-value").encode(record)
except CodecError as exc:
    print("encode refused:", exc.reason)
body = b"\\x00\\x02" * 9_999 + b"\\x00\\x00"
try:
    AvroDeserializer(lookup).decode(frame(1, body))
except CodecError as exc:
    print("decode refused:", exc.reason)
"""


def test_ten_thousand_levels_are_refused_not_a_segfault() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(CHAIN)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.split("\n")[:2] == [
        "encode refused: record_too_deep",
        "decode refused: record_too_deep",
    ]

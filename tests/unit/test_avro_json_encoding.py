"""Avro's JSON encoding between binary bodies and text: the spec's forms, Java's text, exact round trips.

Expected strings are written by hand from the Avro specification ("JSON Encoding") and from what Avro's
Java JsonEncoder prints (tests/integration/test_avro_json_java.py runs the real one on the same cases).
The round trip ``from_json(to_json(body)) == body`` is checked over random bodies of every schema in
schemas/, of hard schemas (unions of records, enums, fixed, decimals, timestamps, maps, arrays,
recursion, unions that fastavro's Python values cannot tell apart) and of generated schemas.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_avro_properties import schemas as generated_schemas

from workers.avro_json_encoding import AvroBodyError, AvroJsonCodec, AvroJsonError, java_double, java_float

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
REPO_SCHEMAS = sorted(SCHEMAS_DIR.rglob("*.avsc"))

CREATED = {"type": "record", "name": "Created", "fields": [{"name": "id", "type": "long"}]}
DELETED = {
    "type": "record",
    "name": "Deleted",
    "namespace": "other",
    "fields": [{"name": "id", "type": "long"}],
}
KIND = {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}
MD5 = {"type": "fixed", "name": "Md5", "size": 4}
PRICE = {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}
FIXED_PRICE = {
    "type": "fixed",
    "name": "Cents",
    "size": 3,
    "logicalType": "decimal",
    "precision": 6,
    "scale": 2,
}

HARD: dict[str, Any] = {
    "events": {
        "type": "record",
        "name": "Event",
        "namespace": "shop",
        "fields": [
            {"name": "change", "type": [CREATED, DELETED]},
            {"name": "maybe", "type": ["null", "shop.Created", "other.Deleted"]},
        ],
    },
    "scalars": {
        "type": "record",
        "name": "Scalars",
        "namespace": "t",
        "fields": [
            {"name": "kind", "type": KIND},
            {"name": "md5", "type": MD5},
            {"name": "price", "type": PRICE},
            {"name": "cents", "type": FIXED_PRICE},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "tick", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "text", "type": "string"},
            {"name": "blob", "type": "bytes"},
            {"name": "flag", "type": "boolean"},
        ],
    },
    "ambiguous": {  # unions whose branches fastavro's decoded Python values cannot tell apart
        "type": "record",
        "name": "Ambiguous",
        "fields": [
            {"name": "number", "type": ["int", "long"]},
            {"name": "real", "type": ["float", "double"]},
            {"name": "word", "type": [KIND, "string"]},
            {"name": "raw", "type": [MD5, "bytes"]},
            {
                "name": "shape",
                "type": [{"type": "map", "values": "int"}, {"type": "record", "name": "P", "fields": []}],
            },
            {"name": "time", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}, "string"]},
        ],
    },
    "containers": {
        "type": "record",
        "name": "Containers",
        "fields": [
            {"name": "grid", "type": {"type": "array", "items": {"type": "array", "items": ["null", "int"]}}},
            {"name": "props", "type": {"type": "map", "values": ["null", "string", PRICE]}},
            {
                "name": "deep",
                "type": {
                    "type": "map",
                    "values": {"type": "array", "items": {"type": "map", "values": "long"}},
                },
            },
        ],
    },
    "recursion": {
        "type": "record",
        "name": "Node",
        "namespace": "tree",
        "fields": [
            {"name": "label", "type": "string"},
            {"name": "children", "type": {"type": "array", "items": "Node"}},
            {"name": "next", "type": ["null", "Node"]},
        ],
    },
    "top-level union": ["null", "string", CREATED],
    "top-level map": {"type": "map", "values": KIND},
}


def codec(schema: Any) -> AvroJsonCodec:
    return AvroJsonCodec(fastavro.parse_schema(schema))


def write(schema: Any, datum: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), datum)
    return buf.getvalue()


# -- the forms of the spec, as Java prints them ----------------------------------------------------------


def test_union_values_are_wrapped_in_their_branch_full_name_and_null_is_bare() -> None:
    schema = HARD["events"]
    body = write(schema, {"change": ("other.Deleted", {"id": 3}), "maybe": None})
    assert codec(schema).to_json(body) == '{"change":{"other.Deleted":{"id":3}},"maybe":null}'
    body = write(schema, {"change": ("shop.Created", {"id": 4}), "maybe": ("shop.Created", {"id": 5})})
    assert (
        codec(schema).to_json(body)
        == '{"change":{"shop.Created":{"id":4}},"maybe":{"shop.Created":{"id":5}}}'
    )


def test_primitive_array_and_map_branches_use_the_type_name() -> None:
    schema = ["null", "int", "long", {"type": "array", "items": "int"}, {"type": "map", "values": "int"}]
    parsed = codec(schema)
    assert parsed.to_json(b"\x04\x0a") == '{"long":5}'
    assert parsed.to_json(b"\x02\x0a") == '{"int":5}'
    assert parsed.to_json(b"\x06\x02\x02\x00") == '{"array":[1]}'
    assert parsed.to_json(b"\x08\x02\x02k\x02\x00") == '{"map":{"k":1}}'
    assert parsed.to_json(b"\x00") == "null"


def test_bytes_fixed_and_decimals_are_strings_of_code_points_0_to_255() -> None:
    schema = {
        "type": "record",
        "name": "B",
        "fields": [
            {"name": "blob", "type": "bytes"},
            {"name": "md5", "type": MD5},
            {"name": "price", "type": PRICE},
        ],
    }
    body = write(
        {**schema, "fields": [*schema["fields"][:2], {"name": "price", "type": "bytes"}]},
        {"blob": b"\x00\x1f\x7f\x80\xff", "md5": b"ab\n\xe9", "price": (1990).to_bytes(2, "big")},
    )
    text = codec(schema).to_json(body)
    # below U+0020 escaped in upper-case hex, 0x7F and above raw (UTF-8 in the output)
    assert text == '{"blob":"\\u0000\\u001F\x7f\x80\xff","md5":"ab\\n\xe9","price":"\\u0007\xc6"}'
    assert codec(schema).from_json(text) == body


def test_logical_types_print_as_their_underlying_type() -> None:
    schema = HARD["scalars"]
    record = {
        "kind": "B",
        "md5": b"\x01\x02\x03\x04",
        "price": b"\x07\xc6",
        "cents": b"\x00\x07\xc6",
        "at": 1714566600000,
        "at_us": 1714566600000001,
        "local": 5,
        "day": 19844,
        "tick": 29700500,
        "id": "7f1b6a52-54f7-4d33-9a3c-1c0a7a9c6f10",
        "f": 0.5,
        "d": -2.5,
        "text": "é€😀",
        "blob": b"",
        "flag": True,
    }
    body = write(_underlying(schema), record)
    assert codec(schema).to_json(body) == (
        '{"kind":"B","md5":"\\u0001\\u0002\\u0003\\u0004","price":"\\u0007\xc6","cents":"\\u0000\\u0007\xc6",'
        '"at":1714566600000,"at_us":1714566600000001,"local":5,"day":19844,"tick":29700500,'
        '"id":"7f1b6a52-54f7-4d33-9a3c-1c0a7a9c6f10","f":0.5,"d":-2.5,"text":"é€\\uD83D\\uDE00",'
        '"blob":"","flag":true}'
    )


def test_strings_escape_as_jackson_does() -> None:
    body = write("string", 'q"b\\\b\t\n\f\r\x01\x7f\u2028é😀')
    assert codec("string").to_json(body) == '"q\\"b\\\\\\b\\t\\n\\f\\r\\u0001\x7f\u2028é\\uD83D\\uDE00"'
    assert codec("string").from_json(codec("string").to_json(body)) == body


@pytest.mark.parametrize(
    ("value", "double", "single"),
    [
        (0.1, "0.1", "0.1"),
        (1.0, "1.0", "1.0"),
        (100.0, "100.0", "100.0"),
        (1e7, "1.0E7", "1.0E7"),
        (1234567.0, "1234567.0", "1234567.0"),
        (1e-3, "0.001", "0.001"),
        (1e-4, "1.0E-4", "1.0E-4"),
        (-0.0, "-0.0", "-0.0"),
        (0.0, "0.0", "0.0"),
        (1e23, "1.0E23", "1.0E23"),
        (5e-324, "4.9E-324", "0.0"),
        (1.4e-45, "1.4E-45", "1.4E-45"),
        (3.4028234663852886e38, "3.4028234663852886E38", "3.4028235E38"),
        (math.nan, '"NaN"', '"NaN"'),
        (math.inf, '"Infinity"', '"Infinity"'),
        (-math.inf, '"-Infinity"', '"-Infinity"'),
    ],
)
def test_floats_print_as_java_does(value: float, double: str, single: str) -> None:
    assert java_double(value) == double
    assert java_float(struct.unpack("<f", struct.pack("<f", value))[0]) == single
    for kind, text in (("double", double), ("float", single)):
        body = codec(kind).from_json(text)
        assert codec(kind).to_json(body) == text


# -- refusals: a clear message naming the field path ----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "path", "words"),
    [
        ('{"change":{"id":1},"maybe":null}', "change", "unknown union branch 'id'"),
        ('{"change":{"Created":{"id":1}},"maybe":null}', "change", "shop.Created, other.Deleted"),
        ('{"change":{"shop.Created":{"id":1}},"maybe":{"id":2}}', "maybe", "unknown union branch"),
        ('{"change":{"shop.Created":{"id":"1"}},"maybe":null}', "change.id", "expected an long"),
        ('{"change":{"shop.Created":{"id":1.5}},"maybe":null}', "change.id", "whole number"),
        ('{"change":{"shop.Created":{"id":1, "x":2}},"maybe":null}', "change.x", "no field 'x'"),
        ('{"change":{"shop.Created":{}},"maybe":null}', "change.id", "missing field 'id'"),
        (
            '{"change":{"shop.Created":{"id":9223372036854775808}},"maybe":null}',
            "change.id",
            "out of the range",
        ),
        ('{"change":{"shop.Created":{"id":1}}}', "maybe", "missing field"),
    ],
)
def test_bad_avro_json_is_refused_naming_the_field(line: str, path: str, words: str) -> None:
    with pytest.raises(AvroJsonError) as exc:
        codec(HARD["events"]).from_json(line)
    assert exc.value.path == path
    assert words in str(exc.value)


def test_a_union_without_its_branch_wrapper_is_refused_with_the_branches() -> None:
    with pytest.raises(AvroJsonError, match=r'written \{"<branch>": value\}, one of \[null, int, long\]'):
        codec(["null", "int", "long"]).from_json("5")


@pytest.mark.parametrize(
    ("schema", "text", "words"),
    [
        ("bytes", '"\\u20ac"', "position 0 is U+20AC"),
        (MD5, '"abc"', "holds 4 bytes, got a string of 3"),
        (KIND, '"Z"', "expected a symbol of enum Kind (A, B, C)"),
        ("float", "1e39", "too large for a float"),
        ("double", "1e400", "too large for a double"),
        ("double", '"1.5"', "expected a number"),
        ("int", "true", "got a boolean"),
        ("boolean", "1", "expected true or false"),
        ("string", '"\\ud800"', "lone surrogate"),
        ("string", "{oops", "not JSON"),
    ],
)
def test_wrong_types_are_refused(schema: Any, text: str, words: str) -> None:
    with pytest.raises(AvroJsonError, match=re.escape(words)):
        codec(schema).from_json(text)


def test_a_body_that_does_not_read_is_refused() -> None:
    with pytest.raises(AvroBodyError, match="union index 5"):
        codec(["null", "int"]).to_json(b"\x0a")
    with pytest.raises(AvroBodyError, match="truncated"):
        codec("string").to_json(b"\x0aab")
    with pytest.raises(AvroBodyError, match="left after"):
        codec("int").to_json(b"\x02\x02")


def test_nan_and_infinities_read_back_from_strings_and_bare_tokens() -> None:
    for text in ('"NaN"', "NaN"):
        assert math.isnan(struct.unpack("<d", codec("double").from_json(text))[0])
    assert codec("float").from_json('"-Infinity"') == struct.pack("<f", -math.inf)


# -- round trips over random bodies ----------------------------------------------------------------------


def _underlying(schema: Any) -> Any:
    """`schema` without logical types: random underlying values need not be valid dates or decimals."""
    if isinstance(schema, list):
        return [_underlying(s) for s in schema]
    if isinstance(schema, dict):
        return {k: _underlying(v) for k, v in schema.items() if k != "logicalType"}
    return schema


class _Bodies:
    """Random values of a schema in fastavro's tuple notation for every union, so each branch is drawn."""

    def __init__(self, parsed: Any) -> None:
        self.named: dict[str, Any] = {}
        self._collect(parsed)

    def _collect(self, schema: Any) -> None:
        if isinstance(schema, list):
            for s in schema:
                self._collect(s)
        elif isinstance(schema, dict):
            if schema.get("type") in ("record", "enum", "fixed", "error"):
                self.named[schema["name"]] = schema
            for key in ("items", "values", "type"):
                if isinstance(schema.get(key), dict | list):
                    self._collect(schema[key])
            for f in schema.get("fields", ()):
                self._collect(f["type"])

    def values(self, schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
        if isinstance(schema, str) and schema in self.named:
            schema = self.named[schema]
        if isinstance(schema, list):
            branches = schema if depth < 4 else [b for b in schema if b == "null"] or schema[:1]
            return st.one_of([self.values(b, depth + 1).map(lambda v, b=b: (_label(b), v)) for b in branches])
        if isinstance(schema, str):
            return _LEAVES[schema]
        kind = schema["type"]
        if isinstance(kind, dict | list) or kind in _LEAVES:
            return self.values(kind, depth)
        if kind == "fixed":
            return st.binary(min_size=schema["size"], max_size=schema["size"])
        if kind == "enum":
            return st.sampled_from(schema["symbols"])
        if kind in ("array", "map") and depth >= 4:
            return st.just([] if kind == "array" else {})  # where a recursive type ends
        if kind == "array":
            return st.lists(self.values(schema["items"], depth + 1), max_size=3)
        if kind == "map":
            return st.dictionaries(st.text(max_size=3), self.values(schema["values"], depth + 1), max_size=3)
        return st.fixed_dictionaries({f["name"]: self.values(f["type"], depth + 1) for f in schema["fields"]})


def _label(branch: Any) -> str:
    if isinstance(branch, dict):
        return branch["name"] if branch["type"] in ("record", "enum", "fixed", "error") else branch["type"]
    return str(branch)


_LEAVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    # canonical NaN only: a NaN's payload does not survive JSON (documented in the module)
    "float": st.floats(width=32, allow_nan=False) | st.just(math.nan),
    "double": st.floats(allow_nan=False) | st.just(math.nan),
    "string": st.text(max_size=6),
    "bytes": st.binary(max_size=6),
}


@st.composite
def bodies(draw: st.DrawFn, schema: Any) -> bytes:
    plain = fastavro.parse_schema(_underlying(schema))
    datum = draw(_Bodies(plain).values(plain))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, plain, datum)
    return buf.getvalue()


ROUND_TRIP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_round_trip(schema: Any, body: bytes) -> None:
    parsed = codec(schema)
    text = parsed.to_json(body)
    assert parsed.from_json(text) == body, text
    json.loads(text)  # standard JSON (NaN and infinities are quoted strings)


@pytest.mark.parametrize("path", REPO_SCHEMAS, ids=lambda p: p.name)
def test_every_repository_schema_round_trips(path: Path) -> None:
    schema = json.loads(path.read_text())

    @ROUND_TRIP
    @given(body=bodies(schema))
    def check(body: bytes) -> None:
        _assert_round_trip(schema, body)

    check()


@pytest.mark.parametrize("name", sorted(HARD))
def test_every_hard_schema_round_trips(name: str) -> None:
    schema = HARD[name]

    @ROUND_TRIP
    @given(body=bodies(schema))
    def check(body: bytes) -> None:
        _assert_round_trip(schema, body)

    check()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_schemas_round_trip(data: st.DataObject) -> None:
    schema = data.draw(generated_schemas())
    _assert_round_trip(schema, data.draw(bodies(schema)))


def test_repository_schemas_are_found() -> None:
    assert {p.name for p in REPO_SCHEMAS} >= {
        "avroflow.events.AppEvent.avsc",
        "avroflow.events.EnrichedAppEvent.avsc",
        "avroflow.events.AppEvent.v1.avsc",
    }


def test_records_nested_to_the_codec_depth_limit_print_and_read_back() -> None:
    from registry_codecs.bounds import MAX_DEPTH

    schema = HARD["recursion"]
    levels = MAX_DEPTH - 1  # the top record and MAX_DEPTH - 1 more through "next"
    body = b"".join(b"\x02a\x00\x02" for _ in range(levels)) + b"\x02a\x00\x00"  # label, children, next
    text = codec(schema).to_json(body)
    assert text.count('{"tree.Node":') == levels
    assert codec(schema).from_json(text) == body


def test_a_record_nested_past_what_the_process_can_walk_is_a_clear_error() -> None:
    schema = HARD["recursion"]
    levels = 20_000
    body = b"".join(b"\x02a\x00\x02" for _ in range(levels)) + b"\x02a\x00\x00"
    with pytest.raises(AvroBodyError, match="nested deeper"):
        codec(schema).to_json(body)
    text = (
        '{"label":"a","children":[],"next":{"tree.Node":' * levels
        + '{"label":"a","children":[],"next":null'
        + "}}" * levels
        + "}"
    )
    with pytest.raises(AvroJsonError, match="nested deeper"):
        codec(schema).from_json(text)

"""Values their Avro type cannot hold exactly are refused, never coerced; union records keep their branch.

fastavro alone writes 2**31 + 5 into an int, 1.5 as 1, True as 1, 1e39 into a float as infinity, any truthy
value as true, and re-encodes a ``Deleted`` record of ``[Created, Deleted]`` as ``Created``.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import io
import pickle
import uuid
from typing import Any

import fastavro
import pytest
from test_avro_support import MemoryRegistry

from registry_codecs import AvroDeserializer, AvroSerializer, RecordDoesNotFitSchema
from registry_codecs.errors import UnionBranchUnresolved, ValueDoesNotFit
from registry_codecs.unions import NamedRecord

ITEM = {
    "type": "record",
    "name": "Item",
    "namespace": "shop",
    "fields": [{"name": "sku", "type": "string"}, {"name": "price", "type": "float"}],
}
EVERY_TYPE: dict[str, Any] = {
    "type": "record",
    "name": "Every",
    "namespace": "shop",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "s", "type": "string"},
        {"name": "by", "type": "bytes"},
        {"name": "n", "type": "null"},
        {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}},
        {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "opt", "type": ["null", "int"]},
        {"name": "items", "type": {"type": "array", "items": ITEM}},
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {"name": "note", "type": "string", "default": ""},
    ],
}


def every(**change: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "i": 7,
        "l": 2**40,
        "f": 1.5,
        "d": 2.25,
        "b": True,
        "s": "text",
        "by": b"\x00\x01",
        "n": None,
        "e": "RED",
        "fx": b"abcd",
        "dec": decimal.Decimal("123.45"),
        "u": str(uuid.UUID(int=5)),
        "day": datetime.date(2024, 2, 29),
        "at": datetime.datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=datetime.UTC),
        "opt": None,
        "items": [{"sku": "a", "price": 1.0}, {"sku": "b", "price": 2.5}, {"sku": "c", "price": 3.0}],
        "counts": {"x": 1},
        "note": "n",
    }
    for key, value in change.items():
        if value is MISSING:
            del record[key]
        else:
            record[key] = value
    return record


MISSING = object()


@pytest.fixture
def serializer() -> AvroSerializer:
    registry = MemoryRegistry()
    registry.add("every-value", EVERY_TYPE)
    return AvroSerializer(registry, "every-value")


def fastavro_body(schema: Any, record: Any) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(copy.deepcopy(schema)), record)
    return buffer.getvalue()


def test_a_record_that_fits_is_written_exactly_as_fastavro_writes_it(serializer: AvroSerializer) -> None:
    assert serializer.encode(every())[5:] == fastavro_body(EVERY_TYPE, every())
    without_default = every(note=MISSING)
    assert serializer.encode(without_default)[5:] == fastavro_body(EVERY_TYPE, without_default)


def items_with_price(price: Any) -> list[dict[str, Any]]:
    return [{"sku": "a", "price": 1.0}, {"sku": "b", "price": 1.0}, {"sku": "c", "price": price}]


@pytest.mark.parametrize(
    ("change", "path", "avro_type", "python_type"),
    [
        ({"i": 2**31 + 5}, "i", "int", "int"),
        ({"i": -(2**31) - 1}, "i", "int", "int"),
        ({"i": 1.5}, "i", "int", "float"),
        ({"i": True}, "i", "int", "bool"),
        ({"i": "5"}, "i", "int", "str"),
        ({"i": decimal.Decimal(3)}, "i", "int", "Decimal"),
        ({"l": 2**63}, "l", "long", "int"),
        ({"l": 2.0}, "l", "long", "float"),
        ({"l": False}, "l", "long", "bool"),
        ({"f": 1e39}, "f", "float", "float"),
        ({"f": -(2**130)}, "f", "float", "int"),
        ({"f": True}, "f", "float", "bool"),
        ({"f": "1.5"}, "f", "float", "str"),
        ({"d": "1.5"}, "d", "double", "str"),
        ({"d": True}, "d", "double", "bool"),
        ({"d": decimal.Decimal("1.5")}, "d", "double", "Decimal"),
        ({"b": 1}, "b", "boolean", "int"),
        ({"b": "no"}, "b", "boolean", "str"),
        ({"b": None}, "b", "boolean", "NoneType"),
        ({"s": b"abc"}, "s", "string", "bytes"),
        ({"s": 5}, "s", "string", "int"),
        ({"by": "abc"}, "by", "bytes", "str"),
        ({"n": 0}, "n", "null", "int"),
        ({"e": "BLUE"}, "e", "enum shop.Colour", "str"),
        ({"fx": b"abc"}, "fx", "fixed shop.Four (4 bytes)", "bytes"),
        ({"fx": b"abcde"}, "fx", "fixed shop.Four (4 bytes)", "bytes"),
        ({"dec": decimal.Decimal("1.234")}, "dec", "bytes (decimal(5, 2))", "Decimal"),
        ({"dec": decimal.Decimal("1234.5")}, "dec", "bytes (decimal(5, 2))", "Decimal"),
        ({"dec": 1.5}, "dec", "bytes (decimal(5, 2))", "float"),
        ({"u": "not-a-uuid"}, "u", "string (uuid)", "str"),
        ({"day": datetime.datetime(2024, 1, 1, 5)}, "day", "int (date)", "datetime"),
        ({"at": 1.5}, "at", "long (timestamp-millis)", "float"),
        ({"opt": 1.5}, "opt", "int", "float"),  # the branch of its kind
        ({"opt": 2**40}, "opt", "int", "int"),
        ({"items": items_with_price(1e39)}, "items[2].price", "float", "float"),
        ({"items": items_with_price(True)}, "items[2].price", "float", "bool"),
        ({"items": "ab"}, "items", "array", "str"),
        ({"counts": {"x": 2**64}}, "counts['x']", "long", "int"),
        ({"counts": {"x": 1.0}}, "counts['x']", "long", "float"),
        ({"i": MISSING}, "i", "int", "missing"),
        ({"opt": MISSING}, "opt", "union [null, int]", "missing"),
        ({"extra": 1}, "extra", "record shop.Every", "int"),
    ],
)
def test_a_value_its_type_cannot_hold_is_refused_naming_path_and_types(
    serializer: AvroSerializer, change: dict[str, Any], path: str, avro_type: str, python_type: str
) -> None:
    with pytest.raises(ValueDoesNotFit) as caught:
        serializer.encode(every(**change))
    error = caught.value
    assert isinstance(error, RecordDoesNotFitSchema)
    assert error.reason == "record_does_not_fit_schema"
    assert (error.field_path, error.avro_type, error.python_type) == (path, avro_type, python_type)
    assert path in str(error) and avro_type in str(error) and python_type in str(error)


def test_an_unknown_field_in_a_nested_record_is_refused_not_dropped(serializer: AvroSerializer) -> None:
    items = [{"sku": "a", "price": 1.0, "colour": "red"}]
    with pytest.raises(ValueDoesNotFit) as caught:
        serializer.encode(every(items=items))
    assert caught.value.field_path == "items[0].colour"


def test_values_at_the_edges_of_their_types_are_written() -> None:
    registry = MemoryRegistry()
    registry.add("every-value", EVERY_TYPE)
    serializer = AvroSerializer(registry, "every-value")
    deserializer = AvroDeserializer(registry)
    for change in (
        {"i": 2**31 - 1, "l": -(2**63), "f": 3.4028234e38, "d": 2**60},
        {"i": -(2**31), "l": 2**63 - 1, "f": float("inf"), "d": float("nan")},
        {"f": 3, "dec": decimal.Decimal("-999.99"), "u": uuid.UUID(int=9), "at": 1_700_000_000_000},
        {"day": 19_000, "by": bytearray(b"xy"), "fx": bytearray(b"wxyz"), "opt": -5, "items": ()},
    ):
        decoded = deserializer.decode(serializer.encode(every(**change)))
        assert decoded["i"] == every(**change)["i"]


# ----- unions of records keep their branch ---------------------------------------------------------------

CREATED = {
    "type": "record",
    "name": "Created",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "long"}, {"name": "by", "type": "string", "default": "system"}],
}
DELETED = {
    "type": "record",
    "name": "Deleted",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "long"}],
}
ENVELOPE = {
    "type": "record",
    "name": "Envelope",
    "namespace": "shop",
    "fields": [{"name": "event", "type": [CREATED, DELETED]}, {"name": "seq", "type": "long"}],
}


def union_codec(schema: Any = ENVELOPE) -> tuple[AvroSerializer, AvroDeserializer]:
    registry = MemoryRegistry()
    registry.add("events-value", schema)
    return AvroSerializer(registry, "events-value"), AvroDeserializer(registry)


def branch_index(frame: bytes) -> int:
    return frame[5] // 2  # the union index, zigzag, is the body's first byte


def test_a_decoded_union_record_carries_its_branch_and_passes_through_unchanged() -> None:
    serializer, deserializer = union_codec()
    written = fastavro_body(ENVELOPE, {"event": ("shop.Deleted", {"id": 3}), "seq": 1})
    frame = serializer.encode({"event": NamedRecord("shop.Deleted", {"id": 3}), "seq": 1})
    assert frame[5:] == written and branch_index(frame) == 1
    record = deserializer.decode(frame)
    assert type(record) is dict  # records outside unions of several records stay plain dicts
    assert isinstance(record["event"], NamedRecord) and record["event"].avro_name == "shop.Deleted"
    assert record == {"event": {"id": 3}, "seq": 1}  # still equal to plain dicts
    assert serializer.encode(record) == frame  # a pass-through keeps Deleted, never turns it into Created
    changed = {**record, "seq": 2}
    assert branch_index(serializer.encode(changed)) == 1


def test_a_plain_dict_that_several_branches_would_hold_is_refused_not_guessed() -> None:
    serializer, _ = union_codec()
    with pytest.raises(UnionBranchUnresolved) as caught:
        serializer.encode({"event": {"id": 3}, "seq": 1})
    assert caught.value.field_path == "event"
    assert "shop.Created" in str(caught.value) and "shop.Deleted" in str(caught.value)
    # A plain dict only one branch holds goes to that branch; tuple notation names one.
    assert branch_index(serializer.encode({"event": {"id": 3, "by": "ann"}, "seq": 1})) == 0
    assert branch_index(serializer.encode({"event": ("shop.Deleted", {"id": 3}), "seq": 1})) == 1


def test_a_branch_the_sink_union_lacks_is_refused() -> None:
    serializer, _ = union_codec()
    with pytest.raises(UnionBranchUnresolved) as caught:
        serializer.encode({"event": NamedRecord("shop.Archived", {"id": 3}), "seq": 1})
    assert "shop.Archived" in str(caught.value)
    with pytest.raises(ValueDoesNotFit) as misfit:  # the named branch, checked against its own fields
        serializer.encode({"event": NamedRecord("shop.Deleted", {"id": 3, "by": "x"}), "seq": 1})
    assert misfit.value.field_path == "event.by"


def test_a_narrow_branch_is_not_widened_and_a_top_level_union_keeps_its_branch() -> None:
    serializer, deserializer = union_codec([CREATED, DELETED])
    frame = serializer.encode(NamedRecord("shop.Deleted", {"id": 4}))
    assert branch_index(frame) == 1
    decoded = deserializer.decode(frame)
    assert isinstance(decoded, NamedRecord) and decoded.avro_name == "shop.Deleted"
    assert serializer.encode(decoded) == frame


def test_union_records_keep_their_branch_inside_arrays_maps_and_nullable_records() -> None:
    log = {
        "type": "record",
        "name": "Log",
        "namespace": "shop",
        "fields": [
            {"name": "events", "type": {"type": "array", "items": [CREATED, DELETED]}},
            {"name": "last", "type": {"type": "map", "values": ["null", "Created", "Deleted"]}},
        ],
    }
    serializer, deserializer = union_codec(log)
    record = {
        "events": [NamedRecord("shop.Deleted", {"id": 1}), NamedRecord("shop.Created", {"id": 2, "by": "b"})],
        "last": {"a": NamedRecord("shop.Deleted", {"id": 1}), "b": None},
    }
    frame = serializer.encode(record)
    decoded = deserializer.decode(frame)
    assert [e.avro_name for e in decoded["events"]] == ["shop.Deleted", "shop.Created"]
    assert decoded["last"]["a"].avro_name == "shop.Deleted" and decoded["last"]["b"] is None
    assert serializer.encode(decoded) == frame


def test_a_reader_schema_keeps_the_branch_too() -> None:
    registry = MemoryRegistry()
    registry.add("events-value", ENVELOPE)
    reader = copy.deepcopy(ENVELOPE)
    reader["fields"].append({"name": "source", "type": "string", "default": "web"})
    frame = AvroSerializer(registry, "events-value").encode(
        {"event": NamedRecord("shop.Deleted", {"id": 3}), "seq": 1}
    )
    decoded = AvroDeserializer(registry, reader_schema=reader).decode(frame)
    assert decoded["event"].avro_name == "shop.Deleted" and decoded["source"] == "web"


def test_a_named_record_copies_and_pickles_with_its_branch() -> None:
    record = NamedRecord("shop.Deleted", {"id": 3})
    for clone in (
        copy.copy(record),
        copy.deepcopy(record),
        pickle.loads(pickle.dumps(record)),  # noqa: S301 - our own bytes
        record.copy(),
    ):
        assert isinstance(clone, NamedRecord) and clone.avro_name == "shop.Deleted" and clone == {"id": 3}
    assert type(dict(record)) is dict and type({**record}) is dict
    assert repr(record) == "NamedRecord('shop.Deleted', {'id': 3})"


def test_a_reader_schema_that_fastavro_must_resolve_keeps_the_branch() -> None:
    # int -> double inside a union branch: no precomputed projection, fastavro resolves per message.
    writer = copy.deepcopy(ENVELOPE)
    writer["fields"][0]["type"][1]["fields"][0]["type"] = "int"
    reader = copy.deepcopy(ENVELOPE)
    reader["fields"][0]["type"][1]["fields"][0]["type"] = "double"
    registry = MemoryRegistry()
    registry.add("events-value", writer)
    record = {"event": NamedRecord("shop.Deleted", {"id": 3}), "seq": 1}
    frame = AvroSerializer(registry, "events-value").encode(record)
    deserializer = AvroDeserializer(registry, reader_schema=reader)
    decoded = deserializer.decode(frame)
    assert deserializer._plans[1].reader is not None  # fastavro's own resolution ran
    assert decoded["event"].avro_name == "shop.Deleted" and decoded["event"]["id"] == 3.0

"""Shapes of writer schemas the bounds guard must measure right: named types used many times over (their
width is worked out once each, not once per use), cycles through more than one named type, maps counting
as levels like arrays, and the byte size that follows a negative block count checked against the bytes
really left."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_hostile_decode import body_of, decoder, zigzag

from registry_codecs import AvroSerializer, DecodeError, InMemorySchemaLookup, frame
from registry_codecs.avro import parse_avro
from registry_codecs.bounds import (
    MAX_DEPTH,
    MAX_EMPTY_ITEMS,
    BodyGuard,
    BodyOutOfBounds,
    BodyTooDeep,
    DepthGuard,
    RecordTooDeep,
    check_body,
    needs_check,
)


def doubled(levels: int) -> dict[str, Any]:
    """``T0`` holds a long; each ``Tn`` holds two ``Tn-1`` (the first defined inline, the second by name)."""
    schema: dict[str, Any] = {
        "type": "record",
        "name": "T0",
        "namespace": "t",
        "fields": [{"name": "v", "type": "long"}],
    }
    for i in range(1, levels):
        fields = [{"name": "x", "type": schema}, {"name": "y", "type": f"t.T{i - 1}"}]
        schema = {"type": "record", "name": f"T{i}", "namespace": "t", "fields": fields}
    return schema


# Measuring these takes one pass per named type; measured once per use it would take 2**40 (a worker stuck
# on the first record of such a schema). The mark only stops a hang from holding the suite.
@pytest.mark.timeout(60)
def test_a_schema_reusing_named_types_forty_levels_deep_is_measured_once_per_type() -> None:
    items = doubled(40)
    array = {"type": "array", "items": items}
    assert not needs_check(parse_avro(json.dumps(array)))  # items take >= 2**39 bytes: bounded by the body
    guarded = {
        "type": "record",
        "name": "Top",
        "namespace": "t",
        "fields": [
            {"name": "many", "type": array},
            {"name": "nulls", "type": {"type": "array", "items": "null"}},
        ],
    }
    parsed = parse_avro(json.dumps(guarded))
    assert needs_check(parsed)
    check_body(parsed, zigzag(0) + zigzag(3) + zigzag(0))
    with pytest.raises(BodyOutOfBounds, match=r"array block claims 1 items of >= 549755813888 bytes"):
        check_body(parsed, zigzag(1) + b"\x00" * 100)


A_TO_B = {
    "type": "record",
    "name": "A",
    "namespace": "t",
    "fields": [
        {
            "name": "b",
            "type": [
                "null",
                {"type": "record", "name": "B", "fields": [{"name": "a", "type": ["null", "t.A"]}]},
            ],
        }
    ],
}


def a_to_b_body(records: int) -> bytes:
    """A, B, A, ... `records` records down, each through the second branch of its union, the last null."""
    return zigzag(1) * (records - 1) + zigzag(0)


def a_to_b(records: int) -> dict[str, Any]:
    """The record of `a_to_b_body` (a union of null and one record takes a plain dict)."""
    record: dict[str, Any] = {"a": None} if records % 2 == 0 else {"b": None}
    for i in range(records - 2, -1, -1):
        record = {"a": record} if i % 2 else {"b": record}
    return record


def test_a_cycle_through_two_named_types_is_bounded_on_decode_and_encode() -> None:
    lookup = InMemorySchemaLookup()
    lookup.register("ab-value", json.dumps(A_TO_B))
    assert needs_check(parse_avro(json.dumps(A_TO_B)))
    assert DepthGuard.for_schema(parse_avro(json.dumps(A_TO_B))) is not None
    assert decoder(A_TO_B).decode(frame(1, a_to_b_body(5))) == a_to_b(5)
    decoder(A_TO_B).decode(frame(1, a_to_b_body(MAX_DEPTH)))
    with pytest.raises(BodyTooDeep, match=f"deeper than {MAX_DEPTH}"):
        decoder(A_TO_B).decode(frame(1, a_to_b_body(MAX_DEPTH + 1)))
    serializer = AvroSerializer(lookup, "ab-value")
    assert serializer.encode(a_to_b(5)) == frame(1, a_to_b_body(5))
    with pytest.raises(RecordTooDeep, match=f"deeper than {MAX_DEPTH}"):
        serializer.encode(a_to_b(MAX_DEPTH + 1))


def test_named_types_that_only_use_each_other_one_way_are_not_walked() -> None:
    # "t.A" sorts before "t.B": a search that took "sorts before" for "is" would call this recursive.
    one_way = {
        "type": "record",
        "name": "B",
        "namespace": "t",
        "fields": [
            {"name": "a", "type": {"type": "record", "name": "A", "fields": [{"name": "n", "type": "long"}]}},
            {"name": "again", "type": ["null", "t.A"]},
            {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED"]}},
            {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        ],
    }
    parsed = parse_avro(json.dumps(one_way))
    assert not needs_check(parsed)
    assert DepthGuard.for_schema(parsed) is None


def test_records_that_contain_each_other_with_no_way_out_are_refused_not_a_crash() -> None:
    # Avro parsers take it, though no finite value exists: every body runs into the depth bound.
    endless = {
        "type": "record",
        "name": "A",
        "namespace": "t",
        "fields": [
            {"name": "b", "type": {"type": "record", "name": "B", "fields": [{"name": "a", "type": "t.A"}]}}
        ],
    }
    holder = {"type": "array", "items": endless}
    by_name = {
        "type": "record",
        "name": "Holder",
        "namespace": "t",
        "fields": [
            {"name": "first", "type": ["null", endless]},
            {"name": "many", "type": {"type": "array", "items": "t.A"}},
        ],
    }
    # and a cycle that goes by name both ways: A holds B by name, B holds A by name
    both_ways = {**endless, "fields": [*endless["fields"], {"name": "again", "type": "t.B"}]}
    for schema in (endless, holder, by_name, {"type": "array", "items": both_ways}):
        with pytest.raises(DecodeError):
            decoder(schema).decode(frame(1, zigzag(1) + b"\x00" * 10))
    with pytest.raises(BodyTooDeep):
        check_body(parse_avro(json.dumps(endless)), b"")


MAP_TREE = {
    "type": "record",
    "name": "MapTree",
    "namespace": "t",
    "fields": [{"name": "children", "type": {"type": "map", "values": "t.MapTree"}}],
}


def map_tree_body(records: int) -> bytes:
    """`records` records down, each a map of one entry (key "k") but the last, whose map is empty."""
    return (zigzag(1) + zigzag(1) + b"k") * (records - 1) + zigzag(0) + zigzag(0) * (records - 1)


def test_maps_count_as_levels() -> None:
    records = MAX_DEPTH // 2  # a record and its map per level: MAX_DEPTH levels in all
    tree: dict[str, Any] = {"children": {}}
    for _ in range(records - 1):
        tree = {"children": {"k": tree}}
    assert body_of(MAP_TREE, tree) == map_tree_body(records)
    assert decoder(MAP_TREE).decode(frame(1, map_tree_body(records))) is not None
    with pytest.raises(BodyTooDeep, match=f"deeper than {MAX_DEPTH}"):
        decoder(MAP_TREE).decode(frame(1, map_tree_body(records + 1)))


#: An array of strings in a schema the decoder walks (the array of nulls makes it one).
STRINGS = {
    "type": "record",
    "name": "Strings",
    "namespace": "t",
    "fields": [
        {"name": "names", "type": {"type": "array", "items": "string"}},
        {"name": "guard", "type": {"type": "array", "items": "null"}},
    ],
}


def test_a_negative_count_block_size_is_checked_against_the_bytes_really_left() -> None:
    # one item in a block with its size, then the item ("a": two bytes), the closing count, the empty guard
    def body(size: int) -> bytes:
        return zigzag(-1) + zigzag(size) + zigzag(1) + b"a" + zigzag(0) + zigzag(0)

    assert needs_check(parse_avro(json.dumps(STRINGS)))
    assert decoder(STRINGS).decode(frame(1, body(2))) == {"names": ["a"], "guard": []}
    # fastavro reads the items, not the size: a size up to the bytes left decodes as it would without the walk
    assert decoder(STRINGS).decode(frame(1, body(4))) == {"names": ["a"], "guard": []}
    with pytest.raises(DecodeError, match="array block claims 5 bytes, 4 left"):
        decoder(STRINGS).decode(frame(1, body(5)))
    # a reader that skips the field would seek by the size: backwards, for a negative one
    with pytest.raises(DecodeError, match="array block claims -1 bytes"):
        decoder(STRINGS).decode(frame(1, body(-1)))


NULLS = {"type": "array", "items": "null"}


def test_a_guard_walks_the_body_from_its_first_byte_unless_told_otherwise() -> None:
    guard = BodyGuard.for_schema(parse_avro(json.dumps(NULLS)))
    assert guard is not None
    guard.check(zigzag(3) + zigzag(0))
    with pytest.raises(BodyOutOfBounds, match="over 65536"):
        guard.check(zigzag(65537) + zigzag(0))  # read from its second byte, this would be 512 nulls
    guard.check(b"\x00\x00\x00" + zigzag(3) + zigzag(0), 3)


def test_a_start_past_the_end_of_the_data_is_refused_as_a_body_running_past_its_end() -> None:
    with pytest.raises(BodyOutOfBounds, match="past the end"):
        check_body(parse_avro(json.dumps(NULLS)), zigzag(0), 2)


#: A chain of nodes, each with an array of leaves: the leaves of node n are n + 2 levels down.
LEAVES = {
    "type": "record",
    "name": "Stem",
    "namespace": "t",
    "fields": [
        {
            "name": "leaves",
            "type": {
                "type": "array",
                "items": {"type": "record", "name": "Leaf", "fields": [{"name": "v", "type": "long"}]},
            },
        },
        {"name": "next", "type": ["null", "t.Stem"]},
    ],
}


def stems_body(stems: int) -> bytes:
    """`stems` stems down; the last holds one leaf (v = 0), the others none."""
    return (zigzag(0) + zigzag(1)) * (stems - 1) + zigzag(1) + zigzag(0) + zigzag(0) + zigzag(0)


@pytest.mark.parametrize("stems", [MAX_DEPTH - 2, MAX_DEPTH - 1])
def test_a_record_inside_an_array_is_one_level_below_the_array(stems: int) -> None:
    # The last stem is at level stems - 1, its array one below, the leaf two below: the leaf is level
    # MAX_DEPTH (the deepest allowed) for MAX_DEPTH - 2 stems, one past it for MAX_DEPTH - 1.
    parsed = parse_avro(json.dumps(LEAVES))
    if stems == MAX_DEPTH - 2:
        check_body(parsed, stems_body(stems))
    else:
        with pytest.raises(BodyTooDeep, match=f"deeper than {MAX_DEPTH}"):
            check_body(parsed, stems_body(stems))


def test_an_array_of_small_items_filling_the_rest_of_the_body_decodes() -> None:
    small = {
        "type": "record",
        "name": "Small",
        "namespace": "t",
        "fields": [
            {"name": "guard", "type": NULLS},
            {"name": "ints", "type": {"type": "array", "items": "int"}},
            {"name": "floats", "type": {"type": "array", "items": "float"}},
        ],
    }
    record = {"guard": [None], "ints": list(range(20)), "floats": [0.5] * 3}
    assert decoder(small).decode(frame(1, body_of(small, record))) == record
    record = {"guard": [], "ints": [], "floats": [0.5] * 20}
    assert decoder(small).decode(frame(1, body_of(small, record))) == record


def paired(records: int) -> dict[str, Any]:
    """`a_to_b` with each union branch named by a ``(name, value)`` pair."""
    record: dict[str, Any] = {"a": None} if records % 2 == 0 else {"b": None}
    for i in range(records - 2, -1, -1):
        record = {"a": ("t.A", record)} if i % 2 else {"b": ("t.B", record)}
    return record


def test_union_branches_named_by_pairs_add_no_level_on_encode() -> None:
    # The serializer's guard on its own: fastavro's writer takes seconds for records this deep.
    guard = DepthGuard.for_schema(parse_avro(json.dumps(A_TO_B)))
    assert guard is not None
    guard.check(paired(MAX_DEPTH))
    with pytest.raises(RecordTooDeep, match=f"deeper than {MAX_DEPTH}"):
        guard.check(paired(MAX_DEPTH + 1))
    lookup = InMemorySchemaLookup()
    lookup.register("ab-value", json.dumps(A_TO_B))
    assert AvroSerializer(lookup, "ab-value").encode(paired(5)) == frame(1, a_to_b_body(5))


def test_an_empty_array_inside_a_referenced_schema_is_guarded() -> None:
    # A schema reference (Confluent's "references"): the field names a type the schema does not define.
    holder = {
        "type": "record",
        "name": "Holder",
        "namespace": "t",
        "fields": [{"name": "nulls", "type": NULLS}],
    }
    top = {"type": "record", "name": "Top", "namespace": "t", "fields": [{"name": "h", "type": "t.Holder"}]}
    parsed = parse_avro(json.dumps(top), (("holder", json.dumps(holder)),))
    assert needs_check(parsed)
    assert BodyGuard.for_schema(parsed) is not None
    with pytest.raises(BodyOutOfBounds, match="empty items"):
        check_body(parsed, zigzag(2**40) + zigzag(0))


CHOICES = {
    "type": "record",
    "name": "Choices",
    "namespace": "t",
    "fields": [
        {"name": "guard", "type": NULLS},
        {"name": "choice", "type": ["null", "long", "string"]},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
    ],
}


@pytest.mark.parametrize(
    ("choice", "color", "words"),
    [
        (-2, 0, "union index -2 out of range"),  # Python would read branch [-2] ("long") from it
        (-3, 0, "union index -3 out of range"),
        (0, -1, "enum index -1 out of range"),  # Python would read symbol [-1] ("BLUE") from it
        (0, -2, "enum index -2 out of range"),
        (0, 5, "enum index 5 out of range"),  # past the end: the error names the index, not fastavro's
    ],
)
def test_a_union_or_enum_index_out_of_range_is_refused_naming_it(choice: int, color: int, words: str) -> None:
    valid = zigzag(0) + zigzag(1) + zigzag(7) + zigzag(2)
    assert decoder(CHOICES).decode(frame(1, valid)) == {"guard": [], "choice": 7, "color": "BLUE"}
    first = zigzag(0) + zigzag(0) + zigzag(0)  # the first branch and the first symbol
    assert decoder(CHOICES).decode(frame(1, first)) == {"guard": [], "choice": None, "color": "RED"}
    hostile = zigzag(0) + zigzag(choice) + (zigzag(7) if choice else b"") + zigzag(color)
    with pytest.raises(DecodeError, match=words):
        decoder(CHOICES).decode(frame(1, hostile))


def test_a_record_too_deep_is_refused_whatever_the_order_of_its_fields() -> None:
    chain = {
        "type": "record",
        "name": "Chain",
        "namespace": "t",
        "fields": [{"name": "id", "type": "long"}, {"name": "next", "type": ["null", "Chain"]}],
    }
    lookup = InMemorySchemaLookup()
    lookup.register("chain-value", json.dumps(chain))
    record: dict[str, Any] = {"next": None, "id": MAX_DEPTH}
    for i in range(MAX_DEPTH - 1, -1, -1):
        record = {"next": record, "id": i}  # the scalar last: MAX_DEPTH + 1 records
    with pytest.raises(RecordTooDeep, match=f"deeper than {MAX_DEPTH}"):
        AvroSerializer(lookup, "chain-value").encode(record)


def test_the_depth_bound_is_the_documented_2000_records() -> None:
    # workers/README.md: "a linked list of 2,000 records through ["null", "Node"] is the deepest allowed"
    assert decoder(A_TO_B).decode(frame(1, a_to_b_body(2000))) is not None
    with pytest.raises(BodyTooDeep, match="deeper than 2000 levels"):
        decoder(A_TO_B).decode(frame(1, a_to_b_body(2001)))


def test_a_count_of_doubles_is_checked_at_eight_bytes_each() -> None:
    doubles = {
        "type": "record",
        "name": "Doubles",
        "namespace": "t",
        "fields": [
            {"name": "guard", "type": NULLS},
            {"name": "xs", "type": {"type": "array", "items": "double"}},
        ],
    }
    record = {"guard": [], "xs": [0.5] * 20}
    assert decoder(doubles).decode(frame(1, body_of(doubles, record))) == record
    with pytest.raises(DecodeError, match="array block claims 2 items of >= 8 bytes, 15 bytes left"):
        decoder(doubles).decode(frame(1, zigzag(0) + zigzag(2) + b"\x00" * 15))
    flag = [{"name": "on", "type": "boolean"}, {"name": "name", "type": "string"}]  # a boolean takes a byte
    flags = {**doubles, "fields": [*doubles["fields"], *flag]}
    record = {"guard": [], "xs": [0.5], "on": True, "name": "abc"}
    assert decoder(flags).decode(frame(1, body_of(flags, record))) == record
    bools = {
        **doubles,
        "fields": [doubles["fields"][0], {"name": "xs", "type": {"type": "array", "items": "boolean"}}],
    }
    record = {"guard": [], "xs": [True, False] * 10}
    assert decoder(bools).decode(frame(1, body_of(bools, record))) == record


def test_the_items_of_an_array_given_as_a_tuple_are_all_measured() -> None:
    # An array may be any sequence; a tuple that starts with a string is a union pair only with two items.
    guard = DepthGuard.for_schema(parse_avro(json.dumps(A_TO_B)))
    assert guard is not None
    guard.check(("a", "b", a_to_b(MAX_DEPTH - 1)))
    guard.check(("only",))
    guard.check(())
    with pytest.raises(RecordTooDeep):
        guard.check(("a", "b", a_to_b(MAX_DEPTH)))


def test_a_map_entry_takes_at_least_its_key_byte_and_its_value() -> None:
    ints = {
        "type": "record",
        "name": "Ints",
        "namespace": "t",
        "fields": [
            {"name": "guard", "type": NULLS},
            {"name": "by_key", "type": {"type": "map", "values": "int"}},
        ],
    }
    record = {"guard": [], "by_key": {str(i): i for i in range(MAX_EMPTY_ITEMS + 10)}}  # not empty items
    assert decoder(ints).decode(frame(1, body_of(ints, record))) == record
    with pytest.raises(DecodeError, match="map block claims 6 items of >= 2 bytes, 10 bytes left"):
        decoder(ints).decode(frame(1, zigzag(0) + zigzag(6) + b"\x00" * 10))

"""Hostile claims nested inside arrays and maps: the bounds walk goes into every item and every map value,
block after block, and refuses a lying length, count, index or depth wherever it sits; valid bodies of the
same schemas pass the walk and decode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_hostile_decode import EMPTY, NODE, body_of, decoder, zigzag

from registry_codecs import frame
from registry_codecs.avro import parse_avro
from registry_codecs.bounds import MAX_DEPTH, MAX_EMPTY_ITEMS, BodyOutOfBounds, check_body, needs_check

NULLS = {"type": "array", "items": "null"}
HOLDER = {"type": "record", "name": "Holder", "namespace": "t", "fields": [{"name": "nulls", "type": NULLS}]}
COLOR = {"type": "enum", "name": "Color", "namespace": "t", "symbols": ["RED", "GREEN"]}
#: Every field is an array or a map around something; `guard` makes the schema one the decoder walks.
NESTED = {
    "type": "record",
    "name": "Nested",
    "namespace": "t",
    "fields": [
        {"name": "guard", "type": NULLS},
        {"name": "names", "type": {"type": "array", "items": "string"}},
        {"name": "by_key", "type": {"type": "map", "values": "bytes"}},
        {"name": "holders", "type": {"type": "array", "items": HOLDER}},
        {"name": "colors", "type": {"type": "map", "values": COLOR}},
        {"name": "choices", "type": {"type": "array", "items": ["null", "long"]}},
        {"name": "nodes", "type": {"type": "array", "items": NODE}},
        {
            "name": "grid",
            "type": {"type": "array", "items": {"type": "map", "values": {"type": "array", "items": "int"}}},
        },
    ],
}


def valid() -> dict[str, Any]:
    return {
        "guard": [None],
        "names": ["a", "bc"],
        "by_key": {"k": b"\x01"},
        "holders": [{"nulls": [None, None]}],
        "colors": {"c": "GREEN"},
        "choices": [None, 5],
        "nodes": [{"value": 1, "next": {"value": 2, "next": None}}],
        "grid": [{"row": [1, 2]}],
    }


EMPTY_ARRAY = zigzag(0)


def body(**parts: bytes) -> bytes:
    """A body of NESTED: each field empty (count 0) unless given raw bytes in `parts`."""
    names = [f["name"] for f in NESTED["fields"]]
    return b"".join(parts.get(name, EMPTY_ARRAY) for name in names)


def refused(data: bytes, words: str) -> None:
    with pytest.raises(BodyOutOfBounds, match=words):
        check_body(parse_avro(json.dumps(NESTED)), data)


def test_valid_nested_bodies_pass_the_walk_and_decode() -> None:
    data = body_of(NESTED, valid())
    check_body(parse_avro(json.dumps(NESTED)), data)
    assert needs_check(parse_avro(json.dumps(NESTED)))
    assert decoder(NESTED).decode(frame(1, data)) == valid()
    check_body(parse_avro(json.dumps(NESTED)), body())


def test_a_lying_string_length_inside_an_array_is_refused() -> None:
    refused(body(names=zigzag(2) + zigzag(1) + b"a" + zigzag(2**40)), "string claims 1099511627776 bytes")


def test_a_lying_bytes_length_inside_a_map_value_is_refused() -> None:
    refused(body(by_key=zigzag(1) + zigzag(1) + b"k" + zigzag(2**40)), "bytes claims 1099511627776 bytes")


def test_a_lying_map_key_length_is_refused() -> None:
    refused(body(by_key=zigzag(1) + zigzag(2**40)), "map key claims")


def test_an_array_of_nulls_inside_an_array_of_records_is_refused() -> None:
    refused(body(holders=zigzag(1) + zigzag(2**40) + EMPTY_ARRAY + EMPTY_ARRAY), "empty items")


def test_empty_items_are_counted_over_the_whole_body_not_per_array() -> None:
    half = MAX_EMPTY_ITEMS // 2 + 1
    holders = zigzag(2) + zigzag(half) + EMPTY_ARRAY + zigzag(half) + EMPTY_ARRAY + EMPTY_ARRAY
    refused(body(holders=holders), f"over {MAX_EMPTY_ITEMS}")
    exactly = (
        zigzag(2) + zigzag(MAX_EMPTY_ITEMS // 2) + EMPTY_ARRAY + zigzag(MAX_EMPTY_ITEMS // 2) + EMPTY_ARRAY
    )
    check_body(parse_avro(json.dumps(NESTED)), body(holders=exactly + EMPTY_ARRAY))


def test_an_enum_index_inside_a_map_is_checked() -> None:
    colors = zigzag(1) + zigzag(1) + b"c"
    refused(body(colors=colors + zigzag(2) + EMPTY_ARRAY), "enum index 2 out of range")
    refused(body(colors=colors + zigzag(-1) + EMPTY_ARRAY), "enum index -1 out of range")
    check_body(parse_avro(json.dumps(NESTED)), body(colors=colors + zigzag(1) + EMPTY_ARRAY))


def test_a_union_index_inside_an_array_is_checked() -> None:
    refused(body(choices=zigzag(1) + zigzag(2) + EMPTY_ARRAY), "union index 2 out of range")
    refused(body(choices=zigzag(1) + zigzag(-1) + EMPTY_ARRAY), "union index -1 out of range")


def test_recursion_inside_array_items_is_bounded_by_depth() -> None:
    levels = MAX_DEPTH  # a union and a record per level: twice as deep as the bound allows
    chain = (zigzag(1) + zigzag(1)) * levels + zigzag(1) + zigzag(0)
    refused(body(nodes=zigzag(1) + chain + EMPTY_ARRAY), f"deeper than {MAX_DEPTH}")


def test_a_depth_within_the_bound_inside_an_array_passes() -> None:
    levels = MAX_DEPTH // 2 - 4
    chain = (zigzag(1) + zigzag(1)) * levels + zigzag(1) + zigzag(0)
    check_body(parse_avro(json.dumps(NESTED)), body(nodes=zigzag(1) + chain + EMPTY_ARRAY))


def test_a_hostile_second_block_is_refused_after_a_good_first_one() -> None:
    second = zigzag(1) + b"a" + zigzag(2**40)
    refused(body(names=zigzag(1) + zigzag(1) + b"a" + second + EMPTY_ARRAY), "string claims")


def test_a_negative_block_count_with_a_lying_byte_size_is_refused() -> None:
    refused(body(names=zigzag(-1) + zigzag(2**40) + zigzag(1) + b"a" + EMPTY_ARRAY), "array block claims")
    ok = zigzag(-1) + zigzag(2) + zigzag(1) + b"a" + EMPTY_ARRAY
    check_body(parse_avro(json.dumps(NESTED)), body(names=ok))


def test_a_count_of_items_of_known_width_past_the_end_is_refused_inside_a_map() -> None:
    grid = zigzag(1) + zigzag(1) + zigzag(1) + b"r" + zigzag(2**40)
    refused(body(grid=grid), r"array block claims 1099511627776 items of >= 1 bytes")


def test_a_map_claiming_more_entries_than_bytes_is_refused_even_of_null_values() -> None:
    schema = parse_avro(json.dumps({"type": "array", "items": {"type": "map", "values": EMPTY}}))
    with pytest.raises(BodyOutOfBounds, match="map block claims 1000 items of >= 1 bytes"):
        check_body(schema, zigzag(1) + zigzag(1000) + b"a" * 10)


def test_needs_check_finds_an_empty_array_nested_in_a_map_or_union() -> None:
    in_map = {"type": "map", "values": NULLS}
    in_union = ["null", {"type": "array", "items": EMPTY}]
    in_array = {
        "type": "array",
        "items": {"type": "array", "items": {"type": "fixed", "name": "Z", "size": 0}},
    }
    for schema in (in_map, in_union, in_array):
        assert needs_check(parse_avro(json.dumps(schema))), schema


def test_an_array_of_a_named_type_used_again_by_name_is_measured() -> None:
    schema = {
        "type": "record",
        "name": "Twice",
        "namespace": "t",
        "fields": [
            {"name": "first", "type": EMPTY},
            {"name": "many", "type": {"type": "array", "items": "t.Empty"}},  # by name: width 0
        ],
    }
    parsed = parse_avro(json.dumps(schema))
    assert needs_check(parsed)
    with pytest.raises(BodyOutOfBounds, match="empty items"):
        check_body(parsed, zigzag(2**40) + EMPTY_ARRAY)


LONG_AND_NULLS = {
    "type": "record",
    "name": "L",
    "fields": [{"name": "n", "type": "long"}, {"name": "guard", "type": NULLS}],
}


@pytest.mark.parametrize("n", [2**63 - 1, -(2**63)])
def test_a_ten_byte_long_passes_the_walk(n: int) -> None:
    data = body_of(LONG_AND_NULLS, {"n": n, "guard": []})
    assert len(data) == 11  # ten bytes of varint and an empty array
    check_body(parse_avro(json.dumps(LONG_AND_NULLS)), data)


def test_an_eleven_byte_number_is_refused() -> None:
    with pytest.raises(BodyOutOfBounds, match="longer than 10 bytes"):
        check_body(parse_avro(json.dumps(LONG_AND_NULLS)), b"\xff" * 10 + b"\x01" + EMPTY_ARRAY)


def test_a_length_one_past_the_end_is_refused_with_the_bytes_left() -> None:
    strings = parse_avro(json.dumps({"type": "array", "items": "string"}))
    with pytest.raises(BodyOutOfBounds, match="string claims 4 bytes, 3 left"):
        check_body(strings, zigzag(1) + zigzag(4) + b"abc")
    check_body(strings, zigzag(1) + zigzag(3) + b"abc" + EMPTY_ARRAY)


def test_a_negative_length_is_refused() -> None:
    refused(body(names=zigzag(1) + zigzag(-1) + EMPTY_ARRAY), "string claims -1 bytes")


def test_a_union_index_far_past_the_branches_is_refused() -> None:
    refused(body(choices=zigzag(1) + zigzag(5) + EMPTY_ARRAY), "union index 5 out of range")


def test_a_count_of_wide_items_is_checked_against_the_bytes_left() -> None:
    floats = parse_avro(json.dumps({"type": "array", "items": "float"}))
    with pytest.raises(BodyOutOfBounds, match="array block claims 3 items of >= 4 bytes, 10 bytes left"):
        check_body(floats, zigzag(3) + b"\x00" * 10)


def test_the_documented_bounds_hold_as_numbers() -> None:
    nulls = parse_avro(json.dumps(NULLS))
    check_body(nulls, zigzag(65536) + EMPTY_ARRAY)  # MAX_EMPTY_ITEMS: 2**16 empty items are fine
    with pytest.raises(BodyOutOfBounds, match="over 65536"):
        check_body(nulls, zigzag(65537) + EMPTY_ARRAY)
    node = parse_avro(json.dumps(NODE))
    # (1, 1) * n + (1, 0): n + 1 nodes, one level each, the last one with an empty array
    check_body(node, (zigzag(1) + zigzag(1)) * (MAX_DEPTH - 1) + zigzag(1) + zigzag(0))  # MAX_DEPTH levels
    with pytest.raises(BodyOutOfBounds, match=f"deeper than {MAX_DEPTH}"):
        check_body(node, (zigzag(1) + zigzag(1)) * MAX_DEPTH + zigzag(1) + zigzag(0))


def test_a_block_byte_size_of_zero_is_accepted_for_items_that_take_no_bytes() -> None:
    nulls = parse_avro(json.dumps(NULLS))
    check_body(nulls, zigzag(-3) + zigzag(0) + EMPTY_ARRAY)  # three nulls take 0 bytes

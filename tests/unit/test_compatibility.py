"""Avro compatibility by the specification's schema-resolution rules, as a table of schema pairs.

Each row is (old schema, new schema, can the new schema read old data, can the old schema read new data).
From those two answers every level follows: BACKWARD needs the first, FORWARD the second, FULL both, NONE
neither; with a single previous version the transitive levels answer like their plain counterparts. Every
row's answers are also confirmed by decoding real data with fastavro's own schema resolution
(`test_table_agrees_with_fastavro_on_real_data`), so the table is not just this checker's opinion.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from devstack.registry.compatibility import check_level, reader_problems
from devstack.registry.schemas import AvroSchema, Reference, SchemaDoc, parse_avro

LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)


def rec(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(symbols: list[str], name: str = "Colour", **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": symbols, **extra}


def arr(items: Any) -> dict[str, Any]:
    return {"type": "array", "items": items}


def mp(values: Any) -> dict[str, Any]:
    return {"type": "map", "values": values}


def fixed(name: str, size: int) -> dict[str, Any]:
    return {"type": "fixed", "name": name, "size": size}


def in_record(type_: Any, **extra: Any) -> dict[str, Any]:
    """A record with one field `v` of the given type: how most evolutions look in practice."""
    return rec("R", fld("v", type_, **extra))


def parse(schema: Any) -> AvroSchema:
    def no_refs(ref: Reference) -> SchemaDoc:
        raise AssertionError(f"unexpected reference {ref}")

    return parse_avro(SchemaDoc("AVRO", json.dumps(schema), (), ""), no_refs)


NODE = rec("Node", fld("value", "int"), fld("next", ["null", "Node"], default=None))
NODE_PLUS = rec(
    "Node", fld("value", "int"), fld("next", ["null", "Node"], default=None), fld("tag", "string", default="")
)

# id, old, new, new reads old (BACKWARD), old reads new (FORWARD)
CASES: list[tuple[str, Any, Any, bool, bool]] = [
    ("identical record", rec("R", fld("a", "int")), rec("R", fld("a", "int")), True, True),
    (
        "add field with default",
        rec("R", fld("a", "int")),
        rec("R", fld("a", "int"), fld("b", "string", default="x")),
        True,
        True,
    ),
    (
        "add field without default",
        rec("R", fld("a", "int")),
        rec("R", fld("a", "int"), fld("b", "string")),
        False,
        True,
    ),
    (
        "remove field that had a default",
        rec("R", fld("a", "int"), fld("b", "int", default=0)),
        rec("R", fld("a", "int")),
        True,
        True,
    ),
    (
        "remove field without default",
        rec("R", fld("a", "int"), fld("b", "int")),
        rec("R", fld("a", "int")),
        True,
        False,
    ),
    (
        "add nullable field, null default",
        rec("R", fld("a", "int")),
        rec("R", fld("a", "int"), fld("b", ["null", "string"], default=None)),
        True,
        True,
    ),
    ("promote int to long", in_record("int"), in_record("long"), True, False),
    ("demote long to int", in_record("long"), in_record("int"), False, True),
    ("promote int to float", in_record("int"), in_record("float"), True, False),
    ("promote int to double", in_record("int"), in_record("double"), True, False),
    ("promote long to float", in_record("long"), in_record("float"), True, False),
    ("promote long to double", in_record("long"), in_record("double"), True, False),
    ("promote float to double", in_record("float"), in_record("double"), True, False),
    ("string to bytes", in_record("string"), in_record("bytes"), True, True),
    ("int to string", in_record("int"), in_record("string"), False, False),
    ("boolean to int", in_record("boolean"), in_record("int"), False, False),
    (
        "enum symbol added",
        in_record(enum(["RED", "GREEN"])),
        in_record(enum(["RED", "GREEN", "BLUE"])),
        True,
        False,
    ),
    (
        "enum symbol removed",
        in_record(enum(["RED", "GREEN", "BLUE"])),
        in_record(enum(["RED", "GREEN"])),
        False,
        True,
    ),
    (
        "enum symbol added, old has default",
        in_record(enum(["RED", "GREEN"], default="RED")),
        in_record(enum(["RED", "GREEN", "BLUE"], default="RED")),
        True,
        True,
    ),
    (
        "enum symbol removed, new has default",
        in_record(enum(["RED", "GREEN", "BLUE"])),
        in_record(enum(["RED", "GREEN"], default="RED")),
        True,
        True,
    ),
    (
        "enum renamed",
        in_record(enum(["RED"], name="Colour")),
        in_record(enum(["RED"], name="Hue")),
        False,
        False,
    ),
    (
        "enum renamed with alias",
        in_record(enum(["RED"], name="Colour")),
        in_record(enum(["RED"], name="Hue", aliases=["Colour"])),
        True,
        False,
    ),
    ("record renamed", rec("Old", fld("a", "int")), rec("New", fld("a", "int")), False, False),
    (
        "record renamed with alias",
        rec("Old", fld("a", "int")),
        rec("New", fld("a", "int"), aliases=["Old"]),
        True,
        False,
    ),
    (
        "namespace changed, same name",
        rec("R", fld("a", "int"), namespace="one"),
        rec("R", fld("a", "int"), namespace="two"),
        True,
        True,
    ),
    (
        "field renamed with alias",
        rec("R", fld("old", "int")),
        rec("R", fld("new", "int", aliases=["old"])),
        True,
        False,
    ),
    ("field renamed without alias", rec("R", fld("old", "int")), rec("R", fld("new", "int")), False, False),
    ("fixed same", in_record(fixed("F", 4)), in_record(fixed("F", 4)), True, True),
    ("fixed size changed", in_record(fixed("F", 4)), in_record(fixed("F", 8)), False, False),
    ("fixed renamed", in_record(fixed("F", 4)), in_record(fixed("G", 4)), False, False),
    ("union widened", in_record(["null", "string"]), in_record(["null", "string", "int"]), True, False),
    ("union narrowed", in_record(["null", "string", "int"]), in_record(["null", "string"]), False, True),
    ("type made nullable", in_record("string"), in_record(["null", "string"]), True, False),
    ("nullable made required", in_record(["null", "string"]), in_record("string"), False, True),
    ("union branch promoted", in_record(["null", "int"]), in_record(["null", "long"]), True, False),
    (
        "union reads writer via promotion",
        in_record("int"),
        in_record(["null", "string", "double"]),
        True,
        False,
    ),
    ("array items promoted", in_record(arr("int")), in_record(arr("long")), True, False),
    ("array items changed", in_record(arr("int")), in_record(arr("string")), False, False),
    ("map values string to bytes", in_record(mp("string")), in_record(mp("bytes")), True, True),
    ("map values changed", in_record(mp("int")), in_record(mp("boolean")), False, False),
    ("array to map", in_record(arr("int")), in_record(mp("int")), False, False),
    (
        "nested record field added with default",
        rec("Outer", fld("in", rec("Inner", fld("a", "int")))),
        rec("Outer", fld("in", rec("Inner", fld("a", "int"), fld("b", "long", default=0)))),
        True,
        True,
    ),
    (
        "nested record field added without default",
        rec("Outer", fld("in", rec("Inner", fld("a", "int")))),
        rec("Outer", fld("in", rec("Inner", fld("a", "int"), fld("b", "long")))),
        False,
        True,
    ),
    (
        "record inside array of records loses field",
        in_record(arr(rec("Item", fld("a", "int"), fld("b", "int")))),
        in_record(arr(rec("Item", fld("a", "int")))),
        True,
        False,
    ),
    ("recursive type unchanged", NODE, NODE, True, True),
    ("recursive type gains field with default", NODE, NODE_PLUS, True, True),
    ("primitive string to bytes", "string", "bytes", True, True),
    ("primitive int to null", "int", "null", False, False),
]


def expected_at(level: str, new_reads_old: bool, old_reads_new: bool) -> bool:
    if level == "NONE":
        return True
    needs_backward = level.startswith(("BACKWARD", "FULL"))
    needs_forward = level.startswith(("FORWARD", "FULL"))
    return (new_reads_old or not needs_backward) and (old_reads_new or not needs_forward)


def test_table_has_at_least_thirty_pairs() -> None:
    assert len(CASES) >= 30
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    ("old", "new", "backward", "forward"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_pair_at_every_level(old: Any, new: Any, backward: bool, forward: bool, level: str) -> None:
    problems = check_level(level, parse(new), [(1, parse(old))])
    assert (not problems) is expected_at(level, backward, forward), problems


@pytest.mark.parametrize(
    ("old", "new", "backward", "forward"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_table_agrees_with_fastavro_on_real_data(old: Any, new: Any, backward: bool, forward: bool) -> None:
    """The table's answers are not just the checker's opinion: fastavro's own resolution agrees.

    Data written with the writer schema, covering every enum symbol and union branch, must all decode with
    the reader schema when the pair is compatible, and at least one must fail to decode when it is not.
    """
    for reader, writer, readable in ((new, old, backward), (old, new, forward)):
        outcomes = [_decodes(reader, writer, datum) for datum in _samples(writer)]
        assert all(outcomes) if readable else not all(outcomes)


def _decodes(reader: Any, writer: Any, datum: Any) -> bool:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(writer), datum)
    buf.seek(0)
    try:
        fastavro.schemaless_reader(buf, fastavro.parse_schema(writer), fastavro.parse_schema(reader))
    except Exception:
        return False
    return True


def _samples(schema: Any) -> list[Any]:
    """A few data that together use every enum symbol and union branch of the schemas in the table."""
    text = json.dumps(schema)
    if "Colour" in text:
        symbols = schema["fields"][0]["type"]["symbols"]
        return [{"v": s} for s in symbols]
    if schema in ("string", "bytes", "int", "null"):
        return [{"string": "s", "bytes": b"b", "int": 1, "null": None}[schema]]
    samples = [_fill(schema)]
    union = schema.get("fields", [{}])[0].get("type") if isinstance(schema, dict) else None
    if isinstance(union, list):
        samples = [{"v": _fill(branch)} for branch in union]
    return samples


def _fill(schema: Any) -> Any:
    simple = {"null": None, "boolean": True, "int": 7, "long": 7, "float": 1.5, "double": 2.5}
    simple |= {"bytes": b"ab", "string": "ab", "Node": None}
    if isinstance(schema, str):
        return simple[schema]
    if isinstance(schema, list):
        return _fill(schema[0])
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: _fill(f["type"]) for f in schema["fields"]}
    if kind == "array":
        return [_fill(schema["items"])]
    if kind == "map":
        return {"k": _fill(schema["values"])}
    if kind == "fixed":
        return b"x" * schema["size"]
    if kind == "enum":
        return schema["symbols"][0]
    return _fill(kind)


def test_transitive_levels_check_every_previous_version() -> None:
    """v1 -> v2 drops a defaulted field, v3 re-adds it without a default: fine against v2, not against v1."""
    v1 = parse(rec("R", fld("a", "int"), fld("b", "string", default="x")))
    v2 = parse(rec("R", fld("a", "int")))
    v3 = parse(rec("R", fld("a", "int"), fld("b", "int", default=0)))
    assert check_level("BACKWARD", v3, [(2, v2)]) == []
    problems = check_level("BACKWARD_TRANSITIVE", v3, [(1, v1), (2, v2)])
    assert len(problems) == 1
    assert "TYPE_MISMATCH at '/fields/1/type'" in problems[0]
    assert "version 1" in problems[0]


def test_forward_transitive_reports_the_old_version_that_cannot_read() -> None:
    v1 = parse(rec("R", fld("a", "int"), fld("b", "int")))
    v2 = parse(rec("R", fld("a", "int"), fld("b", "int", default=1)))
    v3 = parse(rec("R", fld("a", "int")))
    assert check_level("FORWARD", v3, [(2, v2)]) == []
    problems = check_level("FORWARD_TRANSITIVE", v3, [(1, v1), (2, v2)])
    assert problems == [
        "READER_FIELD_MISSING_DEFAULT_VALUE at '/fields/1': the reader field 'b' is not in the writer"
        " and has no default (version 1 cannot read data written with the new schema)"
    ]


def test_reasons_name_the_path_where_reading_fails() -> None:
    old = parse(rec("Outer", fld("id", "long"), fld("tags", arr(enum(["A", "B"])))))
    new = parse(rec("Outer", fld("id", "int"), fld("tags", arr(enum(["A"])))))
    problems = reader_problems(new, old)
    assert [p.split(":")[0] for p in problems] == [
        "TYPE_MISMATCH at '/fields/0/type'",
        "MISSING_ENUM_SYMBOLS at '/fields/1/type/items/symbols'",
    ]
    assert "['B']" in problems[1]


def test_missing_union_branch_is_named() -> None:
    problems = reader_problems(
        parse(in_record(["null", "string"])), parse(in_record(["null", "string", "int"]))
    )
    assert problems == [
        "MISSING_UNION_BRANCH at '/fields/0/type': no reader branch reads the writer's int (branch 2)"
    ]


def test_names_resolve_through_named_types_of_references() -> None:
    """A schema whose field type is defined in a referenced schema compares through that definition."""
    address_v1 = rec("Address", fld("street", "string"), namespace="com.acme")
    address_v2 = rec("Address", fld("street", "string"), fld("zip", "string"), namespace="com.acme")
    docs = {
        ("addr", 1): SchemaDoc("AVRO", json.dumps(address_v1), (), ""),
        ("addr", 2): SchemaDoc("AVRO", json.dumps(address_v2), (), ""),
    }

    def resolve(ref: Reference) -> SchemaDoc:
        return docs[(ref.subject, ref.version)]

    user = json.dumps(rec("User", fld("home", "com.acme.Address"), namespace="com.acme"))
    old = parse_avro(SchemaDoc("AVRO", user, (Reference("com.acme.Address", "addr", 1),), ""), resolve)
    new = parse_avro(SchemaDoc("AVRO", user, (Reference("com.acme.Address", "addr", 2),), ""), resolve)
    assert reader_problems(old, new) == []
    assert [p.split(":")[0] for p in reader_problems(new, old)] == [
        "READER_FIELD_MISSING_DEFAULT_VALUE at '/fields/0/type/fields/1'"
    ]

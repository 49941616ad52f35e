"""Property tests over generated schemas and records: round trips, refused misfits, kept union branches.

Schemas are drawn from every Avro type the codec handles (primitives, enums, fixed, decimals, uuids, dates,
timestamps, arrays, maps, nested records, nullable unions, unions of several records, unions of several
primitives); records are drawn to fit them. Then:

* encoding and decoding gives the record back, and records of unions of several records come back as
  `NamedRecord` of the same branch; re-encoding what was decoded gives the same bytes;
* one value replaced by a value its Avro type cannot hold (or a required field removed, or a field added)
  is refused with `ValueDoesNotFit` naming the path of that value.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import io
import itertools
from collections.abc import Mapping
from typing import Any

import fastavro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_avro_support import MemoryRegistry

from registry_codecs import AvroDeserializer, AvroSerializer
from registry_codecs.errors import ValueDoesNotFit
from registry_codecs.unions import NamedRecord
from registry_codecs.validation import compile_validator

_names = itertools.count()

LEAVES = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")
LOGICAL = (
    {"type": "string", "logicalType": "uuid"},
    {"type": "int", "logicalType": "date"},
    {"type": "long", "logicalType": "timestamp-millis"},
)


def _name(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


@st.composite
def leaf_schemas(draw: st.DrawFn) -> Any:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        size = draw(st.integers(1, 6))
        return {"type": "fixed", "name": _name("F"), "size": size}
    if choice == 1:
        return {
            "type": "enum",
            "name": _name("E"),
            "symbols": draw(st.sampled_from([["A"], ["A", "B", "C"]])),
        }
    if choice == 2:
        precision = draw(st.integers(1, 12))
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": precision,
            "scale": draw(st.integers(0, precision)),
        }
    if choice == 3:
        return dict(draw(st.sampled_from(LOGICAL)))
    return draw(st.sampled_from(LEAVES))


def record_schema(draw: st.DrawFn, depth: int) -> dict[str, Any]:
    count = draw(st.integers(1, 4))
    fields = [{"name": f"f{i}", "type": draw(schemas(depth + 1))} for i in range(count)]
    return {"type": "record", "name": _name("R"), "fields": fields}


@st.composite
def schemas(draw: st.DrawFn, depth: int = 0) -> Any:
    if depth >= 3:
        return draw(leaf_schemas())
    kind = draw(st.sampled_from(["leaf", "leaf", "array", "map", "record", "nullable", "records", "mixed"]))
    if kind == "leaf":
        return draw(leaf_schemas())
    if kind == "array":
        return {"type": "array", "items": draw(schemas(depth + 1))}
    if kind == "map":
        return {"type": "map", "values": draw(schemas(depth + 1))}
    if kind == "record":
        return record_schema(draw, depth)
    if kind == "nullable":
        inner = draw(schemas(depth + 1))
        if isinstance(inner, list) or inner == "null":
            return ["null", "string"]
        return ["null", inner]
    if kind == "records":  # a union of several records, with or without null
        records = [record_schema(draw, depth + 1) for _ in range(draw(st.integers(2, 3)))]
        return (["null"] if draw(st.booleans()) else []) + records
    return draw(
        st.sampled_from([["int", "string"], ["null", "long", "string"], ["string", "boolean", "double"]])
    )


def values(schema: Any) -> st.SearchStrategy[Any]:
    """Values that fit `schema` exactly (and that come back equal from a round trip)."""
    if isinstance(schema, list):
        records = sum(isinstance(b, dict) and b["type"] == "record" for b in schema)
        options = []
        for branch in schema:
            strategy = values(branch)
            if records > 1 and isinstance(branch, dict) and branch["type"] == "record":
                strategy = strategy.map(lambda v, name=branch["name"]: NamedRecord(name, v))
            options.append(strategy)
        return st.one_of(options)
    if isinstance(schema, str):
        return _PRIMITIVES[schema]
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical == "decimal":
        precision, scale = schema["precision"], schema["scale"]
        return st.integers(-(10**precision) + 1, 10**precision - 1).map(
            lambda i: decimal.Decimal(i).scaleb(-scale)
        )
    if logical == "uuid":
        return st.uuids()
    if logical == "date":
        return st.dates()
    if logical == "timestamp-millis":
        return st.datetimes(
            min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2200, 1, 1)
        ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=datetime.UTC))
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(values(schema["items"]), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=3), values(schema["values"]), max_size=3)
    return st.fixed_dictionaries({f["name"]: values(f["type"]) for f in schema["fields"]})


_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "string": st.text(max_size=5),
    "bytes": st.binary(max_size=5),
}


def same(written: Any, read: Any) -> bool:
    """Equal, and every NamedRecord came back as a NamedRecord of the same branch."""
    if isinstance(written, NamedRecord):
        if not (isinstance(read, NamedRecord) and read.avro_name == written.avro_name):
            return False
    if isinstance(written, Mapping):
        return (
            isinstance(read, Mapping)
            and written.keys() == read.keys()
            and all(same(written[k], read[k]) for k in written)
        )
    if isinstance(written, list | tuple):
        return isinstance(read, list) and len(read) == len(written) and all(map(same, written, read))
    return type(written) is type(read) and bool(written == read)


@st.composite
def schema_and_record(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = record_schema(draw, 0)
    return schema, draw(values(schema))


def codec(schema: Any) -> tuple[AvroSerializer, AvroDeserializer]:
    registry = MemoryRegistry()
    registry.add("generated-value", schema)
    return AvroSerializer(registry, "generated-value"), AvroDeserializer(registry)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(case=schema_and_record())
def test_encode_then_decode_gives_the_record_back_with_its_union_branches(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    schema, record = case
    serializer, deserializer = codec(schema)
    frame = serializer.encode(record)
    decoded = deserializer.decode(frame)
    assert same(record, decoded), (record, decoded)
    assert serializer.encode(decoded) == frame  # a pass-through transform writes the same bytes


MISFITS: dict[str, tuple[Any, ...]] = {
    "null": (0, False, ""),
    "boolean": (1, 0, "true", None),
    "int": (2**31, -(2**31) - 1, 1.5, 1.0, True, "1", None),
    "long": (2**63, -(2**63) - 1, 2.0, False, "1", None),
    "float": (1e39, -1e39, 2**200, True, "1.0", None),
    "double": (True, "1.0", decimal.Decimal("1"), None),
    "string": (b"x", 1, None),
    "bytes": ("x", 1, None),
}


def misfits_for(schema: Any) -> tuple[Any, ...]:
    if isinstance(schema, list):
        return (frozenset({1}), object())  # a union: values no branch holds
    if isinstance(schema, str):
        return MISFITS[schema]
    logical = schema.get("logicalType")
    if logical == "decimal":
        precision, scale = schema["precision"], schema["scale"]
        too_wide = decimal.Decimal(10 ** (precision - scale))
        return (decimal.Decimal(1).scaleb(-scale - 1), too_wide, -too_wide, 1.5)
    if logical == "uuid":
        return ("not-a-uuid", 5)
    if logical == "date":
        return (datetime.datetime(2020, 1, 1, 5), 1.5, 2**31)
    if logical == "timestamp-millis":
        return (1.5, "2020-01-01", 2**63)
    if schema["type"] == "fixed":
        return (b"x" * (schema["size"] + 1), "x" * schema["size"])
    if schema["type"] == "enum":
        return ("NOT_A_SYMBOL", 0)
    if schema["type"] == "array":
        return ("ab", {"a": 1})
    if schema["type"] == "map":
        return ([("a", 1)], 5)
    return (5, [1])  # a record


def slots(schema: Any, value: Any, path: str) -> list[tuple[str, dict[str, Any], str, Any]]:
    """(path, record, field name, field schema) of every field value that a misfit can replace."""
    found: list[tuple[str, dict[str, Any], str, Any]] = []
    if isinstance(schema, list):
        if isinstance(value, NamedRecord):
            branch = next(b for b in schema if isinstance(b, dict) and b.get("name") == value.avro_name)
            return slots(branch, value, path)
        if isinstance(value, dict) and (records := [b for b in schema if isinstance(b, dict)]):
            return slots(records[0], value, path) if len(records) == 1 else []
        return []
    if isinstance(schema, dict) and schema["type"] == "record":
        for field in schema["fields"]:
            where = f"{path}.{field['name']}" if path else field["name"]
            found.append((where, value, field["name"], field["type"]))
            found.extend(slots(field["type"], value[field["name"]], where))
    elif isinstance(schema, dict) and schema["type"] == "array":
        for index, item in enumerate(value):
            found.extend(slots(schema["items"], item, f"{path}[{index}]"))
    elif isinstance(schema, dict) and schema["type"] == "map":
        for key, item in value.items():
            found.extend(slots(schema["values"], item, f"{path}[{key!r}]"))
    return found


@PROPERTY
@given(case=schema_and_record(), data=st.data())
def test_every_misfit_value_is_refused_naming_its_path(
    case: tuple[dict[str, Any], dict[str, Any]], data: st.DataObject
) -> None:
    schema, record = case
    serializer, _ = codec(schema)
    where, container, name, field_schema = data.draw(st.sampled_from(slots(schema, record, "")))
    change = data.draw(st.sampled_from(["value", "missing", "extra"]))
    if change == "value":
        container[name] = data.draw(st.sampled_from(misfits_for(field_schema)))
        expected = where
    elif change == "missing":
        del container[name]
        expected = where
    else:
        container["zz_extra"] = 1
        expected = where.rsplit(".", 1)[0] + ".zz_extra" if "." in where else "zz_extra"
    try:
        serializer.encode(record)
    except ValueDoesNotFit as exc:
        assert exc.field_path == expected, (exc, container)
    else:
        raise AssertionError(f"{change} at {where} was written: {record!r}")


@PROPERTY
@given(case=schema_and_record())
def test_the_compiled_check_takes_every_fitting_record_and_agrees_with_the_fitter(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    # The compiled check is the per-record fast path: it must not hand fitting records of plain types to
    # the slow fitter, and what it prepares must write the same bytes as what the fitter prepares.
    schema, record = case
    parsed = fastavro.parse_schema(copy.deepcopy(schema))
    check = compile_validator(parsed)
    fast, slow = io.BytesIO(), io.BytesIO()
    fastavro.schemaless_writer(fast, parsed, check.fast(record))
    fastavro.schemaless_writer(slow, parsed, check.prepare(record))
    assert fast.getvalue() == slow.getvalue()

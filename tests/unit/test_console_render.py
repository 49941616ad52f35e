"""`avroflow consume` renders each message as one JSON-ready line: tombstones as such, not as errors."""

from __future__ import annotations

import json
from types import SimpleNamespace

from registry_codecs import AvroSerializer, InMemorySchemaLookup
from registry_codecs.serde import AvroDeserializer
from workers.console import render

SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "id", "type": "long"}]})


def message(key: bytes | None, value: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(partition=0, offset=7, timestamp=1_700_000_000_000, key=key, value=value)


def test_a_tombstone_is_printed_as_a_null_value_with_its_key() -> None:
    lookup = InMemorySchemaLookup()
    lookup.register("t-value", SCHEMA)
    deserializer = AvroDeserializer(lookup, subject="t")
    line = render(deserializer, message(b"user-1", None))
    assert line == {
        "partition": 0,
        "offset": 7,
        "timestamp": 1_700_000_000_000,
        "key": "user-1",
        "schema_id": None,
        "value": None,
        "tombstone": True,
    }
    frame = AvroSerializer(lookup, "t-value").encode({"id": 1})
    assert render(deserializer, message(b"user-1", frame))["value"] == {"id": 1}
    assert "tombstone" not in render(deserializer, message(b"user-1", frame))


USER = json.dumps(
    {
        "type": "record",
        "name": "U",
        "namespace": "t",
        "fields": [{"name": "user", "type": ["null", "string"]}, {"name": "n", "type": ["int", "long"]}],
    }
)


def test_avro_json_lines_encode_to_frames_and_print_back() -> None:
    from workers.console import AvroJsonPrinter, _Encoder

    lookup = InMemorySchemaLookup()
    schema_id = lookup.register("t-value", USER)
    encoder = _Encoder(lookup, "t-value", "user", "avro-json")  # type: ignore[arg-type]  # a SchemaLookup
    line = '{"user":{"string":"u1"},"n":{"long":5}}'
    key, frame = encoder.encode(1, line)
    assert key == b"u1"  # the union's value, not its wrapper
    assert frame == b"\x00" + schema_id.to_bytes(4, "big") + b"\x02\x04u1\x02\x0a"
    printer = AvroJsonPrinter(lookup, AvroDeserializer(lookup, subject="t"))  # type: ignore[arg-type]
    assert printer.line(frame) == line
    assert printer.line(None) == "null"


def test_a_bad_avro_json_line_names_its_line_and_field() -> None:
    import pytest

    from workers.console import LineError, _Encoder

    lookup = InMemorySchemaLookup()
    lookup.register("t-value", USER)
    encoder = _Encoder(lookup, "t-value", None, "avro-json")  # type: ignore[arg-type]  # a SchemaLookup
    with pytest.raises(LineError, match=r"^line 3: n: a union value other than null is written"):
        encoder.encode(3, '{"user":null,"n":5}')
    with pytest.raises(LineError, match=r"^line 4: user: unknown union branch 'str'"):
        encoder.encode(4, '{"user":{"str":"x"},"n":{"int":1}}')

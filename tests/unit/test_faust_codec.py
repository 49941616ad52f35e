"""ConfluentAvroCodec: subject naming, clone, |, registration by name, no lookups per message, the start check
of serializer names."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import faust
import pytest
from faust.exceptions import ValueDecodeError
from faust.serializers import codecs as faust_codecs
from hypothesis import given, settings
from prometheus_client import CollectorRegistry
from test_avro_support import EVENT_SCHEMA, EVENT_SCHEMA_STR, MemoryRegistry, event_records, sample_event

import registry_codecs
from registry_codecs import FramingError, RecordDoesNotFitSchema
from registry_codecs.faust_codec import (
    ConfluentAvroCodec,
    SubjectNameStrategy,
    UnknownSerializer,
    check_serializers,
    register_codec,
    subject_name,
)
from registry_codecs.metrics import CodecMetrics

POINT = {
    "type": "record",
    "name": "Point",
    "namespace": "geo",
    "fields": [{"name": "x", "type": "int"}, {"name": "y", "type": "int"}],
}
KEY = {"type": "record", "name": "Key", "fields": [{"name": "id", "type": "string"}]}


@pytest.fixture
def registry() -> MemoryRegistry:
    registry = MemoryRegistry()
    registry.add("points-value", POINT)
    registry.add("points-key", KEY)
    return registry


@pytest.fixture
def codec_name() -> Iterator[str]:
    name = f"avro-test-{uuid.uuid4().hex[:8]}"
    yield name
    faust_codecs.codecs.pop(name, None)


def test_subject_name_strategies(registry: MemoryRegistry) -> None:
    assert subject_name("topic_name", topic="orders") == "orders-value"
    assert subject_name(SubjectNameStrategy.TOPIC_NAME, topic="orders", is_key=True) == "orders-key"
    assert subject_name("record_name", record_name="geo.Point") == "geo.Point"
    assert subject_name("topic_record_name", topic="orders", record_name="geo.Point") == "orders-geo.Point"
    with pytest.raises(ValueError, match="needs topic"):
        subject_name("topic_name")
    with pytest.raises(ValueError, match="needs record_name"):
        subject_name("topic_record_name", topic="orders")
    schema = json.dumps(POINT)
    assert ConfluentAvroCodec(lookup=registry, topic="points").subject == "points-value"
    assert ConfluentAvroCodec(lookup=registry, topic="points", is_key=True).subject == "points-key"
    assert ConfluentAvroCodec(lookup=registry, strategy="record_name", schema=schema).subject == "geo.Point"
    codec = ConfluentAvroCodec(lookup=registry, topic="t", strategy="topic_record_name", schema=schema)
    assert codec.subject == "t-geo.Point"
    assert ConfluentAvroCodec(lookup=registry, subject="explicit").subject == "explicit"


def test_value_and_key_codecs_encode_with_their_subjects_latest_schema(registry: MemoryRegistry) -> None:
    value_codec = ConfluentAvroCodec(lookup=registry, topic="points")
    key_codec = ConfluentAvroCodec(lookup=registry, topic="points", is_key=True)
    value = value_codec.dumps({"x": 1, "y": -1})
    key = key_codec.dumps({"id": "k1"})
    assert value[1:5] == registry.get_latest("points-value").schema_id.to_bytes(4, "big")
    assert key[1:5] == registry.get_latest("points-key").schema_id.to_bytes(4, "big")
    assert value_codec.loads(value) == {"x": 1, "y": -1}
    assert key_codec.loads(key) == {"id": "k1"}
    with pytest.raises(RecordDoesNotFitSchema) as caught:
        value_codec.dumps({"x": 1, "y": "no"})
    assert caught.value.field_path == "y"


def test_chaining_and_clone_follow_fausts_codec_contract(registry: MemoryRegistry) -> None:
    codec = ConfluentAvroCodec(lookup=registry, topic="points")
    frame = codec.dumps({"x": 3, "y": 4})
    chained = codec | faust_codecs.binary()
    assert isinstance(chained, ConfluentAvroCodec)
    assert chained.subject == "points-value"
    encoded = chained.dumps({"x": 3, "y": 4})
    assert encoded == base64.b64encode(frame)
    assert chained.loads(encoded) == {"x": 3, "y": 4}
    clone = codec.clone()
    assert clone is not codec and clone.subject == codec.subject and clone.children == ()
    assert clone.loads(frame) == {"x": 3, "y": 4}
    assert "ConfluentAvroCodec" in repr(chained) and "binary" in repr(chained)


def test_registered_by_name_it_serves_faust_records_topics_and_dumps(
    registry: MemoryRegistry, codec_name: str
) -> None:
    register_codec(codec_name, ConfluentAvroCodec(lookup=registry, topic="points"))
    frame = faust_codecs.dumps(codec_name, {"x": 5, "y": 6})
    assert frame[0] == 0
    assert faust_codecs.loads(codec_name, frame) == {"x": 5, "y": 6}
    assert faust_codecs.loads(
        f"{codec_name}|binary", faust_codecs.dumps(f"{codec_name}|binary", {"x": 1, "y": 2})
    ) == {"x": 1, "y": 2}

    class Point(faust.Record, serializer=codec_name):
        x: int
        y: int

    assert Point(x=7, y=8).dumps() == faust_codecs.dumps(codec_name, {"x": 7, "y": 8})
    assert Point.loads(frame) == Point(x=5, y=6)

    app = faust.App(f"app-{codec_name}", broker="memory://")
    topic = app.topic("points", value_type=Point, value_serializer=codec_name)
    payload, _headers = topic.prepare_value(Point(x=9, y=10), None)
    assert app.serializers.loads_value(Point, payload, serializer=codec_name) == Point(x=9, y=10)
    assert app.serializers.loads_value(None, payload, serializer=codec_name) == {"x": 9, "y": 10}
    with pytest.raises(ValueDecodeError) as caught:
        app.serializers.loads_value(None, b"\x01junk", serializer=codec_name)
    assert isinstance(caught.value.__cause__, FramingError)


def test_steady_state_makes_no_lookup_call_per_message(registry: MemoryRegistry) -> None:
    registry.add("events-value", EVENT_SCHEMA)
    metrics_registry = CollectorRegistry()
    codec = ConfluentAvroCodec(lookup=registry, topic="events", metrics=CodecMetrics.create(metrics_registry))
    codec.loads(codec.dumps(sample_event()))
    warm = dict(registry.calls)
    for _ in range(300):
        assert codec.loads(codec.dumps(sample_event())) == sample_event()
    assert registry.calls == warm
    assert (
        metrics_registry.get_sample_value("avroflow_messages_decoded_total", {"subject": "events-value"})
        == 301
    )


def test_a_reader_schema_and_auto_registration(registry: MemoryRegistry) -> None:
    schema = json.dumps(POINT)
    codec = ConfluentAvroCodec(lookup=registry, topic="fresh", schema=schema, auto_register=True)
    frame = codec.dumps({"x": 1, "y": 2})
    assert registry.get_latest("fresh-value").schema_id == int.from_bytes(frame[1:5], "big")
    reader: dict[str, Any] = {
        **POINT,
        "fields": [*POINT["fields"], {"name": "z", "type": "int", "default": 0}],
    }
    evolved = ConfluentAvroCodec(lookup=registry, topic="fresh", reader_schema=reader)
    assert evolved.loads(frame) == {"x": 1, "y": 2, "z": 0}
    assert (
        ConfluentAvroCodec(lookup=registry, topic="events", reader_schema=EVENT_SCHEMA_STR).subject
        == "events-value"
    )


EVENTS = MemoryRegistry()
EVENTS.add("events-value", EVENT_SCHEMA)
EVENT_CODEC = ConfluentAvroCodec(lookup=EVENTS, topic="events")


@settings(max_examples=80, deadline=None)
@given(record=event_records())
def test_generated_records_round_trip_alone_and_chained(record: dict[str, Any]) -> None:
    frame = EVENT_CODEC.dumps(record)
    assert EVENT_CODEC.loads(frame) == record
    chained = EVENT_CODEC | faust_codecs.binary()
    assert chained.loads(chained.dumps(record)) == record


def test_only_the_faust_codec_imports_faust() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, registry_codecs, registry_codecs.avro, registry_codecs.serde, registry_codecs.registry\n"
        "assert 'faust' not in sys.modules, 'faust imported'\n"
        "registry_codecs.ConfluentAvroCodec\n"
        "assert 'faust' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def _app_reading(name: str, serializer: str) -> faust.App:
    app = faust.App(f"app-{name}", broker="kafka://127.0.0.1:9", web_enabled=False, autodiscover=False)
    topic = app.topic("points", value_serializer=serializer)

    @app.agent(topic, name=f"points-{name}")
    async def points(stream: Any) -> None:
        async for _ in stream:
            pass

    return app


def test_a_serializer_name_that_is_not_registered_fails_at_start_naming_topic_and_name(
    registry: MemoryRegistry, codec_name: str
) -> None:
    app = _app_reading(codec_name, "avro")  # the name a user tries first; nothing registers it
    registry_codecs.check_serializers_at_start(app)
    with pytest.raises(UnknownSerializer) as caught:
        app.worker_init_post_autodiscover()  # what app.main() and `faust worker` run before consuming
    message = str(caught.value)
    assert "topic points value_serializer is 'avro', which is not a registered Faust codec" in message
    assert "register_codec" in message

    for bad in ("avro|binary", "binary|avro"):  # chains resolve link by link
        with pytest.raises(UnknownSerializer):
            check_serializers(_app_reading(f"{codec_name}-{len(bad)}-{bad[0]}", bad))


def test_registered_names_and_chains_pass_the_start_check(registry: MemoryRegistry, codec_name: str) -> None:
    register_codec(codec_name, ConfluentAvroCodec(lookup=registry, topic="points"))
    check_serializers(_app_reading(codec_name, codec_name))
    check_serializers(_app_reading(f"{codec_name}-chain", f"{codec_name}|binary"))
    app = _app_reading(f"{codec_name}-sink", "raw")
    with pytest.raises(UnknownSerializer, match="topic points-out value_serializer"):
        check_serializers(app, app.topic("points-out", value_serializer="avro-sink-unregistered"))

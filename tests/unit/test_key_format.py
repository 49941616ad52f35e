"""Each `key_format` (raw, avro, auto) with a good Avro key, a key that is not Avro, a frame whose schema id
is unknown, and a registry outage while the key is read: what the output's key becomes, which inputs are
dead letters, and which failures hold the batch back instead (a registry outage never dead-letters a good
record)."""

from __future__ import annotations

import json

import pytest
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, transform
from prometheus_client import CollectorRegistry
from test_processing import MemoryRegistry, Message, avro, order

from registry_codecs import RegisteredSchema, RegistryUnavailable, SubjectNotFound, frame
from registry_codecs.metrics import CodecMetrics
from workers.pipeline import Pipeline
from workers.processing import DEAD, OUT, Backoff, PipelineRunner
from workers.web import Readiness, WorkerMetrics

KEY_SCHEMA = json.dumps({"type": "record", "name": "Key", "fields": [{"name": "user", "type": "string"}]})
SINK_KEY_SCHEMA = KEY_SCHEMA.replace('"Key"', '"OutKey"')


class KeyOutage(MemoryRegistry):
    """A registry that is unreachable for the schema ids in `down_ids` only (the key's, in these tests)."""

    def __init__(self) -> None:
        super().__init__()
        self.down_ids: set[int] = set()

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        if schema_id in self.down_ids:
            raise RegistryUnavailable("connection refused")
        return super().get_schema(schema_id)


class Setup:
    def __init__(self, key_format: str, *, key_subject: bool = True) -> None:
        self.collector = CollectorRegistry()
        self.registry = KeyOutage()
        self.registry.register("orders-value", INPUT_SCHEMA)
        self.registry.register("orders-out-value", OUTPUT_SCHEMA)
        self.key_id = self.registry.register("orders-key", KEY_SCHEMA)
        self.sink_key_id = self.registry.register("orders-out-key", SINK_KEY_SCHEMA) if key_subject else -1
        pipeline = Pipeline(
            "orders", "orders", "orders-out", transform, reader_schema=INPUT_SCHEMA, key_format=key_format
        )
        self.runner = PipelineRunner(
            pipeline,
            lookup=self.registry,
            dlq_topic="orders.dlq",
            metrics=WorkerMetrics.create(self.collector),
            readiness=Readiness(registry_max_age=10),
            backoff=Backoff(0.001, 0.002),
            codec_metrics=CodecMetrics.create(self.collector),
        )
        if key_subject:
            self.runner.keys.resolve()

    def good_key(self) -> bytes:
        return frame(self.key_id, avro(KEY_SCHEMA, {"user": "u1"}))

    def reencoded(self) -> bytes:
        return frame(self.sink_key_id, avro(SINK_KEY_SCHEMA, {"user": "u1"}))


UNKNOWN_ID_KEY = frame(999, b"\x02a")
PLAIN_KEY = b"user-1"
SHORT_KEY = b"\x00\x00"  # starts like a frame, too short to be one


@pytest.mark.parametrize(
    ("key_format", "reencodes"), [("raw", False), ("avro", True), ("auto", True)], ids=["raw", "avro", "auto"]
)
def test_a_good_avro_key(key_format: str, reencodes: bool) -> None:
    setup = Setup(key_format)
    outcome = setup.runner.process(Message(order(1), key=setup.good_key()))
    assert outcome.kind == OUT
    assert outcome.sends[0].key == (setup.reencoded() if reencodes else setup.good_key())


@pytest.mark.parametrize("key_format", ["raw", "auto"])
def test_without_a_sink_key_subject_every_key_is_carried_as_it_is(key_format: str) -> None:
    setup = Setup(key_format, key_subject=False)
    for key in (setup.good_key(), PLAIN_KEY, UNKNOWN_ID_KEY, None):
        outcome = setup.runner.process(Message(order(1), key=key))
        assert (outcome.kind, outcome.sends[0].key) == (OUT, key)


def test_avro_keys_without_a_sink_key_subject_hold_the_record_back_never_carry_it_raw() -> None:
    setup = Setup("avro", key_subject=False)
    with pytest.raises(SubjectNotFound):
        setup.runner.process(Message(order(1), key=setup.good_key()))


@pytest.mark.parametrize(
    "key", [PLAIN_KEY, UNKNOWN_ID_KEY, SHORT_KEY, b""], ids=["plain", "unknown", "short", "empty"]
)
def test_raw_carries_any_key_as_it_is(key: bytes) -> None:
    outcome = Setup("raw").runner.process(Message(order(1), key=key))
    assert (outcome.kind, outcome.sends[0].key) == (OUT, key)


@pytest.mark.parametrize("key", [PLAIN_KEY, UNKNOWN_ID_KEY, SHORT_KEY], ids=["plain", "unknown", "short"])
def test_auto_carries_a_key_that_is_not_avro_as_it_is(key: bytes) -> None:
    outcome = Setup("auto").runner.process(Message(order(1), key=key))
    assert (outcome.kind, outcome.sends[0].key) == (OUT, key)


@pytest.mark.parametrize(
    ("key", "reason"),
    [(PLAIN_KEY, "key_framing"), (SHORT_KEY, "key_framing"), (UNKNOWN_ID_KEY, "key_unknown_schema")],
    ids=["plain", "short", "unknown"],
)
def test_avro_dead_letters_a_key_that_is_not_avro(key: bytes, reason: str) -> None:
    setup = Setup("avro")
    message = Message(order(1), key=key)
    outcome = setup.runner.process(message)
    assert (outcome.kind, outcome.reason) == (DEAD, reason)
    [dead] = outcome.sends
    assert (dead.topic, dead.key, dead.value) == ("orders.dlq", key, message.value)
    assert dict(dead.headers or [])["dlq.schema.id"] == b"1"  # the value's writer id, which decoded


@pytest.mark.parametrize("key_format", ["avro", "auto"])
def test_a_registry_outage_on_the_key_holds_the_record_back_not_a_dead_letter(key_format: str) -> None:
    setup = Setup(key_format)
    setup.registry.down_ids.add(setup.key_id)
    with pytest.raises(RegistryUnavailable):
        setup.runner.process(Message(order(1), key=setup.good_key()))
    setup.registry.down_ids.clear()
    outcome = setup.runner.process(Message(order(1), key=setup.good_key()))
    assert (outcome.kind, outcome.sends[0].key) == (OUT, setup.reencoded())


def test_raw_never_asks_the_registry_about_keys() -> None:
    setup = Setup("raw")
    setup.registry.down_ids.add(setup.key_id)
    outcome = setup.runner.process(Message(order(1), key=setup.good_key()))
    assert (outcome.kind, outcome.sends[0].key) == (OUT, setup.good_key())


def test_a_missing_key_stays_missing_in_every_format() -> None:
    for key_format in ("raw", "avro", "auto"):
        outcome = Setup(key_format).runner.process(Message(order(1), key=None))
        assert (outcome.kind, outcome.sends[0].key) == (OUT, None), key_format


def test_auto_does_not_try_to_decode_a_key_that_is_not_a_frame() -> None:
    setup = Setup("auto")
    for key in (PLAIN_KEY, SHORT_KEY, b"u\x00\x00\x00\x00\x01"):  # the last: a zero byte, but not first
        outcome = setup.runner.process(Message(order(1), key=key))
        assert outcome.sends[0].key == key
    failures = setup.collector.get_sample_value(
        "avroflow_decode_failures_total", {"subject": "orders-key", "reason": "framing"}
    )
    assert not failures  # a plain key is not a failure: it is not counted as one
    setup.runner.process(Message(order(1), key=UNKNOWN_ID_KEY))  # looks like a frame: tried, then carried
    unknown = setup.collector.get_sample_value(
        "avroflow_decode_failures_total", {"subject": "orders-key", "reason": "unknown_schema"}
    )
    assert unknown == 1


def test_a_frame_of_just_a_header_is_a_key_when_its_schema_takes_no_bytes() -> None:
    setup = Setup("auto", key_subject=False)
    empty = json.dumps({"type": "record", "name": "NoKey", "fields": []})
    key_id = setup.registry.register("orders-key", empty)
    sink_key_id = setup.registry.register("orders-out-key", empty.replace("NoKey", "OutNoKey"))
    setup.runner.keys.resolve()
    outcome = setup.runner.process(Message(order(1), key=frame(key_id, b"")))  # exactly 5 bytes
    assert outcome.sends[0].key == frame(sink_key_id, b"")

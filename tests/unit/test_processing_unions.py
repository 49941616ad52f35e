"""The runner hands union records to the transform with their branch, and writes them back as that branch;
an output value its Avro type cannot hold is dead-lettered, never written."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
from prometheus_client import CollectorRegistry
from test_avro_support import MemoryRegistry

from registry_codecs import frame
from registry_codecs.unions import NamedRecord
from workers.delivery import DEAD, OUT, Backoff
from workers.pipeline import Pipeline
from workers.processing import PipelineRunner
from workers.web import Readiness, WorkerMetrics

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
EVENT = {
    "type": "record",
    "name": "Event",
    "namespace": "shop",
    "fields": [{"name": "change", "type": [CREATED, DELETED]}, {"name": "qty", "type": "int"}],
}


class Message:
    def __init__(self, value: bytes) -> None:
        self.value, self.key, self.headers = value, b"k", []
        self.topic, self.partition, self.offset, self.timestamp = "events", 0, 1, 1_700_000_000.0


def runner_for(transform: Any) -> tuple[PipelineRunner, int]:
    registry = MemoryRegistry()
    source_id = registry.add("events-value", EVENT)
    registry.add("events-out-value", EVENT)
    pipeline = Pipeline("events", "events", "events-out", transform)
    runner = PipelineRunner(
        pipeline,
        lookup=registry,
        dlq_topic="events.dlq",
        metrics=WorkerMetrics.create(CollectorRegistry()),
        readiness=Readiness(registry_max_age=10),
        backoff=Backoff(0.001, 0.002),
    )
    return runner, source_id


def body(record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(json.loads(json.dumps(EVENT))), record)
    return out.getvalue()


def test_a_pass_through_transform_keeps_the_branch_of_a_union_record() -> None:
    seen: list[Any] = []

    def pass_through(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(event["change"])
        return {**event, "qty": event["qty"] + 1}

    runner, source_id = runner_for(pass_through)
    outcome = runner.process(
        Message(frame(source_id, body({"change": ("shop.Deleted", {"id": 3}), "qty": 1})))
    )
    assert isinstance(seen[0], NamedRecord) and seen[0].avro_name == "shop.Deleted"
    assert outcome.kind == OUT
    [send] = outcome.sends
    assert send.value is not None
    assert send.value[5:] == body({"change": ("shop.Deleted", {"id": 3}), "qty": 2})  # not Created{id, by}


def test_an_output_int_out_of_range_or_an_ambiguous_branch_is_dead_lettered() -> None:
    outputs = iter(
        [
            {"change": NamedRecord("shop.Deleted", {"id": 1}), "qty": 2**31 + 5},
            {"change": {"id": 1}, "qty": 1},
        ]
    )
    runner, source_id = runner_for(lambda event: next(outputs))
    message = Message(frame(source_id, body({"change": ("shop.Deleted", {"id": 3}), "qty": 1})))
    for path in ("qty", "change"):
        outcome = runner.process(message)
        assert (outcome.kind, outcome.reason) == (DEAD, "record_does_not_fit_schema")
        headers = dict(outcome.sends[0].headers or [])
        assert outcome.sends[0].value == message.value
        assert f"at {path}:".encode() in headers["dlq.error.message"]

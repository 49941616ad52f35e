"""The worker's runner never reads or writes with a schema whose data contract has rules: dead letters.

A source value or key written under such a schema, and an output whose sink subject's latest schema has
gained rules, are dead-lettered with ``schema_rules_unsupported`` (``key_`` for keys), the original bytes
untouched. The preflight refusal of such a sink is in tests/integration/test_worker_rules.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import fastavro
import pytest
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, transform
from prometheus_client import CollectorRegistry

from registry_codecs import RegisteredSchema, SchemaNotFound, SchemaRule, SubjectNotFound, frame
from workers.pipeline import Pipeline
from workers.processing import DEAD, OUT, Backoff, PipelineRunner
from workers.web import Readiness, WorkerMetrics

ENCRYPT = SchemaRule("domainRules", "encrypt_name", "TRANSFORM", "ENCRYPT", "WRITEREAD", tags=("PII",))
KEY_SCHEMA = '{"type": "record", "name": "OrderKey", "fields": [{"name": "user", "type": "string"}]}'
PLAIN, CONTRACT, SINK, SINK_CONTRACT, KEY_CONTRACT, SINK_KEY = 1, 2, 3, 4, 5, 6


class Lookup:
    """Schemas by id and the latest of each subject; ids 2, 4 and 5 carry an ENCRYPT rule."""

    def __init__(self) -> None:
        plain = RegisteredSchema(PLAIN, INPUT_SCHEMA)
        self.by_id = {
            PLAIN: plain,
            CONTRACT: dataclasses.replace(plain, schema_id=CONTRACT, rules=(ENCRYPT,)),
            SINK: RegisteredSchema(SINK, OUTPUT_SCHEMA),
            SINK_CONTRACT: RegisteredSchema(SINK_CONTRACT, OUTPUT_SCHEMA, rules=(ENCRYPT,)),
            KEY_CONTRACT: RegisteredSchema(KEY_CONTRACT, KEY_SCHEMA, rules=(ENCRYPT,)),
            SINK_KEY: RegisteredSchema(SINK_KEY, KEY_SCHEMA),
        }
        self.latest = {"orders-out-value": SINK, "orders-out-key": SINK_KEY}

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        if schema_id not in self.by_id:
            raise SchemaNotFound(f"schema {schema_id} not found", status_code=404, error_code=40403)
        return self.by_id[schema_id]

    def get_latest(self, subject: str) -> RegisteredSchema:
        if subject not in self.latest:
            raise SubjectNotFound(f"subject {subject} not found", status_code=404, error_code=40401)
        return self.by_id[self.latest[subject]]

    def register(self, subject: str, schema_str: str, schema_type: str = "AVRO", references: Any = ()) -> int:
        raise AssertionError("nothing registers here")


@dataclasses.dataclass
class Message:
    value: bytes | None
    key: bytes | None = None
    offset: int = 0
    topic: str = "orders"
    partition: int = 0
    timestamp: float = 1_700_000_000.5
    headers: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)


def _body(schema: str, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(json.loads(schema)), record)
    return out.getvalue()


def _order(schema_id: int, i: int) -> bytes:
    return frame(schema_id, _body(INPUT_SCHEMA, {"id": i, "name": f"Jane {i}", "amount": 1.5, "marker": ""}))


def _runner(lookup: Lookup, key_format: str = "auto") -> PipelineRunner:
    pipeline = Pipeline(
        "orders", "orders", "orders-out", transform, reader_schema=INPUT_SCHEMA, key_format=key_format
    )
    return PipelineRunner(
        pipeline,
        lookup=lookup,
        dlq_topic="orders.dlq",
        metrics=WorkerMetrics.create(CollectorRegistry()),
        readiness=Readiness(registry_max_age=10),
        backoff=Backoff(0.001, 0.002),
    )


def _headers(outcome: Any) -> dict[str, bytes]:
    [send] = outcome.sends
    assert send.topic == "orders.dlq"
    return dict(send.headers or [])


def test_a_value_written_under_a_schema_with_rules_is_dead_lettered_between_good_ones() -> None:
    runner = _runner(Lookup())
    before, leaked, after = _order(PLAIN, 1), _order(CONTRACT, 2), _order(PLAIN, 3)
    assert runner.process(Message(before)).kind == OUT
    outcome = runner.process(Message(leaked, key=b"k"))
    assert (outcome.kind, outcome.reason) == (DEAD, "schema_rules_unsupported")
    assert (outcome.sends[0].key, outcome.sends[0].value) == (b"k", leaked)
    headers = _headers(outcome)
    assert headers["dlq.error.reason"] == b"schema_rules_unsupported"
    assert headers["dlq.error.field"] == b"value"
    assert headers["dlq.schema.id"] == str(CONTRACT).encode()
    assert b"domainRules TRANSFORM ENCRYPT WRITEREAD (encrypt_name)" in headers["dlq.error.message"]
    assert runner.process(Message(after)).kind == OUT


def test_an_output_for_a_sink_whose_latest_schema_has_rules_is_dead_lettered_not_written() -> None:
    lookup = Lookup()
    lookup.latest["orders-out-value"] = SINK_CONTRACT  # e.g. a version registered after the start
    outcome = _runner(lookup).process(Message(_order(PLAIN, 1)))
    assert (outcome.kind, outcome.reason) == (DEAD, "schema_rules_unsupported")
    assert b"schema id 4 carries data-contract rules" in _headers(outcome)["dlq.error.message"]


@pytest.mark.parametrize(("key_format", "dead"), [("avro", True), ("auto", False)])
def test_a_key_written_under_a_schema_with_rules_is_never_decoded(key_format: str, dead: bool) -> None:
    key = frame(KEY_CONTRACT, _body(KEY_SCHEMA, {"user": "jane"}))
    outcome = _runner(Lookup(), key_format).process(Message(_order(PLAIN, 1), key=key))
    if dead:
        assert (outcome.kind, outcome.reason) == (DEAD, "key_schema_rules_unsupported")
        assert _headers(outcome)["dlq.error.field"] == b"key"
    else:  # "auto" carries a frame-like key it cannot decode as it is: the bytes untouched
        assert outcome.kind == OUT
        assert outcome.sends[0].key == key

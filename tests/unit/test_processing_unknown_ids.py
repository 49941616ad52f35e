"""While the registry says "not found yet" for a writer id (a registry warming up, within the client's
grace), the batch waits instead of dead-lettering; the other ids of the batch are asked for at once, so
that several unknown ids cost the batch one wait, not one each; once the answer is final, each record
with an unknown id is a dead letter and the others go out."""

from __future__ import annotations

import pytest
from pipelines_for_tests import OUTPUT_SCHEMA, transform
from prometheus_client import CollectorRegistry
from test_processing import INPUT_SCHEMA, MemoryRegistry, Message, avro, order

from registry_codecs import RegisteredSchema, SchemaNotFoundYet, frame
from workers.pipeline import Pipeline
from workers.processing import DEAD, OUT, Backoff, PipelineRunner
from workers.web import Readiness, WorkerMetrics


class WarmingRegistry(MemoryRegistry):
    """Says "not found yet" for the ids in `warming`, and records every id asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.warming: set[int] = set()
        self.asked: list[int] = []

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        self.asked.append(schema_id)
        if schema_id in self.warming:
            raise SchemaNotFoundYet(f"schema {schema_id} not found (yet)", status_code=404, error_code=40403)
        return super().get_schema(schema_id)


def unknown(schema_id: int) -> bytes:
    return frame(schema_id, avro(INPUT_SCHEMA, {"id": 1, "name": "n", "amount": 1.0, "marker": ""}))


@pytest.fixture
def registry() -> WarmingRegistry:
    registry = WarmingRegistry()
    registry.register("orders-value", INPUT_SCHEMA)
    registry.register("orders-out-value", OUTPUT_SCHEMA)
    return registry


def make_runner(registry: WarmingRegistry) -> PipelineRunner:
    pipeline = Pipeline("orders", "orders", "orders-out", transform, reader_schema=INPUT_SCHEMA)
    return PipelineRunner(
        pipeline,
        lookup=registry,
        dlq_topic="orders.dlq",
        metrics=WorkerMetrics.create(CollectorRegistry()),
        readiness=Readiness(registry_max_age=10),
        backoff=Backoff(0.001, 0.002),
    )


def test_a_batch_waits_on_ids_not_found_yet_asks_for_all_of_them_then_dead_letters_the_unknown(
    registry: WarmingRegistry,
) -> None:
    runner = make_runner(registry)
    batch = [Message(order(1)), Message(unknown(50)), Message(order(2)), Message(unknown(60), offset=3)]
    registry.warming = {50, 60}
    outcomes: list = []
    error = runner.compute(batch, outcomes)
    assert isinstance(error, SchemaNotFoundYet)  # transient: the batch waits, nothing is dead-lettered
    assert [o.kind for o in outcomes] == [OUT]  # stopped at the first id not found yet, kept what was done
    assert 60 in registry.asked  # the later unknown id of the batch was asked for at the same time
    registry.warming = set()  # the grace is over: both ids are final "not found"
    assert runner.compute(batch, outcomes) is None
    assert [o.kind for o in outcomes] == [OUT, DEAD, OUT, DEAD]
    assert {o.reason for o in outcomes if o.kind == DEAD} == {"unknown_schema"}


def test_the_unknown_id_right_after_the_one_waited_on_is_asked_for_too(registry: WarmingRegistry) -> None:
    runner = make_runner(registry)
    for before in (0, 2):  # the record waited on first in the batch, or third
        batch = [Message(order(i), offset=i) for i in range(before)]
        batch += [Message(unknown(50), offset=before), Message(unknown(60), offset=before + 1)]
        registry.warming, registry.asked = {50, 60}, []
        assert isinstance(runner.compute(batch, []), SchemaNotFoundYet)
        assert 60 in registry.asked  # one wait for both, not one each


def test_a_message_that_is_not_a_frame_does_not_stop_the_others_being_asked_for(
    registry: WarmingRegistry,
) -> None:
    runner = make_runner(registry)
    later = list(range(60, 70))
    batch = [Message(unknown(50)), Message(b"not a frame", offset=1)]
    batch += [Message(unknown(i), offset=i) for i in later]
    registry.warming = {50, *later}
    assert isinstance(runner.compute(batch, []), SchemaNotFoundYet)
    assert set(later) <= set(registry.asked)

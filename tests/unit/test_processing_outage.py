"""An outage seen from the runner: one log line when a pipeline gets stuck and one when it recovers (with
the retries counted), a transient failure mid-batch resumes at the failed input without redoing the ones
before, headers carried as they are, the transform's latency observed per input, an unbound runner refused."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA
from prometheus_client import CollectorRegistry
from test_processing import MemoryRegistry, Message, Producer, order

from registry_codecs import RegisteredSchema, RegistryUnavailable
from workers import processing
from workers.pipeline import Pipeline
from workers.processing import Backoff, PipelineRunner
from workers.web import Readiness, WorkerMetrics


class FlakyIds(MemoryRegistry):
    """Unreachable for the ids in `down_ids` (and only those); counts lookups per id."""

    def __init__(self) -> None:
        super().__init__()
        self.down_ids: set[int] = set()
        self.asked: dict[int, int] = {}

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        self.asked[schema_id] = self.asked.get(schema_id, 0) + 1
        if schema_id in self.down_ids:
            raise RegistryUnavailable("connection refused")
        return super().get_schema(schema_id)


class Setup:
    def __init__(self) -> None:
        self.registry = FlakyIds()
        self.registry.register("orders-value", INPUT_SCHEMA)
        self.registry.register("orders-out-value", OUTPUT_SCHEMA)
        self.collector = CollectorRegistry()
        self.readiness = Readiness(registry_max_age=10)
        self.seen: list[int] = []
        self.sleeps = 0

        def transform(record: dict[str, object]) -> dict[str, object]:
            self.seen.append(int(record["id"]))  # type: ignore[call-overload]
            return {"id": record["id"], "name": "n", "amount_cents": 1}

        async def sleep(delay: float) -> None:
            self.sleeps += 1
            if self.sleeps == 3:
                self.registry.down_ids.clear()

        pipeline = Pipeline("orders", "orders", "orders-out", transform, reader_schema=INPUT_SCHEMA)
        self.runner = PipelineRunner(
            pipeline,
            lookup=self.registry,
            dlq_topic="orders.dlq",
            metrics=WorkerMetrics.create(self.collector),
            readiness=self.readiness,
            backoff=Backoff(0.001, 0.002),
            sleep=sleep,
        )
        self.producer, self.acked = Producer(), []
        self.runner.bind(self.producer.send, self.acked.append)

    def sample(self, name: str, **labels: str) -> float:
        return self.collector.get_sample_value(name, {"pipeline": "orders", **labels}) or 0.0


def test_one_log_line_marks_the_start_and_one_the_end_of_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    setup = Setup()
    setup.registry.down_ids.add(1)
    with caplog.at_level(logging.WARNING, logger="avroflow.processing"):
        asyncio.run(setup.runner.handle([Message(order(1))]))
        asyncio.run(setup.runner.handle([Message(order(2))]))  # no outage: no line
    lines = [(r.getMessage(), r.__dict__) for r in caplog.records]
    assert [m for m, _ in lines] == [
        "pipeline stuck on a transient failure; retrying with backoff until it clears",
        "pipeline recovered",
    ]
    stuck, recovered = (extra for _, extra in lines)
    assert (stuck["pipeline"], stuck["reason"]) == ("orders", "registry_unavailable")
    assert stuck["error"] == "RegistryUnavailable: connection refused"
    assert (recovered["pipeline"], recovered["retries"]) == ("orders", 3)
    assert recovered["stuck_seconds"] >= 0
    assert setup.sample("avroflow_transient_retries_total", reason="registry_unavailable") == 3

    setup.registry.down_ids.add(1)
    setup.runner.decoder = type(setup.runner.decoder)(setup.registry, reader_schema=INPUT_SCHEMA)
    setup.sleeps = 0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="avroflow.processing"):
        asyncio.run(setup.runner.handle([Message(order(3))]))
    assert [r.__dict__.get("retries") for r in caplog.records] == [None, 3]  # counted per outage


def test_a_transient_failure_mid_batch_resumes_at_the_failed_input() -> None:
    setup = Setup()
    setup.registry.register("orders-value", INPUT_SCHEMA.replace('"marker"', '"marker2"'))  # id 3
    batch = [Message(order(1), offset=0), Message(b"\x00\x00\x00\x00\x03" + b"\x02\x00", offset=1)]
    batch.append(Message(order(4), offset=2))
    setup.registry.down_ids.add(3)
    asyncio.run(setup.runner.handle(batch))
    assert setup.seen[0] == 1 and setup.seen.count(1) == 1  # the first input was not transformed again
    assert setup.registry.asked[1] == 1  # nor decoded again
    assert setup.registry.asked[3] == 4  # 3 failures, then it decoded
    assert [m.offset for m in setup.acked] == [0, 1, 2]
    assert setup.sample("avroflow_records_in_total") == 3


def test_the_transform_latency_is_observed_once_per_transformed_input() -> None:
    setup = Setup()
    asyncio.run(setup.runner.handle([Message(order(i)) for i in range(4)] + [Message(b"junk")]))
    assert setup.sample("avroflow_transform_duration_seconds_count") == 4
    assert setup.sample("avroflow_transform_duration_seconds_sum") >= 0


def test_headers_are_carried_whatever_their_shape() -> None:
    setup = Setup()
    as_dict = Message(order(1), headers={"a": b"1", "none": None})  # type: ignore[arg-type]
    assert setup.runner.process(as_dict).sends[0].headers == [("a", b"1"), ("none", b"")]
    as_list = Message(order(1), headers=[("b", b"2"), ("b", b"3")])
    assert setup.runner.process(as_list).sends[0].headers == [("b", b"2"), ("b", b"3")]
    assert setup.runner.process(Message(order(1), headers=[])).sends[0].headers is None
    dead = setup.runner.process(Message(b"junk", headers={"n": None}))  # type: ignore[arg-type]
    assert dead.sends[0].headers is not None and dead.sends[0].headers[0] == ("n", b"")


def test_a_runner_that_was_never_bound_refuses_to_handle_a_batch() -> None:
    setup = Setup()
    unbound = PipelineRunner(
        setup.runner.pipeline,
        lookup=setup.registry,
        dlq_topic="orders.dlq",
        metrics=WorkerMetrics.create(CollectorRegistry()),
        readiness=setup.readiness,
        backoff=Backoff(0.001, 0.002),
    )
    with pytest.raises(RuntimeError, match=r"bind\(\) was not called"):
        asyncio.run(unbound.handle([Message(order(1))]))


def test_the_recovery_line_says_how_long_the_pipeline_was_stuck(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Clock:
        now = 0.0  # a monotonic clock may start near 0 (it counts from boot)

        def monotonic(self) -> float:
            self.now += 1.2344  # each reading is 1.2344 s after the last
            return self.now

        ticks = 10.0

        def perf_counter(self) -> float:
            self.ticks += 0.25  # a transform takes 0.25 s: read once before it, once after
            return self.ticks

    monkeypatch.setattr(processing, "time", Clock())
    setup = Setup()
    setup.registry.down_ids.add(1)
    with caplog.at_level(logging.WARNING, logger="avroflow.processing"):
        asyncio.run(setup.runner.handle([Message(order(1))]))
    stuck_seconds = [r.__dict__["stuck_seconds"] for r in caplog.records if "stuck_seconds" in r.__dict__]
    assert stuck_seconds == [1.234]  # read once when it got stuck, once when it recovered; in ms
    assert setup.sample("avroflow_transform_duration_seconds_sum") == 0.25
    assert setup.sample("avroflow_transform_duration_seconds_count") == 1

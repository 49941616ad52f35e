"""What a batch becomes when the broker refuses its sends: a dead letter the broker refuses (too large, or
its topic missing) keeps the input unacked and the pipeline stuck until the broker takes it, never a silent
loss; backoff delays seen through an injected sleep; the output counters of a mixed batch.

The producer is a recording function (the real broker path is covered by tests/integration/test_worker_*).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, UnknownTopicOrPartitionError
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, transform
from prometheus_client import CollectorRegistry
from test_processing import MemoryRegistry, Message, Producer, counter, order

from workers.pipeline import Pipeline
from workers.processing import Backoff, PipelineRunner, Send
from workers.web import Readiness, WorkerMetrics


class Sleeps:
    """An injected `sleep`: records each delay; runs `on_sleep(n)` (n: sleeps so far) instead of waiting."""

    def __init__(self, on_sleep: Callable[[int], None] = lambda n: None) -> None:
        self.delays: list[float] = []
        self.on_sleep = on_sleep

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.on_sleep(len(self.delays))
        await asyncio.sleep(0)


class Broker(Producer):
    """A producer whose broker refuses records to `refuse_topic` with `error()` until `accept()`."""

    def __init__(self, refuse_topic: str, error: Callable[[], BaseException]) -> None:
        super().__init__()
        self.refuse_topic: str | None = refuse_topic
        self.error = error
        self.refusals = 0

    def accept(self) -> None:
        self.refuse_topic = None

    async def send(self, record: Send) -> Awaitable[None]:
        if record.topic == self.refuse_topic:
            self.refusals += 1
            try:
                raise self.error()
            except BaseException as exc:
                raise RuntimeError("Error while sending") from exc  # as Faust's wrapper chains it
        return await super().send(record)


def too_large() -> BaseException:
    return MessageSizeTooLargeError("the message is 1048700 bytes when serialized")


def topic_missing() -> BaseException:
    return UnknownTopicOrPartitionError("orders.dlq")


def metadata_timeout() -> BaseException:
    return KafkaTimeoutError("Failed to update metadata after 60.0 secs.")


def make_runner(
    collector: CollectorRegistry, readiness: Readiness, sleep: Callable[[float], Awaitable[None]], **kw: Any
) -> PipelineRunner:
    registry = MemoryRegistry()
    registry.register("orders-value", INPUT_SCHEMA)
    registry.register("orders-out-value", OUTPUT_SCHEMA)
    pipeline = Pipeline("orders", "orders", "orders-out", transform, reader_schema=INPUT_SCHEMA)
    return PipelineRunner(
        pipeline,
        lookup=kw.pop("lookup", registry),
        dlq_topic="orders.dlq",
        metrics=WorkerMetrics.create(collector),
        readiness=readiness,
        backoff=kw.pop("backoff", Backoff(0.1, 0.4, jitter=lambda: 1.0)),
        sleep=sleep,
    )


@pytest.mark.parametrize("refusal", [too_large, topic_missing, metadata_timeout])
def test_a_dead_letter_the_broker_refuses_keeps_its_input_unacked_and_the_pipeline_stuck(
    refusal: Callable[[], BaseException],
) -> None:
    collector, readiness = CollectorRegistry(), Readiness(registry_max_age=10)
    broker, acked = Broker("orders.dlq", refusal), []
    seen_stuck: list[bool] = []

    def on_sleep(n: int) -> None:
        seen_stuck.append("orders" in readiness.stuck)
        assert acked == [], "an input was acked while its dead letter was not durable"
        if n == 5:
            broker.accept()  # the operator raised max.message.bytes, or created the topic

    runner = make_runner(collector, readiness, Sleeps(on_sleep))
    runner.bind(broker.send, acked.append)
    poison, good = Message(b"not a frame", key=b"k", offset=0), Message(order(1), offset=1)
    asyncio.run(runner.handle([poison, good]))

    assert broker.refusals == 5 and seen_stuck == [True] * 5
    assert [m.offset for m in acked] == [0, 1]
    dead = [s for s in broker.delivered if s.topic == "orders.dlq"]
    assert [(s.key, s.value) for s in dead] == [(b"k", b"not a frame")]
    assert counter(collector, "avroflow_records_dead_lettered_total", reason="framing") == 1
    assert counter(collector, "avroflow_records_out_total") == 1
    assert not runner.stuck and "orders" not in readiness.stuck


def test_a_dead_letter_too_large_is_reported_as_such_while_stuck() -> None:
    collector, readiness = CollectorRegistry(), Readiness(registry_max_age=10)
    broker, acked = Broker("orders.dlq", too_large), []
    reasons: list[str] = []

    def on_sleep(n: int) -> None:
        reasons.append(readiness.stuck["orders"])
        if n == 2:
            broker.accept()

    runner = make_runner(collector, readiness, Sleeps(on_sleep))
    runner.bind(broker.send, acked.append)
    asyncio.run(runner.handle([Message(b"junk")]))
    assert reasons == ["dead_letter_too_large"] * 2
    assert counter(collector, "avroflow_transient_retries_total", reason="dead_letter_too_large") == 2


def test_an_abandoned_batch_whose_dead_letter_is_refused_is_never_acked() -> None:
    collector, readiness = CollectorRegistry(), Readiness(registry_max_age=10)
    broker, acked = Broker("orders.dlq", too_large), []
    sleeps = Sleeps()
    runner = make_runner(collector, readiness, sleeps)
    runner.bind(broker.send, acked.append)
    poison = Message(b"junk", offset=7)

    async def shutdown_mid_retry() -> None:
        third_retry = asyncio.Event()
        sleeps.on_sleep = lambda n: third_retry.set() if n == 3 else None
        task = asyncio.create_task(runner.handle([poison]))
        await third_retry.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(shutdown_mid_retry())
    assert acked == [] and broker.delivered == []
    assert counter(collector, "avroflow_records_dead_lettered_total", reason="framing") == 0


def test_an_input_whose_second_output_is_refused_is_dead_lettered_once() -> None:
    class RefuseSecondOutput(Producer):
        sink_sends = 0

        async def send(self, record: Send) -> Awaitable[None]:
            if record.topic == "orders-out":
                self.sink_sends += 1
                if self.sink_sends == 2:
                    raise RuntimeError("Error while sending") from too_large()
            return await super().send(record)

    collector, readiness = CollectorRegistry(), Readiness(registry_max_age=10)
    producer, acked = RefuseSecondOutput(), []
    runner = make_runner(collector, readiness, Sleeps())
    runner.bind(producer.send, acked.append)
    fanout = Message(order(1, "fanout"), offset=0)
    asyncio.run(runner.handle([fanout]))
    dead = [s for s in producer.delivered if s.topic == "orders.dlq"]
    assert len(dead) == 1 and dict(dead[0].headers or [])["dlq.error.reason"] == b"output_too_large"
    assert counter(collector, "avroflow_records_dead_lettered_total", reason="output_too_large") == 1
    assert acked == [fanout]


def test_retry_delays_grow_from_the_base_to_the_cap_then_reset_after_recovery() -> None:
    collector, readiness = CollectorRegistry(), Readiness(registry_max_age=10)
    registry = MemoryRegistry()
    registry.register("orders-value", INPUT_SCHEMA)
    registry.register("orders-out-value", OUTPUT_SCHEMA)
    registry.down = True

    def on_sleep(n: int) -> None:
        if n == 6:
            registry.down = False

    sleeps = Sleeps(on_sleep)
    runner = make_runner(collector, readiness, sleeps, lookup=registry)
    producer, acked = Producer(), []
    runner.bind(producer.send, acked.append)
    asyncio.run(runner.handle([Message(order(1))]))
    assert sleeps.delays == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4, 0.4])
    assert counter(collector, "avroflow_transient_retries_total", reason="registry_unavailable") == 6

    producer.failures = 2  # a later outage, this time of the broker: the backoff starts again at the base
    asyncio.run(runner.handle([Message(order(2))]))
    assert sleeps.delays[6:] == pytest.approx([0.1, 0.2])
    assert counter(collector, "avroflow_transient_retries_total", reason="broker_send_failed") == 2
    assert len(acked) == 2


@pytest.mark.parametrize(("jitter", "factor"), [(0.0, 0.5), (0.5, 0.75), (0.999, 0.9995)])
def test_backoff_jitter_spreads_each_delay_over_its_upper_half(jitter: float, factor: float) -> None:
    backoff = Backoff(0.25, 3.0, jitter=lambda: jitter)
    expected = [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert [backoff.delay(n) for n in range(6)] == pytest.approx([d * factor for d in expected])
    assert backoff.delay(10_000) == pytest.approx(3.0 * factor)  # no overflow for a long outage


def test_the_output_counters_of_a_mixed_batch() -> None:
    collector, readiness = CollectorRegistry(), Readiness(registry_max_age=10)
    producer, acked = Producer(), []
    runner = make_runner(collector, readiness, Sleeps())
    runner.bind(producer.send, acked.append)
    batch = [
        Message(order(0), offset=0),
        Message(order(1, "fanout"), offset=1),
        Message(order(2, "drop"), offset=2),
        Message(order(3, "raise"), offset=3),
        Message(order(4, "misfit"), offset=4),
        Message(b"\x00\x00\x00\x00\x63body", offset=5),  # unknown schema id 99
        Message(b"x", offset=6),
    ]
    asyncio.run(runner.handle(batch))
    assert counter(collector, "avroflow_records_in_total") == 7
    assert counter(collector, "avroflow_records_out_total") == 2
    assert counter(collector, "avroflow_output_records_total") == 3
    assert counter(collector, "avroflow_records_dropped_total") == 1
    for reason in ("transform_failed", "record_does_not_fit_schema", "unknown_schema", "framing"):
        assert counter(collector, "avroflow_records_dead_lettered_total", reason=reason) == 1, reason
    assert counter(collector, "avroflow_pipeline_stuck") == 0
    assert len(acked) == 7
    assert sorted(s.topic for s in producer.delivered) == ["orders-out"] * 3 + ["orders.dlq"] * 4


def test_backoff_reaches_its_cap_however_small_the_base() -> None:
    backoff = Backoff(1e-12, 1.0, jitter=lambda: 1.0)  # 1e-12 * 2**40 is the first delay over 1 s
    assert backoff.delay(39) < 1.0
    assert backoff.delay(40) == backoff.delay(100) == backoff.delay(10**9) == 1.0


def test_a_sink_refusal_is_told_from_a_dead_letter_refusal_by_topic_not_by_order() -> None:
    # "zeta" sorts after "orders.dlq": only equality with the dead-letter topic may mean "wait"
    collector, readiness = CollectorRegistry(), Readiness(registry_max_age=10)
    broker, acked = Broker("zeta", too_large), []
    registry = MemoryRegistry()
    registry.register("orders-value", INPUT_SCHEMA)
    registry.register("zeta-value", OUTPUT_SCHEMA)
    runner = PipelineRunner(
        Pipeline("orders", "orders", "zeta", transform, reader_schema=INPUT_SCHEMA),
        lookup=registry,
        dlq_topic="orders.dlq",
        metrics=WorkerMetrics.create(collector),
        readiness=readiness,
        backoff=Backoff(0.1, 0.4),
        sleep=Sleeps(lambda n: pytest.fail("a refused sink record is dead-lettered, not retried")),
    )
    runner.bind(broker.send, acked.append)
    asyncio.run(runner.handle([Message(order(1))]))
    assert [s.topic for s in broker.delivered] == ["orders.dlq"] and len(acked) == 1


def test_an_input_whose_outputs_are_all_refused_is_dead_lettered_once() -> None:
    collector, readiness = CollectorRegistry(), Readiness(registry_max_age=10)
    broker, acked = Broker("orders-out", too_large), []
    runner = make_runner(collector, readiness, Sleeps())
    runner.bind(broker.send, acked.append)
    asyncio.run(runner.handle([Message(order(1, "fanout"))]))  # two outputs, both too large
    assert broker.refusals == 2
    assert [s.topic for s in broker.delivered] == ["orders.dlq"]
    assert counter(collector, "avroflow_records_dead_lettered_total", reason="output_too_large") == 1

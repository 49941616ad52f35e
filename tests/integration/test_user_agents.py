"""Agents on a Faust app of the user's own (`workers.agents.Avroflow`), in both documented forms: a plain
function of one record and an async body over the stream. Each gets what a worker pipeline gets: a poison
message and a raising body are dead-lettered with their reason, a dropped record is counted, a registry
outage holds records back without acking them (a worker stopped meanwhile leaves them to the next one),
and every input ends as an output, a counted drop or a dead letter."""

from __future__ import annotations

import signal
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from faults_harness import tally
from pipelines_for_tests import INPUT_SCHEMA, INPUT_SCHEMA_V2, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    consume,
    free_port,
    pipeline_topics,
    restartable_registry,
    wait_for,
    worker_env,
)

from workers.app import EXIT_PREFLIGHT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = ["--app", "tests.agents_for_tests:app"]


def balanced(worker: WorkerProcess) -> tuple[float, float]:
    """(inputs, outputs + drops + dead letters) by the worker's own counters."""
    ended = (
        worker.counter("avroflow_records_out_total", pipeline="orders")
        + worker.counter("avroflow_records_dropped_total", pipeline="orders")
        + worker.counter("avroflow_records_dead_lettered_total", pipeline="orders")
    )
    return worker.counter("avroflow_records_in_total", pipeline="orders"), ended


@pytest.mark.parametrize("form", ["function", "stream"])
def test_a_user_agent_dead_letters_poison_and_raising_records_and_holds_back_through_an_outage(
    form: str, bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    v1 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA))
    v2 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA_V2))
    unseen = [v2.encode(order(i, coupon="c")) for i in range(20, 30)]  # a writer id the worker never saw
    env = worker_env(bootstrap_servers, registry.url, unique_name, source, sink, TEST_AGENT_FORM=form)
    first = WorkerProcess(env, tmp_path / "first.log", APP).start()
    stack.callback(first.stop)
    first.wait_ready(90)

    markers = {5: "raise", 7: "drop", 9: "fanout"}
    for i in range(20):
        v1.send(f"k{i}".encode(), order(i, marker=markers.get(i, "")))
    v1.send_raw(b"poison", b"not a confluent frame")
    v1.flush()
    wait_for(lambda: balanced(first) == (21, 21), 60, f"21 inputs ended\n{first.log()[-3000:]}")
    # 18 inputs with outputs (the fan-out's one input among them), the drop, the poison and the raising one
    assert first.counter("avroflow_records_out_total", pipeline="orders") == 18
    assert first.counter("avroflow_records_dropped_total", pipeline="orders") == 1
    dead = consume(bootstrap_servers, f"{source}.dlq", expected=2, timeout=30)
    reasons = sorted(d.headers["dlq.error.reason"].decode() for d in dead)
    assert reasons == ["framing", "transform_failed"], reasons
    assert sorted(d.key for d in dead) == [b"k5", b"poison"]

    registry.stop()
    for i, frame in enumerate(unseen, start=20):
        v2.send_raw(f"k{i}".encode(), frame)
    v2.flush()
    wait_for(lambda: first.counter("avroflow_pipeline_stuck", pipeline="orders") == 1, 60, "the agent stuck")
    assert first.readyz()[0] == 503
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0, first.log()[-3000:]

    # Nothing of the held-back records was acked: the next worker reads them again and writes them out.
    registry.start()
    second = WorkerProcess({**env, "AVROFLOW_WEB_PORT": str(free_port())}, tmp_path / "second.log", APP)
    second.start()
    stack.callback(second.stop)
    second.wait_ready(90)
    wanted = (set(range(30)) - {5, 7}) | {-9}
    result = tally(f"user agent ({form})", bootstrap_servers, registry.url, sink, "", wanted, report=False)
    assert result.lost == 0, result
    assert second.counter("avroflow_records_out_total", pipeline="orders") == 10
    assert second.counter("avroflow_records_dead_lettered_total", pipeline="orders") == 0


def test_an_app_started_by_fausts_own_command_resolves_its_sinks_at_the_agents_start(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    # ``faust -A app worker``: no preflight before the consumer joins; the agent resolves its sink subject
    # before it reads anything, and the guarantees are the same.
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    env = worker_env(bootstrap_servers, registry.url, unique_name, source, sink, TEST_AGENT_FORM="stream")
    command = [sys.executable, "-m", "faust", "-A", "tests.agents_for_tests", "worker", "-l", "info"]
    worker = WorkerProcess(env, tmp_path / "faust.log", command=command).start()
    stack.callback(worker.stop)
    worker.wait_ready(90)
    with AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA) as producer:
        for i in range(10):
            producer.send(f"k{i}".encode(), order(i, marker="raise" if i == 3 else ""))
        producer.send_raw(b"poison", b"\x00\x00")
    wait_for(lambda: balanced(worker) == (11, 11), 60, f"11 inputs ended\n{worker.log()[-3000:]}")
    assert worker.counter("avroflow_records_dead_lettered_total", pipeline="orders") == 2
    assert "sink schema resolved" in worker.log()
    wanted = set(range(10)) - {3}
    result = tally("faust -A", bootstrap_servers, registry.url, sink, "", wanted, report=False)
    assert result.lost == 0, result


def test_typed_records_in_and_out_of_a_user_agent(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    env = worker_env(bootstrap_servers, registry.url, unique_name, source, sink, TEST_AGENT_FORM="typed")
    worker = WorkerProcess(env, tmp_path / "typed.log", APP).start()
    stack.callback(worker.stop)
    worker.wait_ready(90)
    with AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA) as producer:
        for i in range(5):
            producer.send(f"k{i}".encode(), order(i, marker="raise" if i == 2 else ""))
    wait_for(lambda: balanced(worker) == (5, 5), 60, f"5 inputs ended\n{worker.log()[-3000:]}")
    assert worker.counter("avroflow_records_dead_lettered_total", pipeline="orders") == 1
    result = tally("typed agent", bootstrap_servers, registry.url, sink, "", {0, 1, 3, 4}, report=False)
    assert (result.lost, result.out) == (0, 4), result


def test_an_output_type_the_sink_schema_cannot_hold_refuses_the_start_naming_the_field(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    env = worker_env(
        bootstrap_servers, registry.url, unique_name, source, sink, TEST_AGENT_FORM="typed-wrong"
    )
    worker = WorkerProcess(env, tmp_path / "wrong.log", APP).start()
    stack.callback(worker.stop)
    assert worker.wait(60) == EXIT_PREFLIGHT, worker.log()[-3000:]
    assert "OrderOutWrong.currency is not a field of OrderOut" in worker.log()


def test_under_fausts_own_command_a_missing_sink_subject_stops_the_app_naming_it(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)  # no <sink>-value registered
    env = worker_env(bootstrap_servers, registry_url, unique_name, source, sink)
    command = [sys.executable, "-m", "faust", "-A", "tests.agents_for_tests", "worker", "-l", "info"]
    worker = WorkerProcess(env, tmp_path / "faust.log", command=command).start()
    stack.callback(worker.stop)
    code = worker.wait(90)
    assert code != 0, worker.log()[-3000:]
    assert f"sink subject {sink}-value does not exist" in worker.log()

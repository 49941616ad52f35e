"""The consumer group changes under a running stream: workers join and leave (one by SIGKILL), and a worker
cut off from the broker for longer than the session timeout comes back. The group rebalances each time; no
partition stalls (every input ends as an output within the tally's bound) and none is lost."""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from faults_harness import ProxiedBroker, SteadyWriter, outputs_grow, tally
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    free_port,
    pipeline_topics,
    register,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 6
#: Longer than the workers' session timeout (1.5 s in worker_env) several times over.
CUT_SECONDS = 8.0


class Group:
    """Workers of one consumer group (the test's app id) over the test's source and sink."""

    def __init__(self, registry_url: str, name: str, folder: Path, stack: ExitStack) -> None:
        self.registry_url, self.name, self.folder, self.stack = registry_url, name, folder, stack
        self.started = 0

    def join(self, servers: str) -> WorkerProcess:
        self.started += 1
        source, sink = f"{self.name}-in", f"{self.name}-out"
        env = worker_env(
            servers, self.registry_url, self.name, source, sink, AVROFLOW_WEB_PORT=str(free_port())
        )
        worker = WorkerProcess(env, self.folder / f"worker-{self.started}.log").start()
        self.stack.callback(worker.stop)
        return worker


def test_workers_join_and_leave_mid_stream_no_partition_stalls(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name, partitions=PARTITIONS)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    group = Group(registry_url, unique_name, tmp_path, stack)
    first = group.join(bootstrap_servers)
    first.wait_ready(90)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    writer = SteadyWriter(producer).start()
    stack.callback(writer.stop)
    outputs_grow(first, 100, 60, "from the first worker alone")

    second = group.join(bootstrap_servers)
    outputs_grow(second, 50, 90, "from the second worker, once it has partitions")
    third = group.join(bootstrap_servers)
    outputs_grow(third, 50, 90, "from the third worker, once it has partitions")
    for worker in (first, second):  # three members share the six partitions, and each progresses
        outputs_grow(worker, 20, 60, "with three workers in the group")

    second.signal(signal.SIGTERM)  # a clean leave: commits what it acknowledged
    assert second.wait(30) == 0
    third.signal(signal.SIGKILL)  # a crash: the group notices after the session timeout
    assert third.wait(10) == -signal.SIGKILL
    outputs_grow(first, 200, 90, "from the first worker, alone again, with every partition")
    total = writer.stop()

    result = tally("group churn 1-3-1", bootstrap_servers, registry_url, sink, "", set(range(total)))
    assert (result.lost, result.out) == (0, total), result
    first.check_running()
    first.wait_ready(60)


def test_worker_cut_off_longer_than_the_session_rejoins_nothing_lost(
    broker_kind: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    if broker_kind != "kafka":
        pytest.skip("Kafka only: Tansu advertises one address, so one worker cannot be cut off alone")
    broker = ProxiedBroker(broker_kind, tmp_path / "broker")
    stack.callback(broker.stop)
    direct = broker.direct_servers
    assert direct is not None
    source, sink = pipeline_topics(direct, unique_name, partitions=PARTITIONS)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    group = Group(registry_url, unique_name, tmp_path, stack)
    cut_off, other = group.join(broker.bootstrap_servers), group.join(direct)  # through the proxy, and not
    producer = stack.enter_context(AvroProducer(direct, registry_url, source, INPUT_SCHEMA))
    writer = SteadyWriter(producer).start()
    stack.callback(writer.stop)
    for worker in (cut_off, other):
        outputs_grow(worker, 50, 90, "with two workers in the group")

    broker.proxy.cut()  # mid-stream: the worker's fetches, sends, commits and heartbeats all stop
    cut_at, cut_log = time.monotonic(), len(cut_off.log())
    writer.wait_written(300)
    written = writer.written
    # The group drops the silent member after its session timeout and gives the other all partitions:
    # everything written so far reaches the sink while the first worker is still cut off.
    during = tally("", direct, registry_url, sink, "", set(range(written)), timeout=120, report=False)
    assert during.lost == 0, f"inputs stalled on the cut-off worker's partitions: {during}"
    time.sleep(max(0.0, cut_at + CUT_SECONDS - time.monotonic()))
    cut_off.check_running()
    assert "level=error" in cut_off.log()[cut_log:], "the cut-off worker did not notice"
    broker.proxy.restore()

    outputs_grow(cut_off, 50, 90, "from the reconnected worker: it rejoined and got partitions back")
    outputs_grow(other, 20, 60, "from the other worker after the rebalance")
    total = writer.stop()

    result = tally("worker cut > session", direct, registry_url, sink, "", set(range(total)))
    assert (result.lost, result.out) == (0, total), result
    for worker in (cut_off, other):
        worker.check_running()
        worker.wait_ready(60)

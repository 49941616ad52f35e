"""Faults only a real broker brings: Kafka SIGKILLed mid-stream and restarted on its log dirs, and in a
three-node cluster (replication factor 3, ``min.insync.replicas=2``, the worker producing with acks=all) the
node leading a source and a sink partition SIGKILLed mid-stream. Each time the same worker process carries on
by itself: every input ends as an output, none is lost (duplicates are counted)."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin import NewTopic as AioNewTopic
from faults_harness import SMALL_HEAP, SteadyWriter, outputs_grow, tally
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA
from worker_harness import AvroProducer, WorkerProcess, pipeline_topics, register, wait_for, worker_env

from devstack.broker import BrokerError
from devstack.kafka import KafkaBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


#: The controller moves a dead node's leaderships once it fences the node: after 4 s without a heartbeat
#: instead of Kafka's 9 s, so the scenario spends its time on the worker's recovery, not on waiting.
FAST_FENCING = {"broker.session.timeout.ms": "4000", "broker.heartbeat.interval.ms": "1000"}


def kafka_only(broker_kind: str, why: str) -> None:
    if broker_kind != "kafka":
        pytest.skip(f"Kafka only: {why}")


def start_worker(servers: str, registry_url: str, name: str, log: Path, stack: ExitStack) -> WorkerProcess:
    source, sink = f"{name}-in", f"{name}-out"
    env = worker_env(servers, registry_url, name, source, sink, AVROFLOW_BATCH_SIZE="20")
    worker = WorkerProcess(env, log).start()
    stack.callback(worker.stop)
    worker.wait_ready(90)
    return worker


def test_kafka_sigkilled_and_restarted_the_worker_carries_on_by_itself(
    broker_kind: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    kafka_only(broker_kind, "Tansu keeps topics in memory, so a restarted Tansu comes back empty")
    kafka = KafkaBroker(data_dir=tmp_path / "kafka", heap=SMALL_HEAP)
    stack.callback(kafka.stop)
    kafka.start()
    servers = kafka.bootstrap_servers
    source, sink = pipeline_topics(servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    worker = start_worker(servers, registry_url, unique_name, tmp_path / "worker.log", stack)
    producer = stack.enter_context(AvroProducer(servers, registry_url, source, INPUT_SCHEMA))
    writer = SteadyWriter(producer).start()
    stack.callback(writer.stop)
    outputs_grow(worker, 200, 60, "before the kill")

    kafka.kill(0)  # mid-stream: fetches, sends and commits in flight; nothing flushed
    time.sleep(3)
    worker.check_running()
    kafka.start_node(0)  # the same ports and log dirs: topics, offsets and the group's commits survive
    outputs_grow(worker, 200, 120, "after the restart")
    total = writer.stop()

    result = tally("Kafka SIGKILL, restart", servers, registry_url, sink, "", set(range(total)))
    assert (result.lost, result.out) == (0, total), result
    worker.check_running()
    worker.wait_ready(60)


def create_led_by_one_node(cluster: KafkaBroker, topics: list[str], timeout: float = 30.0) -> None:
    """Create `topics` with two partitions of three replicas each, partition 0 of every topic led by the
    first node (its preferred leader: the first replica listed) and partition 1 by the second.

    With aiokafka's admin client: confluent-kafka's refuses a replica assignment ("mutually exclusive"
    with a partition count, even with -1 for it)."""

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
        await admin.start()
        try:
            assignment = {0: [1, 2, 3], 1: [2, 3, 1]}  # node ids, as the metadata reports them
            wanted = [AioNewTopic(t, -1, -1, replica_assignments=assignment) for t in topics]
            response = await admin.create_topics(wanted, timeout_ms=int(timeout * 1000))
        finally:
            await admin.close()
        errors = [error for error in response.topic_errors if error[1] != 0]
        assert not errors, errors

    asyncio.run(create())
    wait_for(lambda: {_leader(cluster, t) for t in topics} == {0}, timeout, "node 1 leading every [0]")


def _leader(cluster: KafkaBroker, topic: str) -> int | None:
    try:
        return cluster.leader_of(topic, 0)
    except BrokerError:  # no leader yet
        return None


def test_partition_leaders_sigkilled_in_a_three_node_cluster_nothing_lost(
    broker_kind: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    kafka_only(broker_kind, "Tansu runs one node, with no replica to take over a partition's leadership")
    cluster = KafkaBroker(
        nodes=3, data_dir=tmp_path / "kafka", heap=SMALL_HEAP, server_properties=FAST_FENCING
    )
    stack.callback(cluster.stop)
    cluster.start()
    servers = cluster.bootstrap_servers
    source, sink, dlq = f"{unique_name}-in", f"{unique_name}-out", f"{unique_name}-in.dlq"
    create_led_by_one_node(cluster, [source, sink, dlq])
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    worker = start_worker(servers, registry_url, unique_name, tmp_path / "worker.log", stack)
    producer = stack.enter_context(AvroProducer(servers, registry_url, source, INPUT_SCHEMA))
    writer = SteadyWriter(producer).start()
    stack.callback(writer.stop)
    outputs_grow(worker, 200, 60, "before the kill")

    # The leader of source[0] and sink[0] at once, mid-stream. It stays down: with two of three nodes in
    # sync, min.insync.replicas=2 still lets acks=all sends through, on the new leaders.
    cluster.kill(0)
    outputs_grow(worker, 300, 120, "with node 1, the leader of source[0] and sink[0], dead")
    assert {cluster.leader_of(t, 0) for t in (source, sink)} <= {1, 2}, "new leaders"
    total = writer.stop()

    result = tally("3 nodes: leaders SIGKILL", servers, registry_url, sink, "", set(range(total)))
    assert (result.lost, result.out) == (0, total), result
    worker.check_running()
    worker.wait_ready(60)

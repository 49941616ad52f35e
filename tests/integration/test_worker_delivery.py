"""The delivery contract and readiness on real brokers: per-key order across a leader failover (the
idempotent producer), a sink without a leader past the send timeout (the worker stops for a restart), a
broker that refuses idempotence, /readyz following the broker connection, an idle member ready.

The failover and proxy tests start an Apache Kafka cluster of their own whatever AVROFLOW_TEST_BROKER says
(they are about Kafka); the refusal test needs Tansu, the broker that refuses aiokafka a producer id.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from faults_harness import TcpProxy
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    Consumed,
    WorkerProcess,
    consume,
    free_port,
    pipeline_topics,
    register,
    wait_for,
    worker_env,
)

from devstack.broker import TansuBroker
from devstack.kafka import KafkaBroker
from workers.app import EXIT_PREFLIGHT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS = 8
PER_KEY = 150
#: Written to Kafka with the idempotent producer on, whatever the session's broker needs.
IDEMPOTENT = {"AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER": "true"}


def keyed_order(key: int, seq: int) -> dict[str, object]:
    return order(key * 1_000_000 + seq, name=f"key-{key}")


def write_keyed(producer: AvroProducer, pause: float) -> None:
    """Record `seq` of every key, then `seq + 1` of every key...: the keys interleave as in a stream."""
    for seq in range(PER_KEY):
        for key in range(KEYS):
            producer.send(f"key-{key}".encode(), keyed_order(key, seq))
        time.sleep(pause)
    producer.flush()


def sequences(records: Sequence[Consumed], topic: str, registry_url: str) -> dict[int, list[int]]:
    """Per key, the sequence numbers of `records` in partition order (as `consume` reads them)."""
    per_key: dict[int, list[int]] = defaultdict(list)
    with SchemaRegistryClient({"url": registry_url}) as registry:
        decode = AvroDeserializer(registry)
        for record in records:
            key, seq = divmod(
                decode(record.value, SerializationContext(topic, MessageField.VALUE))["id"], 1_000_000
            )
            per_key[key].append(seq)
    return per_key


def replay_violations(seqs: Sequence[int]) -> list[str]:
    """What in one key's output sequence at-least-once does not allow.

    Allowed: runs of consecutive numbers (0 1 2 3), where a new run may start again at or below where the
    previous one got to (a re-read from the last committed offset: 0 1 2 3 2 3 4). Not allowed: a jump
    forward (a gap, or an output written before one that precedes it: 0 2 1), or not starting at 0.
    """
    problems = []
    expected_next = 0
    for position, seq in enumerate(seqs):
        if seq > expected_next:
            problems.append(f"at {position}: {seq} after {seqs[max(0, position - 3) : position]}")
        expected_next = seq + 1
    return problems


def end_offset(servers: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "unused", "log_level": 0})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


#: The head of a Kafka record batch (magic 2) in a log segment, up to its record count.
_BATCH_HEAD = struct.Struct(">qiibIhiqqqhii")


def producer_batches(partition_dir: Path) -> list[tuple[int, int, int, int]]:
    """(producer id, epoch, base sequence, records) of every batch in a partition's log segments on disk."""
    batches = []
    for segment in sorted(partition_dir.glob("*.log")):
        data, position = segment.read_bytes(), 0
        while position + _BATCH_HEAD.size <= len(data):
            head = _BATCH_HEAD.unpack_from(data, position)
            _, length, _, magic, _, _, _, _, _, producer_id, epoch, base_sequence, count = head
            assert magic == 2, f"record batch format {magic} in {segment}"
            batches.append((producer_id, epoch, base_sequence, count))
            position += 12 + length
    return batches


def sequence_gaps(batches: Sequence[tuple[int, int, int, int]]) -> list[str]:
    """Where a producer's sequence numbers are not contiguous from 0 (a batch written twice, or lost)."""
    problems, expected = [], defaultdict(int)
    for producer_id, epoch, base_sequence, count in batches:
        if producer_id < 0:
            problems.append(f"a batch of {count} written without a producer id (not idempotent)")
            continue
        if base_sequence != expected[producer_id, epoch]:
            problems.append(
                f"producer {producer_id}: sequence {base_sequence}, {expected[producer_id, epoch]} next"
            )
        expected[producer_id, epoch] = base_sequence + count
    return problems


def duplicates(per_key: dict[int, list[int]]) -> int:
    return sum(len(seqs) - len(set(seqs)) for seqs in per_key.values())


def test_per_key_order_holds_across_a_leader_failover_of_the_sink(
    registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    cluster = stack.enter_context(KafkaBroker(nodes=3, data_dir=tmp_path / "kafka"))
    servers = cluster.bootstrap_servers
    source, sink = f"{unique_name}-in", f"{unique_name}-out"
    cluster.create_topics([source], partitions=2, replication_factor=3)
    cluster.create_topics([sink], partitions=1, replication_factor=3)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    env = worker_env(servers, registry_url, unique_name, source, sink, AVROFLOW_BATCH_SIZE="20", **IDEMPOTENT)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready(120)
    # The inputs' own producer is idempotent too, so the source itself keeps each key's order in the failover.
    config = {"enable.idempotence": True}
    producer = stack.enter_context(AvroProducer(servers, registry_url, source, INPUT_SCHEMA, config))
    writer = threading.Thread(target=write_keyed, args=(producer, 0.05), daemon=True)
    writer.start()
    total = KEYS * PER_KEY

    wait_for(lambda: worker.counter("avroflow_records_in_total") >= total // 4, 60, "a quarter of the inputs")
    killed = cluster.leader_of(sink, 0)
    cluster.kill(killed)  # SIGKILL mid-stream: sends in flight to it, its partitions move to the others
    writer.join(120)
    assert not writer.is_alive()
    wait_for(
        lambda: worker.counter("avroflow_records_out_total") >= total,
        120,
        f"all outputs\n{worker.log()[-3000:]}",
    )
    worker.check_running()
    assert cluster.leader_of(sink, 0) != killed
    assert "Got error produce response" in worker.log(), "no send was in flight at the kill: nothing shown"

    inputs = sequences(consume(servers, source, total, timeout=60), source, registry_url)
    assert all(replay_violations(seqs) == [] and len(seqs) == PER_KEY for seqs in inputs.values()), (
        "inputs in order"
    )
    # Everything the sink holds, duplicates included: up to its end offset (Kafka's is exact).
    outputs = consume(servers, sink, end_offset(servers, sink), timeout=60)
    per_key = sequences(outputs, sink, registry_url)
    assert sorted(per_key) == list(range(KEYS))
    for key, seqs in per_key.items():
        assert set(seqs) == set(range(PER_KEY)), f"key {key} lost {sorted(set(range(PER_KEY)) - set(seqs))}"
        assert replay_violations(seqs) == [], f"key {key}: {replay_violations(seqs)}"
    # On disk, on the new leader: every batch carries the worker's producer id, its sequence numbers without
    # a gap or a repeat: no send that aiokafka retried into the failover was written twice.
    leader_dir = tmp_path / "kafka" / f"node-{cluster.leader_of(sink, 0) + 1}"
    (partition_dir,) = leader_dir.rglob(f"{sink}-0")
    batches = producer_batches(partition_dir)
    assert sum(count for *_, count in batches) == len(outputs)
    assert sequence_gaps(batches) == []
    # A duplicate needs a re-read input (the worker counts every input it reads, re-reads included); a send
    # aiokafka retried into the failover is never one.
    reread = worker.counter("avroflow_records_in_total") - total
    print(
        f"failover: {len(outputs)} outputs of {total} inputs, "
        f"{duplicates(per_key)} duplicated, {reread:.0f} re-read"
    )
    assert duplicates(per_key) <= reread


def test_a_broker_that_refuses_idempotence_stops_the_start_naming_the_setting(
    tansu_broker: TansuBroker, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    servers = tansu_broker.bootstrap_servers
    source, sink = pipeline_topics(servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    worker = WorkerProcess(
        worker_env(servers, registry_url, unique_name, source, sink, **IDEMPOTENT), tmp_path / "w.log"
    ).start()
    stack.callback(worker.stop)
    assert worker.wait(60) == EXIT_PREFLIGHT
    refusals = [line for line in worker.log().splitlines() if "refusing to start" in line]
    assert len(refusals) == 1, worker.log()[-3000:]
    assert "InitProducerId" in refusals[0] and "AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER=false" in refusals[0]


def test_readyz_turns_503_while_the_broker_is_cut_off_and_200_after(
    registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    proxy_port = free_port()
    kafka = KafkaBroker(advertised_client={0: f"127.0.0.1:{proxy_port}"}, data_dir=tmp_path / "kafka")
    proxy = TcpProxy(kafka.client_port(0), port=proxy_port)
    stack.callback(proxy.close)
    stack.enter_context(kafka)
    servers = kafka.bootstrap_servers
    assert servers == f"127.0.0.1:{proxy_port}"
    source, sink = pipeline_topics(servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    env = worker_env(
        servers,
        registry_url,
        unique_name,
        source,
        sink,
        AVROFLOW_READINESS_BROKER_TIMEOUT_SECONDS="3",
        **IDEMPOTENT,
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready(90)
    producer = stack.enter_context(AvroProducer(servers, registry_url, source, INPUT_SCHEMA))
    for i in range(20):
        producer.send(f"k{i}".encode(), order(i))
    producer.flush()

    proxy.cut()
    cut_at = time.monotonic()

    # Waiting for the broker's reason, not any 503: on a loaded machine a slow registry ping may show first.
    def broker_reason() -> bool:
        status, body = worker.readyz()
        return status == 503 and any(r.startswith("Kafka broker not answering for") for r in body["reasons"])

    wait_for(broker_reason, 60, "/readyz to turn 503 naming the broker")
    assert worker.get("/healthz")[0] == 200, "alive all along: only not ready"
    assert worker.counter("avroflow_ready") == 0

    not_ready_after = time.monotonic() - cut_at
    proxy.restore()
    restored_at = time.monotonic()
    worker.wait_ready(90)
    print(
        f"readiness: 503 {not_ready_after:.1f}s after the cut (timeout 3 s), 200 again "
        f"{time.monotonic() - restored_at:.1f}s after the restore"
    )
    for i in range(20, 40):
        producer.send(f"k{i}".encode(), order(i))
    producer.flush()
    wait_for(lambda: worker.counter("avroflow_records_out_total") >= 40, 60, "the inputs after the cut")


def test_a_worker_with_no_partition_to_take_is_ready_and_idle(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name, partitions=1)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    workers = []
    for name in ("first", "second"):
        env = worker_env(bootstrap_servers, registry_url, unique_name, source, sink)
        worker = WorkerProcess(env, tmp_path / f"{name}.log").start()
        stack.callback(worker.stop)
        worker.wait_ready(90)
        workers.append(worker)
    with AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA) as producer:
        for i in range(10):
            producer.send(f"k{i}".encode(), order(i))
    wait_for(lambda: sum(w.counter("avroflow_records_out_total") for w in workers) >= 10, 60, "the outputs")
    # One partition, two members: one processed everything, the other holds none and is still ready.
    assert sorted(w.counter("avroflow_records_in_total") for w in workers) == [0, 10]
    # Both ready (a slow registry ping on a loaded machine may make either 503 for a moment: waited out).
    wait_for(lambda: all(w.readyz()[0] == 200 for w in workers), 30, "both workers ready")


def test_a_sink_without_a_leader_past_the_send_timeout_stops_the_worker_for_a_restart(
    registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    # aiokafka fails a numbered batch that waited for a leader longer than its request timeout (30 s):
    # the broker then refuses every later batch of the partition as out of sequence. Stopping (exit 1, for
    # the supervisor to restart it with a new producer) is the way out; retrying would wait forever.
    cluster = stack.enter_context(KafkaBroker(nodes=3, data_dir=tmp_path / "kafka"))
    servers = cluster.bootstrap_servers
    source, sink = f"{unique_name}-in", f"{unique_name}-out"
    cluster.create_topics([source], partitions=1, replication_factor=3)
    admin = AdminClient({"bootstrap.servers": servers})
    single = NewTopic(sink, 1, 1, config={"min.insync.replicas": "1"})  # one replica: no leader when it dies
    admin.create_topics([single])[sink].result(15)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    env = worker_env(servers, registry_url, unique_name, source, sink, **IDEMPOTENT)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready(120)
    producer = stack.enter_context(AvroProducer(servers, registry_url, source, INPUT_SCHEMA))
    producer.send(b"k0", order(0))
    producer.flush()
    wait_for(lambda: worker.counter("avroflow_records_out_total") >= 1, 60, "the first output")

    node = cluster.leader_of(sink, 0)
    cluster.kill(node)
    producer.send(b"k1", order(1))
    producer.flush()
    wait_for(
        lambda: "NotLeaderForPartition" in worker.log() or "LeaderNotAvailable" in worker.log(),
        90,
        f"the send to fail after its timeout\n{worker.log()[-3000:]}",
    )
    cluster.start_node(node)
    assert worker.wait(120) == 1
    assert "out of sequence" in worker.log()

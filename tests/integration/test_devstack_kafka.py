"""devstack's Apache Kafka: what a real broker does that the look-alike could not (data kept across a crash,
a three-node cluster surviving the loss of a partition leader), and a clean stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from devstack.broker import BrokerError
from devstack.kafka import KafkaBroker

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 0})
    errors: list[object] = []
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, _msg: err and errors.append(err))
    assert producer.flush(30) == 0
    assert errors == []


def _read_all(bootstrap: str, topic: str, want: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "log_level": 0})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < want and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append(bytes(message.value() or b""))
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    assert high == want  # Kafka's end offsets are exact (Tansu's under-report)
    return got


def _leader_or_none(kafka: KafkaBroker, topic: str) -> int | None:
    try:
        return kafka.leader_of(topic)
    except BrokerError:  # between leaders
        return None


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def test_a_single_node_keeps_its_messages_across_sigkill_and_restart(unique_name: str) -> None:
    values = [f"m{i}".encode() for i in range(50)]
    with KafkaBroker() as kafka:
        kafka.create_topics([unique_name])
        _produce(kafka.bootstrap_servers, unique_name, values)
        kafka.kill(0)
        assert not kafka.running
        kafka.start_node(0)
        assert _read_all(kafka.bootstrap_servers, unique_name, len(values)) == values


def test_a_three_node_cluster_moves_leadership_when_the_leader_is_killed(unique_name: str) -> None:
    with KafkaBroker(nodes=3, heap="384m") as kafka:
        kafka.create_topics([unique_name])
        _produce(kafka.bootstrap_servers, unique_name, [b"before"])
        leader = kafka.leader_of(unique_name)
        kafka.kill(leader)
        deadline = time.monotonic() + 30
        while _leader_or_none(kafka, unique_name) in (leader, None):  # a live leader within seconds
            assert time.monotonic() < deadline, "no new leader"
            time.sleep(0.5)
        _produce(kafka.bootstrap_servers, unique_name, [b"after"])  # acks=all with 2 of 3 in sync
        assert _read_all(kafka.bootstrap_servers, unique_name, 2) == [b"before", b"after"]


def test_stop_leaves_no_process_and_no_folder() -> None:
    kafka = KafkaBroker()
    kafka.start()
    pid, folder = kafka.pid, kafka.data_dir
    assert pid is not None and folder.is_dir()
    assert "Kafka Server started" in kafka.log_tail(20000)
    kafka.stop()
    assert not _alive(pid)
    assert not folder.exists()
    kafka.stop()  # twice is fine


def test_a_folder_left_by_a_killed_run_is_swept_by_the_next_helper(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = Path(tempfile.mkdtemp(prefix="avroflow-kafka-"))
    (left / "owner.pid").write_text(str(dead.pid))  # a process that has ended
    alive = Path(tempfile.mkdtemp(prefix="avroflow-kafka-"))
    (alive / "owner.pid").write_text(str(os.getpid()))  # this one still runs
    try:
        kafka = KafkaBroker()  # not started: making it is enough
        assert not left.exists()
        assert alive.exists()
        assert (kafka.data_dir / "owner.pid").read_text() == str(os.getpid())
        kafka.stop()
        assert not kafka.data_dir.exists()
    finally:
        shutil.rmtree(alive, ignore_errors=True)
        shutil.rmtree(left, ignore_errors=True)

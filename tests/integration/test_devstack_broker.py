"""Smoke tests of the local Tansu broker: real Kafka clients through it, and start failures that say why."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

from devstack.broker import BrokerStartError, TansuBroker

pytestmark = pytest.mark.integration

# Tansu holds a new group's first assignment for about half the session timeout (see devstack/README.md).
_GROUP_SETTINGS = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 300}


async def _consume(bootstrap: str, topic: str, group: str, want: int, *, wait_s: float) -> list[bytes]:
    """Consume through `group` until `want` messages arrived or `wait_s` passed, commit, leave the group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **_GROUP_SETTINGS,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while len(got) < want and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            got += [message.value for messages in batches.values() for message in messages]
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


def test_a_consumer_group_commits_and_a_second_member_resumes_after_the_commit(
    tansu_broker: TansuBroker, unique_name: str
) -> None:
    tansu_broker.create_topics([unique_name])
    first = [f"old-{i}".encode() for i in range(5)]
    asyncio.run(_produce(tansu_broker.bootstrap_servers, unique_name, first))

    got = asyncio.run(_consume(tansu_broker.bootstrap_servers, unique_name, unique_name, 5, wait_s=30))
    assert got == first

    asyncio.run(_produce(tansu_broker.bootstrap_servers, unique_name, [b"new"]))
    # The same group again: the committed offset holds, so only what came after the commit is delivered.
    resumed = asyncio.run(_consume(tansu_broker.bootstrap_servers, unique_name, unique_name, 1, wait_s=30))
    assert resumed == [b"new"]


def test_create_topics_sets_the_partition_count_and_leaves_an_existing_topic_alone(
    tansu_broker: TansuBroker, unique_name: str
) -> None:
    tansu_broker.create_topics([unique_name], partitions=3)
    tansu_broker.create_topics([unique_name], partitions=1)  # already there: no error, no change

    metadata = AdminClient({"bootstrap.servers": tansu_broker.bootstrap_servers}).list_topics(timeout=10)
    assert len(metadata.topics[unique_name].partitions) == 3


def test_confluent_producer_and_consumer_exchange_messages(bootstrap_servers: str, unique_name: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    errors: list[KafkaError] = []
    for i in range(3):
        producer.produce(unique_name, value=f"v{i}".encode(), on_delivery=_collect_into(errors))
    assert producer.flush(15) == 0
    assert errors == []

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": unique_name,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 1000,
            "heartbeat.interval.ms": 300,
        }
    )
    consumer.subscribe([unique_name])
    got: list[bytes] = []
    try:
        for _ in range(150):  # polls of 0.2 s: up to 30 s on a busy machine
            message = consumer.poll(0.2)
            if message is not None and message.error() is None and message.value() is not None:
                got.append(bytes(message.value() or b""))
            if len(got) == 3:
                break
    finally:
        consumer.close()
    # Tansu auto-creates the topic with several partitions, so order holds only per partition.
    assert sorted(got) == [b"v0", b"v1", b"v2"]


def test_stop_ends_the_process_and_can_be_called_twice() -> None:
    broker = TansuBroker()
    broker.start()
    pid = broker.pid
    assert pid is not None
    broker.stop()
    broker.stop()
    assert not broker.running
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", broker.port), 1):
        pass


def test_a_taken_port_is_a_start_error_that_says_so() -> None:
    with socket.socket() as occupier:
        occupier.bind(("127.0.0.1", 0))
        occupier.listen()
        port = occupier.getsockname()[1]
        broker = TansuBroker(port=port)
        with pytest.raises(BrokerStartError, match=f"port {port} is already in use") as caught:
            broker.start(timeout=15)
    assert "AddrInUse" in str(caught.value)  # the log tail is part of the message
    assert not broker.running


def test_a_binary_that_is_not_executable_is_a_start_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_executable = tmp_path / "tansu"
    not_executable.write_text("not a program")
    monkeypatch.setenv("CALF_TANSU_BIN", str(not_executable))
    with pytest.raises(BrokerStartError, match="does not point at an executable"):
        TansuBroker().start()


def test_a_broker_that_exits_early_is_a_start_error_with_its_output(tmp_path: Path) -> None:
    crashing = _script(tmp_path / "crash", 'echo "storage exploded" >&2\nexit 3')
    with pytest.raises(BrokerStartError, match="exited with code 3") as caught:
        TansuBroker(binary=crashing).start(timeout=15)
    assert "storage exploded" in str(caught.value)


def test_a_broker_that_never_answers_is_a_start_error_and_is_not_left_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    silent = _script(tmp_path / "silent", f"echo $$ > {pid_file}\nexec sleep 60")
    with pytest.raises(BrokerStartError, match="did not accept connections in time"):
        TansuBroker(binary=silent).start(timeout=1.0)
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()


def test_the_log_goes_to_the_given_file(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "tansu.log"
    with TansuBroker(log_path=log_path) as broker:
        address = broker.bootstrap_servers
    assert f"listening on: tcp://{address}" in log_path.read_text()


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    assert os.access(path, os.X_OK)
    return path


def _collect_into(errors: list[KafkaError]) -> Callable[[KafkaError | None, Message], None]:
    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    return on_delivery

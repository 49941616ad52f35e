"""`avroflow dlq inspect` and `dlq replay` on the real broker, against dead letters the worker wrote.

A record dead-lettered because the sink schema had no field for it is replayed after that version is
registered, reaches the sink exactly once, and a second replay sends nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, OUTPUT_SCHEMA_V2, order
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    cli_env,
    consume,
    pipeline_topics,
    register,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def dlq_cli(bootstrap_servers: str, registry_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(bootstrap_servers, registry_url)
    result = subprocess.run(
        [sys.executable, "-m", "workers", "dlq", *args], env=env, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def sink_records(
    bootstrap_servers: str, registry_url: str, sink: str, expected: int
) -> list[dict[str, object]]:
    with SchemaRegistryClient({"url": registry_url}) as registry:
        decode = AvroDeserializer(registry)
        context = SerializationContext(sink, MessageField.VALUE)
        return [
            decode(r.value, context) for r in consume(bootstrap_servers, sink, expected=expected, timeout=30)
        ]


def test_dead_letters_are_inspected_and_replayed_once_after_the_fix(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name, partitions=1)
    dlq = f"{source}.dlq"
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)  # no "channel" field yet
    worker = WorkerProcess(
        worker_env(bootstrap_servers, registry_url, unique_name, source, sink), tmp_path / "w.log"
    )
    worker.start()
    stack.callback(worker.stop)
    worker.wait_ready(90)
    with AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA) as producer:
        for i in range(4):
            producer.send(f"k{i}".encode(), order(i, marker="channel" if i == 2 else ""))
        producer.send_raw(b"poison", b"not a frame", headers=[("trace-id", b"t-1")])
    wait_for(lambda: worker.counter("avroflow_records_dead_lettered_total") == 2, 60, "two dead letters")

    lines = [
        json.loads(line)
        for line in dlq_cli(bootstrap_servers, registry_url, "inspect", dlq).stdout.splitlines()
    ]
    assert sorted(line["reason"] for line in lines) == ["framing", "record_does_not_fit_schema"]
    (misfit,) = [line for line in lines if line["reason"] == "record_does_not_fit_schema"]
    assert misfit["source"] == {"topic": source, "partition": 0, "offset": 2}
    assert misfit["key"] == "k2" and misfit["schema_id"] is not None and misfit["replayed"] is False
    assert "channel" in misfit["error_message"]
    only = dlq_cli(bootstrap_servers, registry_url, "inspect", dlq, "--reason", "framing").stdout.splitlines()
    assert [json.loads(line)["key"] for line in only] == ["poison"]

    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA_V2)  # the fix: a version with the field
    first = json.loads(
        dlq_cli(
            bootstrap_servers, registry_url, "replay", dlq, "--reason", "record_does_not_fit_schema"
        ).stdout
    )
    assert first == {"read": 2, "filtered_out": 1, "already_replayed": 0, "replayed": 1, "no_source_topic": 0}
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 4, 60, "the replayed record's output")
    second = json.loads(
        dlq_cli(
            bootstrap_servers, registry_url, "replay", dlq, "--reason", "record_does_not_fit_schema"
        ).stdout
    )
    assert (second["replayed"], second["already_replayed"]) == (0, 1)

    outputs = sink_records(bootstrap_servers, registry_url, sink, expected=4)
    assert sorted(o["id"] for o in outputs) == [0, 1, 2, 3]  # id 2 exactly once
    assert [o["channel"] for o in outputs if o["id"] == 2] == ["app"]
    replayed = consume(bootstrap_servers, source, expected=6, timeout=30)[-1]
    assert (
        replayed.key == b"k2"
        and replayed.headers["dlq.replayed.from"] == f"{dlq}:0:{misfit['offset']}".encode()
    )
    assert not [k for k in replayed.headers if k.startswith("dlq.") and k != "dlq.replayed.from"]
    after = [
        json.loads(line)
        for line in dlq_cli(bootstrap_servers, registry_url, "inspect", dlq).stdout.splitlines()
    ]
    assert {line["key"]: line["replayed"] for line in after} == {"k2": True, "poison": False}

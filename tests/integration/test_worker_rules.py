"""Data-contract rules are never ignored silently (issue 17, point 7), on the real broker and registry.

A Confluent ``ruleSet`` (CEL conditions, migrations, field-level ``ENCRYPT``) is executed by Confluent's
clients, not by avroflow. So a sink subject whose latest schema has rules refuses the start, a source
record written under such a schema is dead-lettered with the reason ``schema_rules_unsupported`` (its
neighbours written under a rule-free schema go through), and `consume` shows such a record as an error
rather than its decoded fields.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import fastavro
import pytest
import requests
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, order
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

from registry_codecs import frame
from workers.app import EXIT_PREFLIGHT

pytestmark = pytest.mark.integration

ENCRYPT = {
    "name": "encrypt_name",
    "kind": "TRANSFORM",
    "mode": "WRITEREAD",
    "type": "ENCRYPT",
    "tags": ["PII"],
    "params": {"encrypt.kek.name": "kek1", "encrypt.kms.type": "local-kms"},
    "onFailure": "ERROR,NONE",
}
ENCRYPT_ONLY = {"domainRules": [ENCRYPT]}
CONDITION = {"name": "positive_amount", "kind": "CONDITION", "mode": "WRITE", "type": "CEL", "expr": "true"}


def register_with_rules(registry_url: str, subject: str, schema: str, rule_set: dict[str, Any]) -> int:
    """Register `schema` with a data contract, as Confluent's clients and CLI do (plain REST)."""
    response = requests.post(
        f"{registry_url}/subjects/{subject}/versions",
        json={"schema": schema, "ruleSet": rule_set},
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def start(env: dict[str, str], log: Path, stack: ExitStack) -> WorkerProcess:
    worker = WorkerProcess(env, log).start()
    stack.callback(worker.stop)
    return worker


@pytest.mark.parametrize("which", ["value", "key"])
def test_a_sink_subject_whose_latest_schema_has_rules_refuses_the_start_naming_it_and_the_rules(
    which: str, bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = f"{unique_name}-in", f"{unique_name}-out"
    rules = {"domainRules": [ENCRYPT, CONDITION]}
    if which == "value":
        register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)  # version 1: no rules
        schema_id = register_with_rules(registry_url, f"{sink}-value", OUTPUT_SCHEMA, rules)  # the latest
    else:  # the sink key subject, used for keys when it exists (key_format "auto", the default)
        register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
        key_schema = '{"type": "record", "name": "OrderKey", "fields": [{"name": "user", "type": "string"}]}'
        schema_id = register_with_rules(registry_url, f"{sink}-key", key_schema, rules)
    worker = start(
        worker_env(bootstrap_servers, registry_url, unique_name, source, sink), tmp_path / "w.log", stack
    )
    assert worker.wait(60) == EXIT_PREFLIGHT
    refusals = [line for line in worker.log().splitlines() if "refusing to start" in line]
    assert len(refusals) == 1, worker.log()[-3000:]
    subject_words = "sink subject" if which == "value" else "sink key subject"
    assert f"{subject_words} {sink}-{which}: schema id {schema_id} carries data-contract rules" in refusals[0]
    assert "domainRules TRANSFORM ENCRYPT WRITEREAD (encrypt_name)" in refusals[0]
    assert "domainRules CONDITION CEL WRITE (positive_amount)" in refusals[0]


def _body(record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(json.loads(INPUT_SCHEMA)), record)
    return out.getvalue()


def test_a_record_written_under_a_schema_with_rules_is_dead_lettered_and_its_neighbours_go_through(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name, partitions=1)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    worker = start(
        worker_env(bootstrap_servers, registry_url, unique_name, source, sink), tmp_path / "w.log", stack
    )
    worker.wait_ready()
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    producer.send(b"before", order(1))
    producer.flush()  # the rule-free schema is registered (version 1) before the one with rules
    contract_id = register_with_rules(
        registry_url, f"{source}-value", INPUT_SCHEMA, {"domainRules": [ENCRYPT]}
    )
    # What a producer that ignores the contract writes: the name in plaintext, under the contract's id.
    leaked = frame(contract_id, _body(order(2, name="Jane Plaintext")))
    producer.send_raw(b"contract", leaked)
    producer.send(b"after", order(3))
    producer.flush()

    outputs = consume(bootstrap_servers, sink, expected=2, timeout=60)
    dead = consume(bootstrap_servers, f"{source}.dlq", expected=1, timeout=30)
    assert sorted(r.key for r in outputs if r.key) == [b"after", b"before"]
    assert not any(b"JANE PLAINTEXT" in (r.value or b"") for r in outputs)
    [letter] = dead
    assert (letter.key, letter.value) == (b"contract", leaked)  # the bytes as they came, untouched
    assert letter.headers["dlq.error.reason"] == b"schema_rules_unsupported"
    assert letter.headers["dlq.error.field"] == b"value"
    assert letter.headers["dlq.schema.id"] == str(contract_id).encode()
    assert b"ENCRYPT WRITEREAD (encrypt_name)" in letter.headers["dlq.error.message"]
    wait_for(
        lambda: (
            worker.counter(
                "avroflow_records_dead_lettered_total", pipeline="orders", reason="schema_rules_unsupported"
            )
            == 1
        ),
        10,
        "the dead-letter count",
    )
    worker.check_running()


def test_consume_prints_an_error_line_not_the_decoded_record(
    bootstrap_servers: str, registry_url: str, unique_name: str, broker: Any
) -> None:
    topic = unique_name
    broker.create_topics([topic], partitions=1)
    contract_id = register_with_rules(
        registry_url, f"{topic}-value", INPUT_SCHEMA, {"domainRules": [ENCRYPT]}
    )
    with AvroProducer(bootstrap_servers, registry_url, topic, INPUT_SCHEMA) as producer:
        producer.send_raw(b"k", frame(contract_id, _body(order(7, name="Jane Plaintext"))))
    env = cli_env(bootstrap_servers, registry_url)
    consumed = subprocess.run(
        [sys.executable, "-m", "workers", "consume", topic, "--from-beginning", "--max-messages", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert consumed.returncode == 0, consumed.stderr
    [line] = [json.loads(text) for text in consumed.stdout.splitlines()]
    assert line["value"] is None and line["schema_id"] is None
    assert line["error"].startswith(f"schema_rules_unsupported: schema id {contract_id} carries")
    assert "encrypt_name" in line["error"]


def test_produce_to_a_subject_with_rules_is_one_clear_line_not_a_traceback(
    bootstrap_servers: str, registry_url: str, unique_name: str, broker: Any
) -> None:
    topic = unique_name
    broker.create_topics([topic], partitions=1)
    register_with_rules(registry_url, f"{topic}-value", INPUT_SCHEMA, {"domainRules": [ENCRYPT]})
    env = cli_env(bootstrap_servers, registry_url)
    produced = subprocess.run(
        [sys.executable, "-m", "workers", "produce", topic],
        input=json.dumps(order(1)) + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert produced.returncode == 1, produced.stderr
    assert "Traceback" not in produced.stderr, produced.stderr
    [message] = produced.stderr.strip().splitlines()
    assert message.startswith("avroflow produce: schema id") and "encrypt_name" in message

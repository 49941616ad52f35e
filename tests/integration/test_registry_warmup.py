"""A registry that has just restarted and has not reloaded its store yet (Karapace replaying its
``_schemas`` topic) answers "schema not found" (40403) and "subject not found" (40401) for ids and
subjects that exist. The client must ask such an id again, with backoff, for a bounded time before the
answer counts (`unknown_id_grace`); meanwhile it raises the retriable `SchemaNotFoundYet`, and the
negative cache only ever holds final answers. devstack's registry imitates the warm-up
(`RegistryProcess(warmup_seconds=N)`, ``--warmup-seconds N``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry
from registry_fakes import Reply, ScriptedRegistry

from devstack.broker import free_port
from devstack.registry import RegistryProcess
from registry_codecs.errors import RegistryUnavailable, SchemaNotFound, SchemaNotFoundYet, SubjectNotFound
from registry_codecs.metrics import CodecMetrics
from registry_codecs.registry import RegistryClient

pytestmark = pytest.mark.integration

STRING = '"string"'
TIMEOUT = 5.0
RETRIES = "avroflow_registry_not_found_retries_total"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[ScriptedRegistry]:
    with ScriptedRegistry() as scripted:
        yield scripted


def make_client(url: str, **kwargs: Any) -> RegistryClient:
    options: dict[str, Any] = {"connect_timeout": 2.0, "read_timeout": 2.0, "max_retries": 0}
    options.update(kwargs)
    return RegistryClient(url, **options)


def not_found(schema_id: int) -> Reply:
    return Reply(404, {"error_code": 40403, "message": f"Schema {schema_id} not found"})


def test_an_id_unknown_during_warm_up_is_asked_again_with_backoff_and_then_found(
    server: ScriptedRegistry,
) -> None:
    server.on("GET", "/schemas/ids/7", not_found(7), not_found(7), Reply(200, {"schema": STRING}))
    clock = FakeClock()
    collector = CollectorRegistry()
    metrics = CodecMetrics.create(collector)
    with make_client(server.url, unknown_id_grace=30.0, clock=clock, metrics=metrics) as client:
        with pytest.raises(SchemaNotFoundYet) as first:
            client.get_schema(7)
        assert first.value.retriable and isinstance(first.value, RegistryUnavailable)
        assert not isinstance(first.value, SchemaNotFound)  # never mistaken for a final "unknown id"
        assert first.value.error_code == 40403
        # Asked again at once: not yet time to ask the registry again (backoff), still not final.
        with pytest.raises(SchemaNotFoundYet):
            client.get_schema(7)
        assert server.count() == 1
        clock.now += 1.0
        with pytest.raises(SchemaNotFoundYet):
            client.get_schema(7)
        assert server.count() == 2
        clock.now += 5.0
        assert client.get_schema(7).schema_str == STRING
        assert server.count() == 3
    assert collector.get_sample_value(RETRIES, {"endpoint": "schema_by_id"}) == 2


def test_a_genuinely_unknown_id_is_final_after_the_grace_and_then_cached(server: ScriptedRegistry) -> None:
    server.on("GET", "/schemas/ids/9", not_found(9))
    clock = FakeClock()
    with make_client(server.url, unknown_id_grace=30.0, negative_ttl=5.0, clock=clock) as client:
        polls = 0
        while True:  # a worker retrying every 0.1 s
            try:
                client.get_schema(9)
            except SchemaNotFoundYet:
                polls += 1
                clock.now += 0.1
                assert polls < 400, "the grace never ended"
                continue
            except SchemaNotFound as final:
                assert final.error_code == 40403
                break
        assert clock.now - 100.0 >= 30.0  # not before the grace is over
        assert clock.now - 100.0 < 36.0  # and not long after it
        asks = server.count()
        assert 3 <= asks <= 20, asks  # with backoff, not once per poll (300 polls)
        # The final answer is negatively cached: no HTTP, still final.
        with pytest.raises(SchemaNotFound):
            client.get_schema(9)
        assert server.count() == asks
        # After the negative TTL the registry is asked again, and a confirmed unknown id is final at once.
        clock.now += 5.0
        with pytest.raises(SchemaNotFound):
            client.get_schema(9)
        assert server.count() == asks + 1


def test_without_a_grace_an_unknown_id_is_final_at_once(server: ScriptedRegistry) -> None:
    server.on("GET", "/schemas/ids/9", not_found(9))
    with make_client(server.url) as client, pytest.raises(SchemaNotFound):
        client.get_schema(9)


def test_devstack_registry_warm_up_answers_not_found_then_serves(tmp_path: Path) -> None:
    registry = RegistryProcess(port=free_port(), data_dir=tmp_path / "registry")
    with registry:
        with RegistryClient(registry.url) as setup:
            schema_id = setup.register("warm-value", json.dumps({"type": "fixed", "name": "F", "size": 3}))
        registry.stop()
        registry.warmup_seconds = 6.0
        registry.start()
        # As Karapace replaying its topic: what exists is not found yet.
        answer = requests.get(f"{registry.url}/schemas/ids/{schema_id}", timeout=TIMEOUT)
        assert (answer.status_code, answer.json()["error_code"]) == (404, 40403)
        answer = requests.get(f"{registry.url}/subjects/warm-value/versions/latest", timeout=TIMEOUT)
        assert (answer.status_code, answer.json()["error_code"]) == (404, 40401)
        with RegistryClient(registry.url, unknown_id_grace=60.0, max_retries=0) as client:
            with pytest.raises(SchemaNotFoundYet):
                client.get_schema(schema_id)
            with pytest.raises(SubjectNotFound):
                client.get_latest("warm-value")
            found = None
            for _ in range(200):  # the warm-up ends: the id that existed all along is served
                try:
                    found = client.get_schema(schema_id)
                    break
                except SchemaNotFoundYet:
                    time.sleep(0.1)
            assert found is not None and json.loads(found.schema_str)["name"] == "F"
            assert client.get_latest("warm-value").schema_id == schema_id

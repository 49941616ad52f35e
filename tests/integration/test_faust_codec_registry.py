"""The Faust codec against a real registry process on loopback that stops: one round of requests, no retry
rounds on Faust's event loop, a typed error (which Faust turns into a skipped message), and decoding again
once the registry is back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import faust
import pytest
from faust.exceptions import ValueDecodeError
from faust.serializers import codecs as faust_codecs
from prometheus_client import CollectorRegistry

from devstack.broker import free_port
from devstack.registry import RegistryProcess
from registry_codecs import AvroSerializer, RegistryClient, RegistryUnavailable
from registry_codecs.errors import RegistryNotRetried
from registry_codecs.faust_codec import ConfluentAvroCodec, register_codec
from registry_codecs.metrics import CodecMetrics

pytestmark = pytest.mark.integration

POINT = json.dumps(
    {
        "type": "record",
        "name": "Point",
        "fields": [{"name": "x", "type": "int"}, {"name": "y", "type": "int"}],
    }
)


@pytest.fixture
def codec_name() -> Iterator[str]:
    name = f"avro-outage-{uuid.uuid4().hex[:8]}"
    yield name
    faust_codecs.codecs.pop(name, None)


def _attempts(collector: CollectorRegistry, endpoint: str) -> float:
    labels = {"endpoint": endpoint, "outcome": "unavailable"}
    return collector.get_sample_value("avroflow_registry_requests_total", labels) or 0.0


def test_a_decode_with_the_registry_down_makes_one_round_then_raises_a_typed_error(
    tmp_path: Path, stack: ExitStack, codec_name: str
) -> None:
    registry = stack.enter_context(RegistryProcess(port=free_port(), data_dir=tmp_path / "registry"))
    with RegistryClient(registry.url) as writer:
        frame = AvroSerializer(writer, "points-value", schema=POINT, auto_register=True).encode(
            {"x": 1, "y": 2}
        )
    collector = CollectorRegistry()
    # The client the codec is given retries three more rounds, with backoff: what the worker's threads may
    # wait for, and what Faust's event loop must not.
    client = stack.enter_context(
        RegistryClient(registry.url, max_retries=3, backoff_base=0.5, backoff_max=2.0,
                       metrics=CodecMetrics.create(collector))
    )  # fmt: skip
    codec = register_codec(codec_name, ConfluentAvroCodec(lookup=client, topic="points"))
    registry.stop()

    with pytest.raises(RegistryNotRetried) as caught:
        codec.loads(frame)
    assert isinstance(caught.value, RegistryUnavailable)
    assert "does not retry" in str(caught.value)
    assert _attempts(collector, "schema_by_id") == 1  # one request to the one URL, no retry round

    # What a Faust stream sees: a decode error, so Faust skips (and acks) the message.
    app = faust.App(f"codec-outage-{codec_name}", broker="memory://")
    with pytest.raises(ValueDecodeError) as wrapped:
        app.serializers.loads_value(None, frame, serializer=codec_name)
    assert isinstance(wrapped.value.__cause__, RegistryNotRetried)
    assert _attempts(collector, "schema_by_id") == 2

    with pytest.raises(RegistryNotRetried):
        codec.dumps({"x": 3, "y": 4})  # the latest schema was never fetched: one round there too
    assert _attempts(collector, "subject_version") == 1

    registry.start()
    assert codec.loads(frame) == {"x": 1, "y": 2}
    assert codec.loads(codec.dumps({"x": 3, "y": 4})) == {"x": 3, "y": 4}
    # The client itself keeps its retries for callers off the event loop.
    registry.stop()
    with pytest.raises(RegistryUnavailable) as direct:
        client.get_latest("other-value")
    assert not isinstance(direct.value, RegistryNotRetried)
    assert _attempts(collector, "subject_version") == 1 + 4

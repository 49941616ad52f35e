"""CodecMetrics: families on the registry given; per-message counters exact and exposed as _total."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from registry_codecs.metrics import FAILURE_REASONS, CodecMetrics


def test_metrics_are_registered_on_the_given_registry_only() -> None:
    before = {m.name for m in REGISTRY.collect()}
    registry = CollectorRegistry()
    metrics = CodecMetrics.create(registry)
    metrics.decode_failures.labels("t-value", "framing").inc()
    metrics.messages_decoded.labels("t-value").inc()
    assert {m.name for m in REGISTRY.collect()} == before
    assert (
        registry.get_sample_value(
            "avroflow_decode_failures_total", {"subject": "t-value", "reason": "framing"}
        )
        == 1
    )
    assert registry.get_sample_value("avroflow_messages_decoded_total", {"subject": "t-value"}) == 1
    # A second set on another registry does not clash; the same registry refuses duplicates.
    CodecMetrics.create(CollectorRegistry())
    with pytest.raises(ValueError, match="Duplicated"):
        CodecMetrics.create(registry)


def test_message_counts_are_exact_under_threads_and_repeated_reads() -> None:
    registry = CollectorRegistry()
    child = CodecMetrics.create(registry).messages_encoded.labels("s")

    def bump() -> None:
        for _ in range(5000):
            next(child.ticks)
            child.inc()

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):  # reads while writers run must not disturb the count
        registry.get_sample_value("avroflow_messages_encoded_total", {"subject": "s"})
    for thread in threads:
        thread.join()
    child.inc(2.5)
    for _ in range(3):
        assert registry.get_sample_value("avroflow_messages_encoded_total", {"subject": "s"}) == 40002.5
    with pytest.raises(ValueError, match="only go up"):
        child.inc(-1)


def test_the_exposition_names_and_labels() -> None:
    registry = CollectorRegistry()
    metrics = CodecMetrics.create(registry, namespace="app")
    metrics.messages_encoded.labels("orders-value").inc()
    text = generate_latest(registry).decode()
    assert 'app_messages_encoded_total{subject="orders-value"} 1.0' in text
    assert "# TYPE app_messages_encoded_total counter" in text
    with pytest.raises(ValueError, match="expected labels"):
        metrics.messages_decoded.labels("a", "b")
    assert "registry_unavailable" in FAILURE_REASONS

"""Fixtures shared by the integration tests (the broker and registry ones come from devstack's plugin)."""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Final

import pytest

from devstack.kafka_security import SecuredKafka
from devstack.kafka_security import secured_kafka as secured_kafka_for

#: The password of the `secured_kafka` fixture's users: planted, so tests can show it never leaks.
KAFKA_SECRET: Final = "planted-KafkaS3cret-5e8d1a"


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Everything a test starts (workers, producers, registries) is stopped when it ends, pass or fail."""
    with ExitStack() as resources:
        yield resources


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    """Apache Kafka of its own with SASL_SSL (SCRAM-SHA-512), SSL (client certificates required) and
    PLAIN_SSL (SASL PLAIN over TLS) listeners, a CA and certificates made for the session; started the
    first time a test asks for it (a JVM of its own: only the security tests do), stopped at session end.
    Always Apache Kafka, whatever AVROFLOW_TEST_BROKER says: Tansu has no TLS or SASL."""
    secured = secured_kafka_for(tmp_path_factory.mktemp("kafka-tls"), password=KAFKA_SECRET)
    atexit.register(secured.broker.stop)
    secured.broker.start()
    try:
        yield secured
    finally:
        secured.broker.stop()
        atexit.unregister(secured.broker.stop)

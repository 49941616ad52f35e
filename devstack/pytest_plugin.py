"""pytest fixtures that hand tests a real Kafka broker and a real schema registry on loopback.

Load it with ``pytest_plugins = ["devstack.pytest_plugin"]`` in a ``conftest.py``. `broker` is Apache Kafka,
or Tansu with ``AVROFLOW_TEST_BROKER=tansu`` (the one switch for every integration test; `broker_kind` tells a
test which it got). The broker and the registry start lazily, the first time a test asks for them, once per
session, each on a free port; they
stop at session end. Each process is also registered with `atexit`, and the broker dies with the test
process on Linux, so an interrupted or crashed run leaves nothing behind. `unique_name` gives every test its
own topic, subject and consumer-group names, so tests never see each other's messages even on a shared broker.

Tests marked ``apicurio`` run against a real Apicurio Registry (`apicurio_registry`, Java 21+ and a 158 MB
download on first use) and are skipped unless ``AVROFLOW_TEST_APICURIO=1``.
"""

from __future__ import annotations

import atexit
import os
import re
import uuid
from collections.abc import Iterator
from typing import TypeVar

import pytest

from devstack.apicurio import ApicurioRegistry
from devstack.broker import TansuBroker
from devstack.brokers import Broker, new_broker, test_broker_kind
from devstack.children import ChildService
from devstack.registry import RegistryProcess

__all__ = [
    "APICURIO_TEST_ENV",
    "apicurio_registry",
    "bootstrap_servers",
    "broker",
    "broker_kind",
    "registry_process",
    "registry_url",
    "tansu_broker",
    "unique_name",
    "unique_name_for",
]

APICURIO_TEST_ENV = "AVROFLOW_TEST_APICURIO"
_APICURIO_SKIP = (
    f"optional Apicurio Registry group: set {APICURIO_TEST_ENV}=1 to run it "
    "(needs Java 21+ and Maven; the first run downloads 158 MB, each session starts the registry once)"
)
# The settings the `apicurio_registry` fixture starts Apicurio with (see devstack/README.md, "Apicurio").
APICURIO_TEST_PROPERTIES = {"apicurio.rules.global.compatibility": "BACKWARD"}  # Confluent's default level

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9-]+")
_NAME_STEM_CHARS = 40


_Service = TypeVar("_Service", bound=ChildService)


def _serve(service: _Service) -> Iterator[_Service]:
    """Run `service` for the fixture's lifetime; `atexit` stops it too if pytest dies before teardown."""
    atexit.register(service.stop)
    service.start()
    try:
        yield service
    finally:
        service.stop()
        atexit.unregister(service.stop)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which broker the integration tests run on, so a run's log shows it."""
    return f"devstack broker: {test_broker_kind()} (AVROFLOW_TEST_BROKER=kafka|tansu)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``apicurio`` unless ``AVROFLOW_TEST_APICURIO=1``."""
    if os.environ.get(APICURIO_TEST_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=_APICURIO_SKIP)
    for item in items:
        if item.get_closest_marker("apicurio") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def broker_kind() -> str:
    """``kafka`` or ``tansu``: the broker this session's integration tests run on."""
    try:
        return test_broker_kind()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.fixture(scope="session")
def broker(broker_kind: str) -> Iterator[Broker]:
    """The session's broker (Apache Kafka unless ``AVROFLOW_TEST_BROKER=tansu``), started on first use."""
    yield from _serve(new_broker(broker_kind))


@pytest.fixture(scope="session")
def tansu_broker() -> Iterator[TansuBroker]:
    """A running Tansu broker for the session, whatever `broker_kind` is (devstack's own Tansu tests)."""
    yield from _serve(TansuBroker())


@pytest.fixture(scope="session")
def bootstrap_servers(broker: Broker) -> str:
    """``host:port`` of the session's broker, for a Kafka client's bootstrap servers."""
    return broker.bootstrap_servers


@pytest.fixture(scope="session")
def registry_process() -> Iterator[RegistryProcess]:
    """A running local schema registry (in memory) for the whole session (started on first use)."""
    yield from _serve(RegistryProcess())


@pytest.fixture(scope="session")
def registry_url(registry_process: RegistryProcess) -> str:
    """Base URL of the session's schema registry, e.g. ``http://127.0.0.1:PORT``."""
    return registry_process.url


@pytest.fixture(scope="session")
def apicurio_registry() -> Iterator[ApicurioRegistry]:
    """A running Apicurio Registry 3.x (in memory) for the session; `url` is its Confluent-compatible API."""
    yield from _serve(ApicurioRegistry(properties=APICURIO_TEST_PROPERTIES))


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test run, safe as a Kafka topic, subject or group id: ``t-<test>-<8 hex>``.

    Derive more names from it (``f"{unique_name}-out"``, ``f"{unique_name}-value"``) when a test needs them.
    """
    return unique_name_for(request.node.name)


def unique_name_for(test_name: str) -> str:
    """``t-<test_name made safe and short>-<8 random hex digits>``: letters, digits and ``-`` only.

    Kafka topics allow ``[a-zA-Z0-9._-]`` up to 249 characters, but ``.`` and ``_`` collide in Kafka's
    metric names, so both become ``-``; the test-name part is cut to 40 characters.
    """
    stem = _NAME_UNSAFE.sub("-", test_name).strip("-")[:_NAME_STEM_CHARS].rstrip("-")
    return f"t-{stem or 'test'}-{uuid.uuid4().hex[:8]}"

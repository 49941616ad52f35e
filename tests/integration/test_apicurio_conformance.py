"""Confluent's own Python client and Avro serde against a real Apicurio Registry 3.x (``/apis/ccompat/v7``).

The optional ``apicurio`` group (``AVROFLOW_TEST_APICURIO=1``): the tests of `test_registry_conformance` that
need no registry options of their own run here unchanged against Apicurio (imported, so they are the very same
tests); the differences are listed in devstack/README.md, "Apicurio".
"""

# The imported fixtures are used as the parameters of the tests below, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from test_registry_conformance import (  # noqa: F401 -- pytest collects the imported tests and fixtures here
    PAYMENT_BAD,
    PAYMENT_V1,
    PAYMENT_V2,
    Schema,
    client,
    schema_registry,
    test_avro_serde_round_trip_through_the_registry,
    test_deletes,
    test_errors_reach_the_client_with_confluent_codes,
    test_global_config,
    test_register_lookup_list_and_fetch,
    test_serde_with_use_latest_version_reads_what_the_server_serves,
)

from devstack.apicurio import ApicurioRegistry

pytestmark = [pytest.mark.integration, pytest.mark.apicurio]


@pytest.fixture
def registry(apicurio_registry: ApicurioRegistry) -> ApicurioRegistry:
    return apicurio_registry


def test_compatibility_checks_and_config_on_apicurio(client: Any, request: pytest.FixtureRequest) -> None:
    subject = f"{request.node.name}-value"
    client.register_schema(subject, Schema(PAYMENT_V1, "AVRO"))
    assert client.test_compatibility(subject, Schema(PAYMENT_V2, "AVRO")) is True
    assert client.test_compatibility(subject, Schema(PAYMENT_BAD, "AVRO"), version=1) is False
    assert client.test_compatibility_all_versions(subject, Schema(PAYMENT_BAD, "AVRO")) is False
    client.set_compatibility(subject_name=subject, level="NONE")
    assert client.get_config(subject).compatibility_level.value == "NONE"
    client.register_schema(subject, Schema(PAYMENT_BAD, "AVRO"))
    assert client.get_versions(subject) == [1, 2]
    forward = schema_registry.ConfigCompatibilityLevel.FORWARD
    client.set_config(subject, schema_registry.ServerConfig(compatibility=forward))
    assert client.get_config(subject).compatibility_level == forward
    client.delete_config(subject)
    # Confluent answers 40408 (no subject-level config) here; Apicurio answers with the global level.
    assert client.get_compatibility() == "BACKWARD"
    assert client.get_compatibility(subject) == "BACKWARD"

"""RegistryClient against a real Apicurio Registry 3.x, through its Confluent-compatible API.

The optional ``apicurio`` group (``AVROFLOW_TEST_APICURIO=1``): the tests of `test_registry_client` that hold
on any Confluent-compatible registry run here unchanged against Apicurio's ``/apis/ccompat/v7`` (imported, so
they are the very same tests), and the ones Apicurio answers differently are below, each asserting what
Apicurio does and what the client makes of it. The differences are listed in devstack/README.md,
"Apicurio". Tests that start a registry of their own (auth, TLS, a fresh global level) need the local
registry's options and are not repeated.
"""

# The imported fixtures are used as the parameters of the tests below, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import json

import pytest
from test_registry_client import (  # noqa: F401 -- pytest collects the imported tests and fixtures here
    V1,
    V2,
    V2_BREAKING,
    client,
    subject,
    test_incompatible_and_invalid_schemas,
    test_latest_ttl_against_a_real_registry,
    test_not_found_errors_carry_confluent_codes,
    test_own_registration_refreshes_latest,
    test_references_are_resolved_dependencies_first,
    test_register_then_read_back_every_way,
    test_registered_ids_are_cached,
    test_subject_compatibility_config,
    test_subject_names_that_need_quoting,
)

from devstack.apicurio import ApicurioRegistry
from registry_codecs.errors import IncompatibleSchema
from registry_codecs.registry import CompatibilityResult, RegistryClient

pytestmark = [pytest.mark.integration, pytest.mark.apicurio]


@pytest.fixture
def registry_url(apicurio_registry: ApicurioRegistry) -> str:
    return apicurio_registry.url


def test_compatibility_checks_on_apicurio(client: RegistryClient, subject: str) -> None:
    client.register(subject, V1)
    assert client.test_compatibility(subject, V2) == CompatibilityResult(True, ())
    verdict = client.test_compatibility(subject, V2_BREAKING, version=1, verbose=True)
    assert not verdict
    assert verdict.messages == ()  # Apicurio gives no reasons, even when asked for them
    # Against "latest" of a subject that does not exist Apicurio says compatible, as Confluent 7.x does.
    assert client.test_compatibility(f"{subject}-missing", V2) == CompatibilityResult(True, ())


def test_ids_and_schema_texts_on_apicurio(client: RegistryClient, subject: str) -> None:
    first = client.register(subject, V1)
    assert client.register(f"{subject}-copy", V1) == first  # one id per schema text, as on Confluent
    stored = client.get_schema(first).schema_str
    assert stored == client.get_version(f"{subject}-copy", 1).schema_str
    assert stored != V1 and json.loads(stored) == json.loads(V1)  # stored compacted, like Confluent
    assert client.lookup(subject, V1).schema_str == V1  # a lookup answers with the text as sent


def test_incompatible_version_and_levels_on_apicurio(client: RegistryClient, subject: str) -> None:
    client.register(subject, V1)
    with pytest.raises(IncompatibleSchema) as incompatible:
        client.register(subject, V2_BREAKING)
    assert (incompatible.value.status_code, incompatible.value.error_code) == (409, 409)
    assert "RuleViolationException: Incompatible artifact" in str(incompatible.value)
    # Apicurio answers 40401 for /config/<unknown>?defaultToGlobal=true; the client falls back to /config.
    assert client.get_compatibility(f"{subject}-no-such-subject") == "BACKWARD"

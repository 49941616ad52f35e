"""Data contracts on the local registry: ``metadata`` and ``ruleSet`` are stored, persisted and served.

Over HTTP against a real `python -m devstack.registry` process, read back both raw and through
avroflow's own `RegistryClient` (whose `RegisteredSchema.rules` the codecs refuse to ignore).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.registry import RegistryProcess
from registry_codecs import RegistryClient

pytestmark = pytest.mark.integration

TIMEOUT = 5.0
_counter = itertools.count()
SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Customer",
        "fields": [{"name": "ssn", "type": "string"}, {"name": "amount", "type": "int"}],
    }
)
ENCRYPT = {
    "name": "encrypt_ssn",
    "kind": "TRANSFORM",
    "mode": "WRITEREAD",
    "type": "ENCRYPT",
    "tags": ["PII"],
    "params": {"encrypt.kek.name": "kek1"},
    "onFailure": "ERROR,NONE",
    "disabled": False,
}
CONDITION = {"name": "check_amount", "kind": "CONDITION", "mode": "WRITE", "type": "CEL", "expr": "true"}
RULES = {"domainRules": [ENCRYPT]}
METADATA = {"properties": {"owner": "payments"}, "sensitive": ["ssn"]}


def _call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = requests.request(
        method,
        base + path,
        json=body,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        timeout=TIMEOUT,
    )
    return response.status_code, response.json()


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryProcess]:
    with RegistryProcess() as proc:
        yield proc


@pytest.fixture
def subject() -> str:
    return f"contract{next(_counter)}-value"


def _register(base: str, subject: str, **extra: Any) -> int:
    status, answer = _call(base, "POST", f"/subjects/{subject}/versions", {"schema": SCHEMA, **extra})
    assert status == 200, answer
    return int(answer["id"])


def test_rules_and_metadata_are_served_by_id_by_version_and_by_lookup(
    registry: RegistryProcess, subject: str
) -> None:
    schema_id = _register(registry.url, subject, ruleSet=RULES, metadata=METADATA)
    _, by_id = _call(registry.url, "GET", f"/schemas/ids/{schema_id}")
    _, latest = _call(registry.url, "GET", f"/subjects/{subject}/versions/latest")
    _, found = _call(registry.url, "POST", f"/subjects/{subject}", {"schema": SCHEMA})
    for answer in (by_id, latest, found):
        assert answer["ruleSet"] == RULES
        assert answer["metadata"] == METADATA
    assert (found["id"], found["version"]) == (schema_id, 1)

    with RegistryClient(registry.url, max_retries=0) as client:
        for schema in (
            client.get_schema(schema_id),
            client.get_latest(subject),
            client.lookup(subject, SCHEMA),
        ):
            assert [(r.group, r.name, r.type, r.kind) for r in schema.rules] == [
                ("domainRules", "encrypt_ssn", "ENCRYPT", "TRANSFORM")
            ]
            assert schema.metadata == METADATA
    with RegistryClient(registry.url, max_retries=0) as client:
        client.get_latest(subject)  # caches the schema by id too: the next read is no request
        cached = client.get_schema(schema_id)
    assert [r.name for r in cached.rules] == ["encrypt_ssn"] and cached.metadata == METADATA


def test_the_same_text_with_another_rule_set_is_a_new_schema_and_version(
    registry: RegistryProcess, subject: str
) -> None:
    """As Confluent: the id hangs on an MD5 of the schema text, references, metadata and rule set
    (confluentinc/schema-registry, ``client/rest/entities/Schema.java`` ``updateHash``, used by
    ``storage/MD5.java`` ``ofSchema``), so the same text with other rules is another id and version;
    with the same rules again it is the same id and no new version. A registration that sends no rule
    set (or no metadata) takes the latest version's (``KafkaSchemaRegistry.maybeSetMetadataRuleSet``),
    so registering the plain text again does not silently drop the rules."""
    plain = _register(registry.url, subject)
    with_rules = _register(registry.url, subject, ruleSet=RULES)
    assert with_rules != plain
    assert _register(registry.url, subject, ruleSet=RULES) == with_rules
    assert _register(registry.url, subject) == with_rules  # inherited: still the rules version
    other = _register(registry.url, subject, ruleSet={"domainRules": [ENCRYPT, CONDITION]})
    assert other not in (plain, with_rules)
    assert _call(registry.url, "GET", f"/subjects/{subject}/versions") == (200, [1, 2, 3])
    _, first = _call(registry.url, "GET", f"/schemas/ids/{plain}")
    assert "ruleSet" not in first and "metadata" not in first
    # Dropping the rules takes saying so: an empty rule set is a contract without rules.
    emptied = _register(registry.url, subject, ruleSet={})
    assert emptied not in (plain, with_rules, other)
    _, latest = _call(registry.url, "GET", f"/subjects/{subject}/versions/latest")
    assert latest["ruleSet"] == {}


def test_a_lookup_that_sends_a_rule_set_matches_only_that_contract(
    registry: RegistryProcess, subject: str
) -> None:
    with_rules = _register(registry.url, subject, ruleSet=RULES)
    status, found = _call(registry.url, "POST", f"/subjects/{subject}", {"schema": SCHEMA, "ruleSet": RULES})
    assert (status, found["id"]) == (200, with_rules)
    other = {"domainRules": [CONDITION]}
    status, err = _call(registry.url, "POST", f"/subjects/{subject}", {"schema": SCHEMA, "ruleSet": other})
    assert (status, err["error_code"]) == (404, 40403)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"ruleSet": ["ENCRYPT"]}, "ruleSet must be an object"),
        ({"ruleSet": {"domainRules": {"name": "x"}}}, "list of rule objects"),
        ({"ruleSet": {"domainRules": [{"kind": "TRANSFORM"}]}}, "has no name"),
        ({"ruleSet": {"domainRules": [ENCRYPT, ENCRYPT]}}, "duplicate name"),
        ({"ruleSet": {"domainRules": [{**ENCRYPT, "kind": "MAGIC"}]}}, "unknown kind"),
        ({"ruleSet": {"migrationRules": [{**ENCRYPT, "mode": "WRITE"}]}}, "cannot have mode"),
        ({"metadata": "owner=payments"}, "metadata must be an object"),
    ],
)
def test_a_malformed_contract_is_refused_with_42201(
    registry: RegistryProcess, subject: str, extra: dict[str, Any], says: str
) -> None:
    status, err = _call(registry.url, "POST", f"/subjects/{subject}/versions", {"schema": SCHEMA, **extra})
    assert (status, err["error_code"]) == (422, 42201)
    assert says in err["message"]


def test_contracts_survive_a_restart_on_the_same_data_directory(tmp_path: Path) -> None:
    subject = "persisted-value"
    with RegistryProcess(data_dir=tmp_path) as first:
        plain = _register(first.url, subject)
        with_rules = _register(first.url, subject, ruleSet=RULES, metadata=METADATA)
    with RegistryProcess(data_dir=tmp_path) as second:
        _, by_id = _call(second.url, "GET", f"/schemas/ids/{with_rules}")
        assert (by_id["ruleSet"], by_id["metadata"]) == (RULES, METADATA)
        _, first_version = _call(second.url, "GET", f"/schemas/ids/{plain}")
        assert "ruleSet" not in first_version
        # The identities came back too: the same contract is the same id, no new version.
        assert _register(second.url, subject, ruleSet=RULES, metadata=METADATA) == with_rules
        assert _call(second.url, "GET", f"/subjects/{subject}/versions") == (200, [1, 2])

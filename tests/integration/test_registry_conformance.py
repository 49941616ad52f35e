"""Conformance: Confluent's own Python client and Avro serde work against the local registry.

confluent-kafka's `SchemaRegistryClient` is the oracle: if it registers, looks up, lists, fetches,
checks compatibility, reads and sets config, deletes, and its `AvroSerializer`/`AvroDeserializer` round-trip
a record through our server (plain, with basic auth, and over TLS), then clients written for Confluent
Schema Registry can use it unchanged.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.registry import RegistryProcess
from devstack.registry.tls import make_self_signed_cert

schema_registry = pytest.importorskip("confluent_kafka.schema_registry")
avro_serde = pytest.importorskip("confluent_kafka.schema_registry.avro")
serialization = pytest.importorskip("confluent_kafka.serialization")

pytestmark = pytest.mark.integration

Schema = schema_registry.Schema
SchemaRegistryClient = schema_registry.SchemaRegistryClient
SchemaRegistryError = schema_registry.error.SchemaRegistryError

PAYMENT_V1 = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "namespace": "com.acme",
        "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}],
    }
)
PAYMENT_V2 = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "amount", "type": "double"},
            {"name": "currency", "type": "string", "default": "EUR"},
        ],
    }
)
PAYMENT_BAD = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "namespace": "com.acme",
        "fields": [{"name": "id", "type": "long"}],
    }
)


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryProcess]:
    with RegistryProcess() as proc:
        yield proc


@pytest.fixture
def client(registry: RegistryProcess) -> Iterator[Any]:
    with SchemaRegistryClient({"url": registry.url, "timeout": 5}) as sr:
        yield sr


def test_register_lookup_list_and_fetch(client: Any, request: pytest.FixtureRequest) -> None:
    subject = f"{request.node.name}-value"
    first = client.register_schema(subject, Schema(PAYMENT_V1, "AVRO"))
    second = client.register_schema(subject, Schema(PAYMENT_V2, "AVRO"))
    assert first != second
    assert subject in client.get_subjects()
    assert client.get_versions(subject) == [1, 2]

    found = client.lookup_schema(subject, Schema(PAYMENT_V1, "AVRO"))
    assert (found.schema_id, found.subject, found.version) == (first, subject, 1)

    fetched = client.get_schema(second)
    assert fetched.schema_type == "AVRO"
    assert json.loads(fetched.schema_str) == json.loads(PAYMENT_V2)

    v1 = client.get_version(subject, 1)
    assert (v1.schema_id, v1.version, v1.subject) == (first, 1, subject)
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (second, 2)
    assert json.loads(latest.schema.schema_str) == json.loads(PAYMENT_V2)
    assert {"subject": subject, "version": 2} in [
        {"subject": sv.subject, "version": sv.version} for sv in client.get_schema_versions(second)
    ]
    assert "AVRO" in client.get_schema_types()


def test_errors_reach_the_client_with_confluent_codes(client: Any, request: pytest.FixtureRequest) -> None:
    subject = f"{request.node.name}-value"
    client.register_schema(subject, Schema(PAYMENT_V1, "AVRO"))
    with pytest.raises(SchemaRegistryError) as incompatible:
        client.register_schema(subject, Schema(PAYMENT_BAD, "AVRO"))
    assert (incompatible.value.http_status_code, incompatible.value.error_code) == (409, 409)
    with pytest.raises(SchemaRegistryError) as not_there:
        client.lookup_schema(subject, Schema(PAYMENT_V2, "AVRO"))
    assert not_there.value.error_code == 40403
    with pytest.raises(SchemaRegistryError) as no_subject:
        client.get_latest_version(f"{subject}-missing")
    assert no_subject.value.error_code == 40401
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema(subject, Schema('{"type": "nope"}', "AVRO"))
    assert invalid.value.error_code == 42201


def test_compatibility_checks_and_config(client: Any, request: pytest.FixtureRequest) -> None:
    subject = f"{request.node.name}-value"
    client.register_schema(subject, Schema(PAYMENT_V1, "AVRO"))
    assert client.test_compatibility(subject, Schema(PAYMENT_V2, "AVRO")) is True
    assert client.test_compatibility(subject, Schema(PAYMENT_BAD, "AVRO"), version=1) is False
    assert client.test_compatibility_all_versions(subject, Schema(PAYMENT_BAD, "AVRO")) is False

    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(subject_name=subject, level="NONE")
    assert client.get_compatibility(subject) == "NONE"
    assert client.get_config(subject).compatibility_level.value == "NONE"
    assert client.test_compatibility(subject, Schema(PAYMENT_BAD, "AVRO")) is True
    client.register_schema(subject, Schema(PAYMENT_BAD, "AVRO"))
    assert client.get_versions(subject) == [1, 2]
    forward = schema_registry.ConfigCompatibilityLevel.FORWARD
    client.set_config(subject, schema_registry.ServerConfig(compatibility=forward))
    assert client.get_config(subject).compatibility_level == forward
    client.delete_config(subject)
    with pytest.raises(SchemaRegistryError) as no_config:
        client.get_compatibility(subject)
    assert no_config.value.error_code == 40408


def test_global_config(registry: RegistryProcess) -> None:
    with SchemaRegistryClient({"url": registry.url}) as sr:
        assert sr.get_compatibility() == "BACKWARD"
        sr.set_compatibility(level="FULL_TRANSITIVE")
        try:
            assert sr.get_compatibility() == "FULL_TRANSITIVE"
            assert sr.get_config().compatibility_level.value == "FULL_TRANSITIVE"
            with pytest.raises(SchemaRegistryError) as invalid:
                sr.set_compatibility(level="SIDEWAYS")
            assert invalid.value.error_code == 42203
        finally:
            sr.set_compatibility(level="BACKWARD")


def test_deletes(client: Any, request: pytest.FixtureRequest) -> None:
    subject = f"{request.node.name}-value"
    client.register_schema(subject, Schema(PAYMENT_V1, "AVRO"))
    client.register_schema(subject, Schema(PAYMENT_V2, "AVRO"))
    assert client.delete_version(subject, 1) == 1
    assert client.get_versions(subject) == [2]
    assert client.delete_version(subject, 1, permanent=True) == 1
    assert client.delete_subject(subject) == [2]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    assert client.delete_subject(subject, permanent=True) == [2]
    assert subject not in client.get_subjects(deleted=True)


def round_trip(client: Any, topic: str) -> tuple[bytes, Any]:
    """Serialize a Payment with Confluent's AvroSerializer (auto-register) and read it back."""
    ctx = serialization.SerializationContext(topic, serialization.MessageField.VALUE)
    serializer = avro_serde.AvroSerializer(client, PAYMENT_V2, conf={"auto.register.schemas": True})
    deserializer = avro_serde.AvroDeserializer(client)
    record = {"id": "p-1", "amount": 12.5, "currency": "SEK"}
    data = serializer(record, ctx)
    assert deserializer(data, ctx) == record
    return data, ctx


def test_avro_serde_round_trip_through_the_registry(registry: RegistryProcess, client: Any) -> None:
    data, _ = round_trip(client, "payments")
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    assert client.get_latest_version("payments-value").schema_id == schema_id
    # A fresh client (no cache) decodes the frame purely from what the server serves.
    with SchemaRegistryClient({"url": registry.url}) as fresh:
        ctx = serialization.SerializationContext("payments", serialization.MessageField.VALUE)
        decoded = avro_serde.AvroDeserializer(fresh)(data, ctx)
    assert decoded == {"id": "p-1", "amount": 12.5, "currency": "SEK"}


def test_serde_with_use_latest_version_reads_what_the_server_serves(client: Any) -> None:
    client.register_schema("latest-only-value", Schema(PAYMENT_V1, "AVRO"))
    ctx = serialization.SerializationContext("latest-only", serialization.MessageField.VALUE)
    serializer = avro_serde.AvroSerializer(
        client, None, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    data = serializer({"id": "x", "amount": 1.0}, ctx)
    assert avro_serde.AvroDeserializer(client)(data, ctx) == {"id": "x", "amount": 1.0}


def test_basic_auth_with_confluent_client() -> None:
    with RegistryProcess(basic_auth=("alice", "w0nderland")) as proc:
        with SchemaRegistryClient({"url": proc.url, "basic.auth.user.info": "alice:w0nderland"}) as sr:
            round_trip(sr, "secured")
        with SchemaRegistryClient({"url": proc.url, "basic.auth.user.info": "alice:wrong"}) as bad:
            with pytest.raises(SchemaRegistryError) as denied:
                bad.get_subjects()
            assert denied.value.http_status_code == 401


def test_tls_with_confluent_client(tmp_path: Path) -> None:
    cert, key = make_self_signed_cert(tmp_path)
    with RegistryProcess(certfile=cert, keyfile=key) as proc:
        assert proc.url.startswith("https://")
        with SchemaRegistryClient({"url": proc.url, "ssl.ca.location": str(cert)}) as sr:
            round_trip(sr, "encrypted")
            assert sr.get_subjects() == ["encrypted-value"]


def test_compatibility_against_a_subject_that_does_not_exist(
    client: Any, request: pytest.FixtureRequest
) -> None:
    """As Confluent Schema Registry 7.x answers it (since confluentinc/schema-registry#1533, reported
    in #2624 for 7.2.1 and 7.3.3; `CompatibilityResource` on master still does this): a check against
    the latest version, or against all versions, of a subject that does not exist is compatible, since
    nothing registered can conflict; a check against a numbered version of it is 40402 (version not
    found). Confluent 5.x answered 40401 instead; the API reference still lists 40401."""
    missing = f"{request.node.name}-never-registered-value"
    assert client.test_compatibility(missing, Schema(PAYMENT_V1, "AVRO")) is True
    assert client.test_compatibility(missing, Schema(PAYMENT_V1, "AVRO"), verbose=True) is True
    assert client.test_compatibility_all_versions(missing, Schema(PAYMENT_BAD, "AVRO")) is True
    with pytest.raises(SchemaRegistryError) as numbered:
        client.test_compatibility(missing, Schema(PAYMENT_V1, "AVRO"), version=1)
    assert (numbered.value.http_status_code, numbered.value.error_code) == (404, 40402)
    assert missing not in client.get_subjects()  # checking registers nothing


def with_extras(schema: str, **extras: Any) -> str:
    parsed = json.loads(schema)
    parsed.update(extras)
    return json.dumps(parsed)


def test_doc_and_extra_properties_make_a_different_schema(
    client: Any, request: pytest.FixtureRequest
) -> None:
    """Confluent keys a schema on Avro's own rendering of it (``Schema.toString()``), which keeps `doc`
    and every extra property (Kafka Connect's ``connect.name``, ``connect.version`` ...): a schema that
    differs only there gets a new id and a new version. Whitespace and key order do not count."""
    subject = f"{request.node.name}-value"
    plain = client.register_schema(subject, Schema(PAYMENT_V1, "AVRO"))
    reordered = json.dumps(dict(reversed(list(json.loads(PAYMENT_V1).items()))), indent=3)
    assert client.register_schema(f"{subject}-b", Schema(reordered, "AVRO")) == plain
    documented = client.register_schema(subject, Schema(with_extras(PAYMENT_V1, doc="A payment"), "AVRO"))
    connect = client.register_schema(
        subject, Schema(with_extras(PAYMENT_V1, **{"connect.name": "com.acme.Payment"}), "AVRO")
    )
    fields = json.loads(PAYMENT_V1)
    fields["fields"][1]["doc"] = "in cents"
    field_doc = client.register_schema(subject, Schema(json.dumps(fields), "AVRO"))
    typed = json.loads(PAYMENT_V1)
    typed["fields"][0]["type"] = {"type": "string", "avro.java.string": "String"}
    type_prop = client.register_schema(subject, Schema(json.dumps(typed), "AVRO"))
    ids = [plain, documented, connect, field_doc, type_prop]
    assert len(set(ids)) == len(ids), ids
    assert client.get_versions(subject) == [1, 2, 3, 4, 5]
    fetched = json.loads(client.get_schema(connect).schema_str)
    assert fetched["connect.name"] == "com.acme.Payment"  # served as registered
    found = client.lookup_schema(subject, Schema(with_extras(PAYMENT_V1, doc="A payment"), "AVRO"))
    assert (found.schema_id, found.version) == (documented, 2)


def _encrypt_rule() -> Any:
    return schema_registry.Rule(
        name="encrypt_ssn",
        doc=None,
        kind=schema_registry.RuleKind.TRANSFORM,
        mode=schema_registry.RuleMode.WRITEREAD,
        type="ENCRYPT",
        tags=["PII"],
        params=schema_registry.RuleParams({"encrypt.kek.name": "kek1", "encrypt.kms.type": "local-kms"}),
        expr=None,
        on_success=None,
        on_failure="ERROR,NONE",
        disabled=False,
    )


def test_a_rule_set_and_metadata_registered_by_confluents_client_come_back_intact(
    registry: RegistryProcess, request: pytest.FixtureRequest
) -> None:
    """confluent-kafka's data-contract classes (`RuleSet`, `Rule`, `Metadata`) round-trip through the
    registry: by id (a fresh client, so nothing is served from its cache) and as the latest version; a
    lookup that sends only the schema text finds that version (the client answers a lookup with the
    schema it was given, so its rules are not checked there). avroflow's client reads the same rules."""
    subject = f"{request.node.name}-value"
    rule_set = schema_registry.RuleSet(migration_rules=[], domain_rules=[_encrypt_rule()])
    metadata = schema_registry.Metadata(
        tags=None, properties=schema_registry.MetadataProperties({"owner": "payments"}), sensitive=["id"]
    )
    with SchemaRegistryClient({"url": registry.url, "timeout": 5}) as writer:
        schema_id = writer.register_schema(
            subject, Schema(PAYMENT_V1, "AVRO", metadata=metadata, rule_set=rule_set)
        )
    with SchemaRegistryClient({"url": registry.url, "timeout": 5}) as reader:
        by_id = reader.get_schema(schema_id)
        latest = reader.get_latest_version(subject)
        found = reader.lookup_schema(subject, Schema(PAYMENT_V1, "AVRO"))
        plain_id = reader.register_schema(f"{subject}-plain", Schema(PAYMENT_V1, "AVRO"))
    for schema in (by_id, latest.schema):
        assert schema.rule_set is not None
        assert schema.rule_set.domain_rules == [_encrypt_rule()]
        assert not schema.rule_set.migration_rules
        assert schema.metadata is not None
        assert schema.metadata.properties.properties == {"owner": "payments"}
        assert schema.metadata.sensitive == ["id"]
    assert (latest.schema_id, found.schema_id, found.version) == (schema_id, schema_id, 1)
    assert plain_id != schema_id  # the same text without the contract is another schema

    from registry_codecs import RegistryClient

    with RegistryClient(registry.url, max_retries=0) as ours:
        rules = ours.get_schema(schema_id).rules
    assert [(r.group, r.name, r.kind, r.type, r.mode, r.tags) for r in rules] == [
        ("domainRules", "encrypt_ssn", "TRANSFORM", "ENCRYPT", "WRITEREAD", ("PII",))
    ]

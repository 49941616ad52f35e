"""RegistryClient against the project's real local registry (`devstack.registry`), a subprocess on loopback.

The happy paths of every endpoint, the error codes a real registry gives, schema references resolved so a
schema using a named type from another subject parses, the latest-version TTL, basic and bearer auth, and
TLS with a CA bundle.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from prometheus_client import CollectorRegistry
from registry_fakes import Reply, ScriptedRegistry

from devstack.registry.process import RegistryProcess
from registry_codecs.errors import (
    IncompatibleSchema,
    InvalidSchema,
    RegistryAuthError,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from registry_codecs.metrics import CodecMetrics
from registry_codecs.registry import CompatibilityResult, RegistryClient
from registry_codecs.schemas import SchemaReference

pytestmark = pytest.mark.integration

SECRET = "reg-pw-5ce1"


def record(name: str, *fields: tuple[str, Any], namespace: str = "com.acme") -> str:
    spec = [
        {"name": n, "type": t} if t != "opt" else {"name": n, "type": ["null", "string"], "default": None}
        for n, t in fields
    ]
    return json.dumps({"type": "record", "name": name, "namespace": namespace, "fields": spec})


V1 = record("User", ("id", "long"))
V2 = record("User", ("id", "long"), ("email", "opt"))  # backward compatible: the new field has a default
V2_BREAKING = record("User", ("id", "long"), ("email", "string"))  # no default: not backward compatible


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def subject(unique_name: str) -> str:
    return unique_name


@pytest.fixture
def client(registry_url: str) -> Iterator[RegistryClient]:
    with RegistryClient(registry_url, connect_timeout=2, read_timeout=5, max_retries=0) as made:
        yield made


def test_register_then_read_back_every_way(client: RegistryClient, subject: str) -> None:
    first = client.register(subject, V1)
    second = client.register(subject, V2)
    assert first != second
    assert client.register(subject, V1) == first  # idempotent

    by_id = client.get_schema(second)
    assert (by_id.schema_id, by_id.schema_type, by_id.subject, by_id.version) == (second, "AVRO", None, None)
    assert fastavro.parse_schema(json.loads(by_id.schema_str))["name"] == "com.acme.User"

    latest = client.get_latest(subject)
    assert (latest.schema_id, latest.subject, latest.version) == (second, subject, 2)
    assert client.get_version(subject, 1).schema_id == first
    assert client.get_version(subject, "latest").version == 2
    assert client.get_versions(subject) == [1, 2]
    assert subject in client.get_subjects()

    found = client.lookup(subject, V1)
    assert (found.schema_id, found.version, found.subject) == (first, 1, subject)


def test_subject_names_that_need_quoting(client: RegistryClient, subject: str) -> None:
    odd = f"{subject}/com.acme:User value"
    schema_id = client.register(odd, V1)
    assert client.get_latest(odd).schema_id == schema_id
    assert client.get_versions(odd) == [1]


def test_registered_ids_are_cached(registry_url: str, subject: str) -> None:
    collector = CollectorRegistry()
    with RegistryClient(registry_url, metrics=CodecMetrics.create(collector)) as client:
        ids = {client.register(subject, V1) for _ in range(5)}
    assert len(ids) == 1
    labels = {"endpoint": "register", "outcome": "ok"}
    assert collector.get_sample_value("avroflow_registry_requests_total", labels) == 1


def test_not_found_errors_carry_confluent_codes(client: RegistryClient, subject: str) -> None:
    client.register(subject, V1)
    with pytest.raises(SchemaNotFound) as schema:
        client.get_schema(2_000_000_000)
    with pytest.raises(SubjectNotFound) as missing:
        client.get_latest(f"{subject}-missing")
    with pytest.raises(VersionNotFound) as version:
        client.get_version(subject, 7)
    with pytest.raises(SchemaNotFound) as lookup:
        client.lookup(subject, V2)
    with pytest.raises(SubjectNotFound):
        client.get_versions(f"{subject}-missing")
    assert [e.value.error_code for e in (schema, missing, version, lookup)] == [40403, 40401, 40402, 40403]
    assert all(isinstance(e.value, LookupError) for e in (schema, missing, version, lookup))


def test_incompatible_and_invalid_schemas(client: RegistryClient, subject: str) -> None:
    client.register(subject, V1)
    assert client.get_compatibility(subject) == "BACKWARD"  # the global default applies
    with pytest.raises(IncompatibleSchema) as incompatible:
        client.register(subject, V2_BREAKING)
    assert incompatible.value.status_code == 409
    with pytest.raises(InvalidSchema) as invalid:
        client.register(subject, '{"type": "record", "name": "Broken"')
    assert invalid.value.error_code == 42201


def test_compatibility_checks(client: RegistryClient, subject: str) -> None:
    client.register(subject, V1)
    assert client.test_compatibility(subject, V2) == CompatibilityResult(True, ())
    verdict = client.test_compatibility(subject, V2_BREAKING, version=1, verbose=True)
    assert not verdict
    assert verdict.messages  # verbose answers say why
    # As Confluent 7.x: nothing is registered under a missing subject, so nothing conflicts.
    assert client.test_compatibility(f"{subject}-missing", V2_BREAKING) == CompatibilityResult(True, ())
    with pytest.raises(VersionNotFound):
        client.test_compatibility(f"{subject}-missing", V2, version=1)


def test_subject_compatibility_config(client: RegistryClient, subject: str) -> None:
    client.register(subject, V1)
    assert client.set_compatibility("none", subject) == "NONE"
    assert client.get_compatibility(subject) == "NONE"
    assert client.register(subject, V2_BREAKING) > 0  # NONE lets it through
    with pytest.raises(InvalidSchema):
        client.set_compatibility("SOMETIMES", subject)


def test_global_compatibility_config() -> None:
    # A registry of our own: changing the global level must not leak into other tests.
    with RegistryProcess() as process, RegistryClient(process.url) as client:
        assert client.get_compatibility() == "BACKWARD"
        assert client.set_compatibility("FULL_TRANSITIVE") == "FULL_TRANSITIVE"
        assert client.get_compatibility() == "FULL_TRANSITIVE"
        assert client.get_compatibility("no-config-here") == "FULL_TRANSITIVE"
        client.ping()


def test_references_are_resolved_dependencies_first(client: RegistryClient, subject: str) -> None:
    currency = json.dumps(
        {"type": "enum", "name": "Currency", "namespace": "com.acme", "symbols": ["EUR", "USD"]}
    )
    money = record("Money", ("amount", "long"), ("currency", "com.acme.Currency"))
    order = record("Order", ("id", "long"), ("price", "com.acme.Money"), ("fee", "com.acme.Money"))
    client.register(f"{subject}-currency", currency)
    money_refs = (SchemaReference("com.acme.Currency", f"{subject}-currency", 1),)
    client.register(f"{subject}-money", money, references=money_refs)
    order_refs = (SchemaReference("com.acme.Money", f"{subject}-money", 1),)
    order_id = client.register(subject, order, references=order_refs)

    for schema in (
        client.get_schema(order_id),
        client.get_latest(subject),
        client.lookup(subject, order, references=order_refs),
    ):
        assert schema.references == order_refs
        assert [name for name, _ in schema.resolved_references] == ["com.acme.Currency", "com.acme.Money"]
        # A parser that defines the named types first, in the given order, parses the schema.
        named: dict[str, Any] = {}
        for _, text in schema.resolved_references:
            fastavro.parse_schema(json.loads(text), named_schemas=named)
        parsed = fastavro.parse_schema(json.loads(schema.schema_str), named_schemas=named)
        assert parsed["name"] == "com.acme.Order"


def test_latest_ttl_against_a_real_registry(registry_url: str, subject: str) -> None:
    clock = FakeClock()
    with (
        RegistryClient(registry_url, latest_ttl=30.0, clock=clock) as reader,
        RegistryClient(registry_url) as writer,
    ):
        writer.register(subject, V1)
        assert reader.get_latest(subject).version == 1
        writer.register(subject, V2)
        clock.now += 29.0
        assert reader.get_latest(subject).version == 1  # not before the TTL
        clock.now += 1.0
        assert reader.get_latest(subject).version == 2  # seen after it, without a restart


def test_own_registration_refreshes_latest(client: RegistryClient, subject: str) -> None:
    client.register(subject, V1)
    assert client.get_latest(subject).version == 1
    client.register(subject, V2)
    assert client.get_latest(subject).version == 2


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_auth_against_a_registry_that_requires_it(mode: str) -> None:
    auth: dict[str, Any] = {"basic_auth": ("alice", SECRET)} if mode == "basic" else {"bearer_token": SECRET}
    with RegistryProcess(**auth) as process:
        with RegistryClient(process.url, **auth) as client:
            assert client.register("s-value", V1) > 0
            client.ping()
        if mode == "basic":
            host = process.url.removeprefix("http://")
            with RegistryClient(f"http://alice:{SECRET}@{host}") as client:
                assert client.get_subjects() == ["s-value"]
        wrong: dict[str, Any] = (
            {"basic_auth": ("alice", "nope")} if mode == "basic" else {"bearer_token": "nope"}
        )
        for options in (wrong, {}):
            with RegistryClient(process.url, **options) as client, pytest.raises(RegistryAuthError) as info:
                client.get_subjects()
            assert info.value.status_code == 401
            assert SECRET not in str(info.value)


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"), "server")


def test_tls_with_a_ca_bundle(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    with RegistryProcess(certfile=cert, keyfile=key) as process:
        assert process.url.startswith("https://")
        with RegistryClient(process.url, ca_file=str(cert)) as client:
            assert client.register("s-value", V1) > 0
        # Without the CA the certificate is not trusted: no answer, reported as unavailable.
        with RegistryClient(process.url, max_retries=0) as client, pytest.raises(RegistryUnavailable) as info:
            client.get_subjects()
        assert "SSL" in str(info.value) or "certificate" in str(info.value)


def test_tls_client_certificate(tls_files: tuple[Path, Path], tmp_path: Path) -> None:
    # The local registry does not ask for client certificates; a scripted TLS server that requires one does.
    server_cert, server_key = tls_files
    client_cert, client_key = self_signed(tmp_path, "client")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_cert)
    with ScriptedRegistry(tls=context) as server:
        server.on("GET", "/subjects", Reply(200, ["s-value"]))
        options: dict[str, Any] = {"ca_file": str(server_cert), "max_retries": 0}
        with RegistryClient(
            server.url, cert_file=str(client_cert), key_file=str(client_key), **options
        ) as client:
            assert client.get_subjects() == ["s-value"]
        with RegistryClient(server.url, **options) as client, pytest.raises(RegistryUnavailable):
            client.get_subjects()
        assert server.count() == 1  # the request without a certificate never got through

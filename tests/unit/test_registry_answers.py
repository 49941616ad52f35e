"""Reading registry answers: error mapping from (status, body, endpoint), and the success-body dialects."""

from __future__ import annotations

import json

import pytest

from registry_codecs.errors import (
    IncompatibleSchema,
    InvalidSchema,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from registry_codecs.registry_answers import (
    compatibility_level,
    compatibility_verdict,
    error_class_for,
    outcome_for,
    parse_error_body,
    parse_schema_answer,
    schema_body,
)
from registry_codecs.schemas import SchemaReference


def _confluent(code: int, message: str = "m") -> str:
    return json.dumps({"error_code": code, "message": message})


@pytest.mark.parametrize(
    ("status", "body", "endpoint", "expected"),
    [
        # Confluent / Karapace JSON bodies: the error code decides.
        (404, _confluent(40401), "subject_version", SubjectNotFound),
        (404, _confluent(40402), "subject_version", VersionNotFound),
        (404, _confluent(40403), "schema_by_id", SchemaNotFound),
        (404, _confluent(40403), "lookup", SchemaNotFound),
        (404, _confluent(40404), "versions", SubjectNotFound),
        (409, _confluent(409), "register", IncompatibleSchema),
        (422, _confluent(42201), "register", InvalidSchema),
        (422, _confluent(42203), "config", InvalidSchema),
        (422, "Unprocessable Entity", "register", InvalidSchema),
        (500, _confluent(50001), "register", RegistryUnavailable),
        (500, _confluent(50003), "register", RegistryUnavailable),
        (503, "Service Unavailable", "schema_by_id", RegistryUnavailable),
        (502, "<html>bad gateway</html>", "schema_by_id", RegistryUnavailable),
        (408, "", "schema_by_id", RegistryUnavailable),
        (429, _confluent(429), "schema_by_id", RegistryUnavailable),
        (401, _confluent(40101), "schema_by_id", RegistryAuthError),
        (403, "Forbidden", "register", RegistryAuthError),
        # Karapace's plain-text 404s: the endpoint decides.
        (404, "404: Not Found", "schema_by_id", SchemaNotFound),
        (404, "Not Found", "subject_version", SubjectNotFound),
        (404, "Not Found", "versions", SubjectNotFound),
        (404, _confluent(404, "HTTP 404 Not Found"), "schema_by_id", SchemaNotFound),
        (404, "Not Found", "subjects", RegistryError),
        # 40408 "no subject-level config" is not a missing subject.
        (404, _confluent(40408), "config", RegistryError),
        (400, _confluent(400), "register", RegistryError),
    ],
)
def test_error_class_for(status: int, body: str, endpoint: str, expected: type[RegistryError]) -> None:
    code, _ = parse_error_body(body)
    assert error_class_for(status, code, endpoint) is expected


def test_parse_error_body_shapes() -> None:
    assert parse_error_body(_confluent(40403, "Schema 7 not found")) == (40403, "Schema 7 not found")
    assert parse_error_body('{"error_code": "50003", "message": "x"}') == (50003, "x")
    assert parse_error_body("404: Not Found\n") == (None, "404: Not Found")
    assert parse_error_body("") == (None, "")
    assert parse_error_body("[1, 2]") == (None, "[1, 2]")
    assert parse_error_body('{"error_code": true}')[0] is None
    code, message = parse_error_body("x" * 5000)
    assert code is None
    assert len(message) <= 300


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (None, "unavailable"),
        (200, "ok"),
        (404, "not_found"),
        (409, "client_error"),
        (422, "client_error"),
        (429, "unavailable"),
        (408, "unavailable"),
        (500, "server_error"),
        (503, "server_error"),
    ],
)
def test_outcome_label(status: int | None, outcome: str) -> None:
    assert outcome_for(status) == outcome


def test_schema_answer_without_schema_type_is_avro() -> None:
    schema = parse_schema_answer({"schema": '"string"'}, "schema_by_id", schema_id=7)
    assert (schema.schema_id, schema.schema_str, schema.schema_type) == (7, '"string"', "AVRO")
    assert (schema.subject, schema.version, schema.references) == (None, None, ())


def test_subject_answer_carries_id_subject_version_and_references() -> None:
    answer = {
        "subject": "orders-value",
        "version": 3,
        "id": 21,
        "schemaType": "AVRO",
        "schema": '{"type": "record", "name": "Order", "fields": []}',
        "references": [{"name": "com.acme.Money", "subject": "money", "version": 2}],
    }
    schema = parse_schema_answer(answer, "subject_version", subject="ignored-when-answered")
    assert (schema.schema_id, schema.subject, schema.version) == (21, "orders-value", 3)
    assert schema.references == (SchemaReference("com.acme.Money", "money", 2),)


def test_lookup_answer_without_subject_takes_the_requested_one() -> None:
    schema = parse_schema_answer({"id": 4, "version": 1, "schema": "{}"}, "lookup", subject="s")
    assert (schema.subject, schema.schema_id, schema.version) == ("s", 4, 1)


@pytest.mark.parametrize(
    "answer",
    [
        {"id": 1},
        {"schema": 5, "id": 1},
        {"schema": "{}", "id": "1"},
        {"schema": "{}", "id": True},
        {"schema": "{}", "id": 1, "references": "money"},
        {"schema": "{}", "id": 1, "references": [{"name": "x", "subject": "s"}]},
        ["not", "a", "dict"],
    ],
)
def test_malformed_schema_answers_raise_registry_error(answer: object) -> None:
    with pytest.raises(RegistryError, match="subject_version"):
        parse_schema_answer(answer, "subject_version")


def test_compatibility_level_accepts_both_keys() -> None:
    assert compatibility_level({"compatibilityLevel": "BACKWARD"}) == "BACKWARD"
    assert compatibility_level({"compatibility": "FULL"}) == "FULL"
    with pytest.raises(RegistryError):
        compatibility_level({})


def test_compatibility_verdict() -> None:
    assert compatibility_verdict({"is_compatible": True}) == (True, ())
    assert compatibility_verdict({"is_compatible": False, "messages": ["a", {"b": 1}]}) == (
        False,
        ("a", "{'b': 1}"),
    )
    assert compatibility_verdict({"isCompatible": False}) == (False, ())
    with pytest.raises(RegistryError):
        compatibility_verdict({"is_compatible": "yes"})


def test_schema_body_omits_defaults() -> None:
    assert schema_body('"int"', "AVRO", ()) == {"schema": '"int"'}
    ref = SchemaReference("com.acme.Money", "money", 2)
    assert schema_body("{}", "json", (ref,)) == {
        "schema": "{}",
        "schemaType": "JSON",
        "references": [{"name": "com.acme.Money", "subject": "money", "version": 2}],
    }

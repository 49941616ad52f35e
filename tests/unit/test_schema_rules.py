"""Data-contract rules (Confluent's ``ruleSet``): read from registry answers, and never ignored silently.

avroflow does not execute CEL conditions, migrations or field-level encryption, so a schema carrying any
enabled rule is refused wherever it would be used to encode or decode (`parse_registered`), with a message
naming the rules, and a typed, permanent error whose reason is ``schema_rules_unsupported``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry_codecs import (
    AvroDeserializer,
    AvroSerializer,
    CodecError,
    RegisteredSchema,
    SchemaRule,
    SchemaRulesNotSupported,
    frame,
)
from registry_codecs.avro import parse_registered
from registry_codecs.errors import RegistryError, SubjectNotFound
from registry_codecs.registry_answers import parse_schema_answer

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
    "params": {"encrypt.kek.name": "kek1", "encrypt.kms.type": "local-kms"},
    "onFailure": "ERROR,NONE",
}
CONDITION = {
    "name": "check_amount",
    "kind": "CONDITION",
    "mode": "WRITE",
    "type": "CEL",
    "expr": "message.amount < 1000",
    "onFailure": "DLQ",
}
MIGRATION = {
    "name": "rename_total",
    "kind": "TRANSFORM",
    "mode": "UPGRADE",
    "type": "JSONATA",
    "expr": "$merge([$sift($, function($v, $k) {$k != 'total'}), {'amount': $.'total'}])",
}


def _answer(rule_set: Any = None, **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"schema": SCHEMA, **extra}
    if rule_set is not None:
        answer["ruleSet"] = rule_set
    return answer


def _registered(rule_set: Any) -> RegisteredSchema:
    return parse_schema_answer(_answer(rule_set), "schema_by_id", schema_id=12)


# ----- reading the answer -------------------------------------------------------------------------------


def test_rules_of_every_group_are_read_with_their_fields() -> None:
    schema = parse_schema_answer(
        _answer(
            {"domainRules": [ENCRYPT, CONDITION], "migrationRules": [MIGRATION]},
            metadata={"properties": {"owner": "payments"}, "sensitive": ["ssn"]},
            id=12,
            subject="customers-value",
            version=3,
        ),
        "subject_version",
    )
    assert [(r.group, r.name, r.kind, r.type, r.mode) for r in schema.rules] == [
        ("migrationRules", "rename_total", "TRANSFORM", "JSONATA", "UPGRADE"),
        ("domainRules", "encrypt_ssn", "TRANSFORM", "ENCRYPT", "WRITEREAD"),
        ("domainRules", "check_amount", "CONDITION", "CEL", "WRITE"),
    ]
    encrypt = schema.rules[1]
    assert encrypt.tags == ("PII",)
    assert dict(encrypt.params) == {"encrypt.kek.name": "kek1", "encrypt.kms.type": "local-kms"}
    assert encrypt.on_failure == "ERROR,NONE"
    assert schema.rules[2].expr == "message.amount < 1000"
    assert schema.metadata == {"properties": {"owner": "payments"}, "sensitive": ["ssn"]}


def test_encoding_rules_of_newer_registries_are_rules_too() -> None:
    schema = _registered({"encodingRules": [{**ENCRYPT, "name": "encrypt_payload"}]})
    assert [(r.group, r.name) for r in schema.rules] == [("encodingRules", "encrypt_payload")]


@pytest.mark.parametrize(
    "rule_set",
    [
        {},
        {"domainRules": [], "migrationRules": []},
        {"domainRules": None, "migrationRules": None, "encodingRules": None},
        {"enableAt": "2026-01-01T00:00:00Z"},
    ],
    ids=["empty-object", "empty-lists", "null-lists", "no-rules-only-enable-at"],
)
def test_an_empty_rule_set_is_no_rules(rule_set: dict[str, Any]) -> None:
    schema = _registered(rule_set)
    assert schema.rules == ()
    assert parse_registered(schema)["name"] == "Customer"


def test_an_answer_without_rule_set_or_metadata_has_none() -> None:
    schema = parse_schema_answer(_answer(), "schema_by_id", schema_id=1)
    assert schema.rules == ()
    assert schema.metadata is None


@pytest.mark.parametrize(
    "answer",
    [
        _answer(["not", "an", "object"]),
        _answer({"domainRules": {"name": "x"}}),
        _answer({"domainRules": ["ENCRYPT"]}),
        _answer(metadata="owner=payments"),
    ],
    ids=["rule-set-list", "group-object", "rule-string", "metadata-string"],
)
def test_rules_that_cannot_be_read_are_a_registry_error_not_no_rules(answer: dict[str, Any]) -> None:
    with pytest.raises(RegistryError, match=r"ruleSet|domainRules|metadata"):
        parse_schema_answer(answer, "schema_by_id", schema_id=1)


# ----- refusing schemas with rules -----------------------------------------------------------------------


def test_a_schema_with_rules_is_refused_naming_each_rule() -> None:
    with pytest.raises(SchemaRulesNotSupported) as caught:
        parse_registered(_registered({"domainRules": [ENCRYPT, CONDITION], "migrationRules": [MIGRATION]}))
    error = caught.value
    assert str(error) == (
        "schema id 12 carries data-contract rules avroflow does not execute: "
        "migrationRules TRANSFORM JSONATA UPGRADE (rename_total), "
        "domainRules TRANSFORM ENCRYPT WRITEREAD (encrypt_ssn), "
        "domainRules CONDITION CEL WRITE (check_amount)"
    )
    assert error.reason == "schema_rules_unsupported"
    assert error.schema_id == 12
    assert not error.retriable
    assert isinstance(error, CodecError)
    assert [rule.name for rule in error.rules if isinstance(rule, SchemaRule)] == [
        "rename_total",
        "encrypt_ssn",
        "check_amount",
    ]


def test_disabled_rules_do_not_count_as_confluents_clients_skip_them() -> None:
    """A rule with ``"disabled": true`` is skipped by Confluent's serdes (confluent_kafka
    ``schema_registry/_sync/serde.py`` ``_is_disabled``, unless a client-side RuleOverride enables it):
    reading such a schema as if the rule were absent is what they do. An enabled rule beside it still
    refuses the schema, and only the enabled one is named."""
    only_disabled = _registered({"domainRules": [{**ENCRYPT, "disabled": True}]})
    assert parse_registered(only_disabled)["name"] == "Customer"

    mixed = _registered({"domainRules": [{**ENCRYPT, "disabled": True}, CONDITION]})
    with pytest.raises(SchemaRulesNotSupported, match=r"CEL WRITE \(check_amount\)$") as caught:
        parse_registered(mixed)
    assert "encrypt_ssn" not in str(caught.value)


@pytest.mark.parametrize("flag", ["true", 1, None, False])
def test_only_a_json_true_disables_a_rule(flag: Any) -> None:
    with pytest.raises(SchemaRulesNotSupported, match="encrypt_ssn"):
        parse_registered(_registered({"domainRules": [{**ENCRYPT, "disabled": flag}]}))


def test_a_refusal_names_at_most_eight_rules_and_cuts_hostile_names() -> None:
    rules = [{**CONDITION, "name": f"rule{i}"} for i in range(10)]
    rules[0]["name"] = "evil\nname" + "x" * 500
    with pytest.raises(SchemaRulesNotSupported) as caught:
        parse_registered(_registered({"domainRules": rules}))
    message = str(caught.value)
    assert "\n" not in message
    assert "evil?name" in message
    assert len(message) < 1000
    assert message.endswith("(rule7), and 2 more")


def test_the_deserializer_refuses_a_frame_written_with_a_rules_schema() -> None:
    lookup = _Lookup(_registered({"domainRules": [ENCRYPT]}))
    body = b"\x16123-45-6789\x0a"  # {"ssn": "123-45-6789", "amount": 5}, unencrypted
    with pytest.raises(SchemaRulesNotSupported, match="encrypt_ssn"):
        AvroDeserializer(lookup).decode(frame(12, body))


def test_the_serializer_refuses_a_subject_whose_latest_schema_has_rules() -> None:
    lookup = _Lookup(_registered({"domainRules": [ENCRYPT]}))
    with pytest.raises(SchemaRulesNotSupported, match=r"schema id 12 .* ENCRYPT"):
        AvroSerializer(lookup, "customers-value").encode({"ssn": "123-45-6789", "amount": 5})


class _Lookup:
    """One schema, served by id and as the latest of any subject (a SchemaLookup, no network)."""

    def __init__(self, schema: RegisteredSchema) -> None:
        self.schema = schema

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        return self.schema

    def get_latest(self, subject: str) -> RegisteredSchema:
        return self.schema

    def register(self, subject: str, schema_str: str, schema_type: str = "AVRO", references: Any = ()) -> int:
        raise SubjectNotFound("not here")


def test_the_faust_codec_refuses_the_same_way() -> None:
    from registry_codecs.faust_codec import ConfluentAvroCodec

    codec = ConfluentAvroCodec(lookup=_Lookup(_registered({"domainRules": [ENCRYPT]})), topic="customers")
    with pytest.raises(SchemaRulesNotSupported, match="encrypt_ssn"):
        codec.loads(frame(12, b"\x16123-45-6789\x0a"))
    with pytest.raises(SchemaRulesNotSupported, match="encrypt_ssn"):
        codec.dumps({"ssn": "123-45-6789", "amount": 5})

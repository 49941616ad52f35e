"""Reading the registry's answers: success bodies into value objects, error answers into typed errors.

The dialects differ in small ways and all are accepted: a missing ``schemaType`` means AVRO; subject
endpoints include ``id``, ``subject`` and ``version`` and ``/schemas/ids`` does not; config reads answer
``compatibilityLevel`` where writes and newer servers answer ``compatibility``. Error bodies are
Confluent's ``{"error_code", "message"}`` or, from Karapace and proxies, plain text; the status code, the
error code and the endpoint together choose the exception class.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

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
from registry_codecs.schemas import RULE_GROUPS, RegisteredSchema, SchemaReference, SchemaRule

RETRIABLE_STATUSES = frozenset({408, 429})
#: Confluent's "backend store error", "operation timed out" and "error forwarding to the leader".
RETRIABLE_ERROR_CODES = frozenset({50001, 50002, 50003})
_MAX_MESSAGE = 300

_NOT_FOUND_BY_CODE: Mapping[int, type[RegistryError]] = {
    40401: SubjectNotFound,
    40404: SubjectNotFound,  # subject soft-deleted
    40402: VersionNotFound,
    40406: VersionNotFound,  # version soft-deleted
    40403: SchemaNotFound,
}
#: What a 404 without a Confluent error code (Karapace's plain "Not Found") means on each endpoint. On
#: subject-scoped endpoints the answer cannot tell a missing subject from a missing version; the subject
#: is the likelier and the more useful guess (callers that care catch `LookupError`, a base of both).
_PLAIN_404_BY_ENDPOINT: Mapping[str, type[RegistryError]] = {
    "schema_by_id": SchemaNotFound,
    "subject_version": SubjectNotFound,
    "versions": SubjectNotFound,
    "lookup": SubjectNotFound,
    "compatibility": SubjectNotFound,
    "config": SubjectNotFound,
}


def parse_error_body(body: str) -> tuple[int | None, str]:
    """Return ``(error_code, message)`` from a Confluent JSON error body, or ``(None, text)`` otherwise."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None, " ".join(body.split())[:_MAX_MESSAGE]
    if not isinstance(parsed, dict):
        return None, " ".join(body.split())[:_MAX_MESSAGE]
    code = parsed.get("error_code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    message = parsed.get("message")
    text = message if isinstance(message, str) else json.dumps(parsed)
    return (code if isinstance(code, int) and not isinstance(code, bool) else None), text[:_MAX_MESSAGE]


def error_class_for(status: int, error_code: int | None, endpoint: str) -> type[RegistryError]:
    """Map an error answer to its exception class: by status, then Confluent code, then endpoint."""
    if status in (401, 403):
        return RegistryAuthError
    if status in RETRIABLE_STATUSES or status >= 500 or error_code in RETRIABLE_ERROR_CODES:
        return RegistryUnavailable
    if error_code is not None and error_code in _NOT_FOUND_BY_CODE:
        return _NOT_FOUND_BY_CODE[error_code]
    if status == 409:
        return IncompatibleSchema
    if status == 422 or (error_code is not None and 42200 <= error_code < 42300):
        return InvalidSchema
    if status == 404 and error_code in (None, 404):
        return _PLAIN_404_BY_ENDPOINT.get(endpoint, RegistryError)
    return RegistryError


def outcome_for(status: int | None) -> str:
    """The low-cardinality `outcome` label of one HTTP attempt (None: no answer came back)."""
    if status is None or status in RETRIABLE_STATUSES:
        return "unavailable"
    if status < 400:
        return "ok"
    if status == 404:
        return "not_found"
    return "server_error" if status >= 500 else "client_error"


def field_of(answer: Any, key: str, kind: type[Any], endpoint: str) -> Any:
    """Return ``answer[key]`` if it is a `kind` (a bool is not an int here), else raise RegistryError."""
    value = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RegistryError(f"registry answer to {endpoint} lacks a valid {key!r}")
    return value


def parse_schema_answer(
    answer: Any, endpoint: str, *, schema_id: int | None = None, subject: str | None = None
) -> RegisteredSchema:
    """Build an (unresolved) `RegisteredSchema` from a registry answer.

    Tolerates the dialects: a missing ``schemaType`` means AVRO; ``id``, ``subject`` and ``version`` are
    read when present (subject endpoints, lookup answers) and taken from the request otherwise. A data
    contract's ``ruleSet`` becomes `RegisteredSchema.rules` and its ``metadata`` is kept as it came.

    Raises:
        RegistryError: the answer lacks a schema text or has fields of the wrong type (a ``ruleSet`` or
            ``metadata`` that is not an object included: rules that cannot be read are not "no rules").
    """
    schema_str = field_of(answer, "schema", str, endpoint)
    if schema_id is None:
        schema_id = field_of(answer, "id", int, endpoint)
    raw_refs = answer.get("references") or []
    if not isinstance(raw_refs, list):
        raise RegistryError(f"registry answer to {endpoint} has references that are not a list")
    references = tuple(
        SchemaReference(
            name=field_of(ref, "name", str, endpoint),
            subject=field_of(ref, "subject", str, endpoint),
            version=field_of(ref, "version", int, endpoint),
        )
        for ref in raw_refs
    )
    version = answer.get("version")
    answered_subject = answer.get("subject")
    return RegisteredSchema(
        schema_id=schema_id,
        schema_str=schema_str,
        schema_type=str(answer.get("schemaType") or "AVRO"),
        references=references,
        subject=answered_subject if isinstance(answered_subject, str) else subject,
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        rules=rules_of(answer.get("ruleSet"), endpoint),
        metadata=_metadata_of(answer.get("metadata"), endpoint),
    )


def rules_of(rule_set: Any, endpoint: str) -> tuple[SchemaRule, ...]:
    """Read a Confluent ``ruleSet`` object into rules; None, ``{}`` and empty or null lists are no rules.

    Raises:
        RegistryError: the rule set, one of its groups or one of its rules has the wrong shape.
    """
    if rule_set is None:
        return ()
    if not isinstance(rule_set, dict):
        raise RegistryError(f"registry answer to {endpoint} has a ruleSet that is not an object")
    rules: list[SchemaRule] = []
    for group in RULE_GROUPS:
        raw = rule_set.get(group) or []
        if not isinstance(raw, list) or not all(isinstance(rule, dict) for rule in raw):
            raise RegistryError(f"registry answer to {endpoint} has {group} that are not a list of objects")
        rules.extend(_rule(group, rule) for rule in raw)
    return tuple(rules)


def _rule(group: str, raw: dict[str, Any]) -> SchemaRule:
    def text(key: str) -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else ""

    tags = raw.get("tags") or []
    params = raw.get("params") or {}
    return SchemaRule(
        group=group,
        name=text("name"),
        kind=text("kind"),
        type=text("type"),
        mode=text("mode"),
        # Only an explicit JSON true disables a rule: anything else is read as enabled (fail closed).
        disabled=raw.get("disabled") is True,
        tags=tuple(str(tag) for tag in tags) if isinstance(tags, list) else (),
        params=tuple((str(k), str(v)) for k, v in params.items()) if isinstance(params, dict) else (),
        expr=text("expr"),
        on_success=text("onSuccess"),
        on_failure=text("onFailure"),
        doc=text("doc"),
    )


def _metadata_of(metadata: Any, endpoint: str) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise RegistryError(f"registry answer to {endpoint} has metadata that is not an object")
    return metadata


def schema_body(schema_str: str, schema_type: str, references: Sequence[SchemaReference]) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": schema_str}
    if schema_type.upper() != "AVRO":  # older registries reject the field; AVRO is the default anyway
        body["schemaType"] = schema_type.upper()
    if references:
        body["references"] = [
            {"name": r.name, "subject": r.subject, "version": r.version} for r in references
        ]
    return body


def compatibility_level(answer: Any) -> str:
    # GET /config answers {"compatibilityLevel": ...}; PUT and newer servers answer {"compatibility": ...}.
    if isinstance(answer, dict):
        for key in ("compatibilityLevel", "compatibility"):
            if isinstance(answer.get(key), str):
                return str(answer[key])
    raise RegistryError("registry config answer lacks a compatibility level")


def compatibility_verdict(answer: Any) -> tuple[bool, tuple[str, ...]]:
    """Return ``(is_compatible, messages)`` from a compatibility-check answer.

    Raises:
        RegistryError: the answer has no boolean verdict.
    """
    verdict = answer.get("is_compatible", answer.get("isCompatible")) if isinstance(answer, dict) else None
    if not isinstance(verdict, bool):
        raise RegistryError("registry answer to compatibility lacks 'is_compatible'")
    messages = answer.get("messages") or []
    return verdict, tuple(str(m) for m in messages)


__all__ = [
    "RETRIABLE_ERROR_CODES",
    "RETRIABLE_STATUSES",
    "compatibility_level",
    "compatibility_verdict",
    "error_class_for",
    "field_of",
    "outcome_for",
    "parse_error_body",
    "parse_schema_answer",
    "rules_of",
    "schema_body",
]

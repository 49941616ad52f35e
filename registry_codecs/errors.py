"""The exception hierarchy of registry_codecs.

Everything the library raises derives from :class:`CodecError`. Built-in bases are mixed in where they fit
(`FramingError` is also a `ValueError`), and whether retrying can help is a class attribute, `retriable`,
never something to parse out of a message. Callers that must never lose a message branch on it: a
retriable error means "wait and try again", anything else means "dead-letter with the reason".
"""

from __future__ import annotations

from typing import ClassVar


class CodecError(Exception):
    """Root of every error raised by registry_codecs."""

    retriable: ClassVar[bool] = False
    #: Short, low-cardinality reason used as a metrics label and a dead-letter header.
    reason: ClassVar[str] = "error"


class FramingError(CodecError, ValueError):
    """The bytes are not a Confluent wire-format frame (empty, too short, or a wrong magic byte)."""

    reason = "framing"


class SchemaParseError(CodecError, ValueError):
    """A schema text is not a valid Avro schema."""

    reason = "invalid_schema"


class SchemaRulesNotSupported(CodecError):
    """The registered schema carries data-contract rules (a Confluent ``ruleSet``) this library does not run.

    Confluent's clients execute such rules when they read or write: CEL conditions, JSONata or CEL
    migrations between versions, field-level encryption (``ENCRYPT``). Reading or writing as if they were
    absent would skip a quality check, or write plaintext where the contract says encrypt, so the schema
    is refused instead. Not retriable: the schema's rules do not change. Rules marked ``"disabled": true``
    do not count (Confluent's clients skip them too).

    Attributes:
        schema_id: the schema's id.
        rules: the enabled rules, as `registry_codecs.schemas.SchemaRule` values.
    """

    reason = "schema_rules_unsupported"

    def __init__(self, message: str, *, schema_id: int | None = None, rules: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.schema_id = schema_id
        self.rules = rules


class DecodeError(CodecError, ValueError):
    """A frame's Avro body does not decode with its writer schema (truncated, corrupt, wrong schema)."""

    reason = "body_does_not_decode"

    def __init__(self, message: str, *, schema_id: int | None = None) -> None:
        super().__init__(message)
        self.schema_id = schema_id


class RecordDoesNotFitSchema(CodecError, ValueError):
    """A record cannot be encoded with the schema: a missing field, a wrong type, an unknown enum symbol.

    `field_path` names where it failed, for example ``"user.address.zip"`` (empty when unknown).
    """

    reason = "record_does_not_fit_schema"

    def __init__(self, message: str, *, field_path: str = "", schema_id: int | None = None) -> None:
        super().__init__(message)
        self.field_path = field_path
        self.schema_id = schema_id


class ValueDoesNotFit(RecordDoesNotFitSchema):
    """One value cannot be held exactly by its Avro type, so nothing is written.

    An int out of the 32-bit range, a float or a bool where an int is expected, a float32 overflow, a
    string where a number is expected, a decimal with more scale or precision than the schema, an enum
    symbol not in the list, a fixed of the wrong size, a missing field without a default, a field the
    schema does not have ...

    Attributes:
        field_path: where, for example ``"items[2].price"`` (``"(record)"`` for the record itself).
        avro_type: the Avro type the value was meant for, for example ``"int"`` or ``"record ns.Item"``.
        python_type: the Python type of the offending value (``"missing"`` for a missing field).
    """

    def __init__(
        self,
        message: str,
        *,
        field_path: str = "",
        avro_type: str = "",
        python_type: str = "",
        schema_id: int | None = None,
    ) -> None:
        super().__init__(message, field_path=field_path, schema_id=schema_id)
        self.avro_type = avro_type
        self.python_type = python_type


class UnionBranchUnresolved(ValueDoesNotFit):
    """A value for a union does not say which branch it is, and more than one branch would hold it; or it
    names a branch (`NamedRecord`, ``(name, value)``) that the union does not have."""


class RegistryError(CodecError):
    """The schema registry answered with an error, or could not be reached.

    Attributes:
        status_code: the HTTP status, or None when no answer came back.
        error_code: Confluent's error code from the body (40401, 40403, 42201 ...), or None.
    """

    reason = "registry_error"

    def __init__(
        self, message: str, *, status_code: int | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.args[0]!r}, status_code={self.status_code!r}, "
            f"error_code={self.error_code!r})"
        )


class RegistryUnavailable(RegistryError):
    """Connection refused, timeout, 408, 429, 5xx or error code 50003: wait and retry, never skip."""

    retriable = True
    reason = "registry_unavailable"


class RegistryNotRetried(RegistryUnavailable):
    """The registry did not answer a request made from an event loop (the Faust codec): one round over the
    registry URLs was made and no retry will be, because retrying there would block the loop.

    Inside a Faust stream this becomes a decode error, and Faust skips the message (see
    `registry_codecs.faust_codec`); the worker's pipelines and agents retry instead.
    """


class SchemaNotFoundYet(RegistryUnavailable):
    """The registry says it has no schema with this id, but it may not have loaded it yet: ask again.

    A registry that has just restarted answers 40403 for ids that exist until it has reloaded its store
    (Karapace while it replays its ``_schemas`` topic). A client given an ``unknown_id_grace`` raises
    this, retriable, until that much time has passed since the id was first reported unknown; only then
    is the answer final (`SchemaNotFound`).
    """

    reason = "schema_not_found_yet"


class RegistryAuthError(RegistryError):
    """401 or 403: the credentials are missing or wrong. Not retriable: fix the settings."""

    reason = "registry_auth"


class SubjectNotFound(RegistryError, LookupError):
    """40401: the subject does not exist."""

    reason = "subject_not_found"


class VersionNotFound(RegistryError, LookupError):
    """40402: the subject exists but not that version."""

    reason = "version_not_found"


class SchemaNotFound(RegistryError, LookupError):
    """40403: no schema has that id (or the schema is not under that subject)."""

    reason = "unknown_schema"


class IncompatibleSchema(RegistryError):
    """409: the schema breaks the subject's compatibility level."""

    reason = "incompatible_schema"


class InvalidSchema(RegistryError, ValueError):
    """42201 or a plain 422: the registry refused the schema text (or the request) as invalid."""

    reason = "invalid_schema"


__all__ = [
    "CodecError",
    "DecodeError",
    "FramingError",
    "IncompatibleSchema",
    "InvalidSchema",
    "RecordDoesNotFitSchema",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotRetried",
    "RegistryUnavailable",
    "SchemaNotFound",
    "SchemaNotFoundYet",
    "SchemaParseError",
    "SchemaRulesNotSupported",
    "SubjectNotFound",
    "UnionBranchUnresolved",
    "ValueDoesNotFit",
    "VersionNotFound",
]

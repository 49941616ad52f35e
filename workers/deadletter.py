"""Dead letters: what a permanently failed input becomes, and the headers that say why.

An input that cannot be processed (not a frame, unknown schema id, a body that does not decode, the
transform raising, a result that does not fit the output schema) is written unchanged (key, value bytes,
headers) to the pipeline's dead-letter topic with ``dlq.*`` headers added: where it came from (topic,
partition, offset, timestamp), the writer schema id when known, the error class, a bounded and scrubbed
error message, the low-cardinality reason also used as a metrics label, and the pipeline's name. The
original headers are kept, first, so a replay tool can restore the message exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from registry_codecs.errors import CodecError
from registry_codecs.redact import mask_secrets
from workers.pipeline import TransformResultError

#: Header names, in the order they are appended.
SOURCE_TOPIC: Final = "dlq.source.topic"
SOURCE_PARTITION: Final = "dlq.source.partition"
SOURCE_OFFSET: Final = "dlq.source.offset"
SOURCE_TIMESTAMP: Final = "dlq.source.timestamp"
SCHEMA_ID: Final = "dlq.schema.id"
ERROR_CLASS: Final = "dlq.error.class"
ERROR_MESSAGE: Final = "dlq.error.message"
ERROR_REASON: Final = "dlq.error.reason"
#: ``key`` or ``value``: which part of the message failed to decode or encode (absent for other failures).
ERROR_FIELD: Final = "dlq.error.field"
PIPELINE: Final = "dlq.pipeline"

KEY: Final = "key"
VALUE: Final = "value"

#: Longest error message written to a header, in characters; the rest is cut with an ellipsis.
MAX_MESSAGE_CHARS: Final = 512

#: Reason for an exception raised by the user's transform.
TRANSFORM_FAILED: Final = "transform_failed"

Headers = list[tuple[str, bytes]]


class OutputTooLarge(Exception):
    """The broker (or the producer's size limit) refuses an output record as too large: it never will
    take it, so the input is dead-lettered instead of retried."""

    reason = "output_too_large"


class DeadLetterTooLarge(Exception):
    """The broker refuses a dead letter as too large. There is nowhere else to put the input, so its
    batch is held back (unacked, the pipeline stuck with this reason) until the dead-letter topic takes
    it: raise that topic's ``max.message.bytes`` (and the producer's request size) to clear it."""

    reason = "dead_letter_too_large"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where an input came from."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None


def reason_of(error: BaseException, field: str | None = None) -> str:
    """Return the low-cardinality reason of a permanent failure (a metrics label and a header).

    A key's codec failures get their own reasons (``key_framing``, ``key_unknown_schema`` ...), so a
    dashboard never mixes them up with the value's.
    """
    if isinstance(error, CodecError | TransformResultError | OutputTooLarge):
        return f"key_{error.reason}" if field == KEY else error.reason
    return TRANSFORM_FAILED


def schema_id_of(error: BaseException) -> int | None:
    """Return the writer schema id an error carries, when it carries one."""
    schema_id = getattr(error, "schema_id", None)
    return schema_id if isinstance(schema_id, int) else None


def scrub(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Return `message` without URL credentials or ``password=...``-like values, cut to `limit` chars."""
    cleaned = mask_secrets(message)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "\u2026"
    return cleaned


def dead_letter_headers(
    original: Iterable[tuple[str, bytes]] | None,
    source: SourceInfo,
    error: BaseException,
    *,
    pipeline: str,
    schema_id: int | None = None,
    field: str | None = None,
) -> Headers:
    """Return the original headers followed by the ``dlq.*`` headers describing `error`.

    Args:
        original: the input's headers, kept as they are.
        source: the input's topic, partition, offset and timestamp (seconds since the epoch).
        error: why the input could not be processed.
        pipeline: the pipeline's name.
        schema_id: the writer schema id when known (else taken from the error when it carries one).
        field: `KEY` or `VALUE` when decoding or encoding that part of the message failed.
    """
    headers: Headers = [(k, bytes(v) if v is not None else b"") for k, v in (original or ())]
    headers += [
        (SOURCE_TOPIC, source.topic.encode()),
        (SOURCE_PARTITION, str(source.partition).encode()),
        (SOURCE_OFFSET, str(source.offset).encode()),
    ]
    if source.timestamp is not None:
        headers.append((SOURCE_TIMESTAMP, str(round(source.timestamp * 1000)).encode()))
    known_id = schema_id if schema_id is not None else schema_id_of(error)
    if known_id is not None:
        headers.append((SCHEMA_ID, str(known_id).encode()))
    headers += [
        (ERROR_CLASS, _qualified_name(type(error)).encode()),
        (ERROR_MESSAGE, scrub(str(error) or type(error).__name__).encode()),
        (ERROR_REASON, reason_of(error, field).encode()),
    ]
    if field is not None:
        headers.append((ERROR_FIELD, field.encode()))
    headers.append((PIPELINE, pipeline.encode()))
    return headers


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


__all__ = [
    "ERROR_CLASS",
    "ERROR_FIELD",
    "ERROR_MESSAGE",
    "ERROR_REASON",
    "KEY",
    "MAX_MESSAGE_CHARS",
    "PIPELINE",
    "SCHEMA_ID",
    "SOURCE_OFFSET",
    "SOURCE_PARTITION",
    "SOURCE_TIMESTAMP",
    "SOURCE_TOPIC",
    "TRANSFORM_FAILED",
    "VALUE",
    "DeadLetterTooLarge",
    "Headers",
    "OutputTooLarge",
    "SourceInfo",
    "dead_letter_headers",
    "reason_of",
    "schema_id_of",
    "scrub",
]

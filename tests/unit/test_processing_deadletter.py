"""Dead-letter headers say where a message came from and why it failed, without leaking secrets."""

from __future__ import annotations

from registry_codecs import DecodeError, FramingError, RegistryUnavailable
from workers.deadletter import MAX_MESSAGE_CHARS, SourceInfo, dead_letter_headers, reason_of, scrub
from workers.pipeline import TransformResultError

SOURCE = SourceInfo("orders", 2, 1234, 1_700_000_000.25)


def test_headers_keep_the_originals_first_and_describe_the_failure() -> None:
    error = DecodeError("body does not decode", schema_id=17)
    headers = dead_letter_headers([("trace", b"t-1"), ("empty", None)], SOURCE, error, pipeline="p")  # type: ignore[list-item]
    assert headers[:2] == [("trace", b"t-1"), ("empty", b"")]
    named = dict(headers[2:])
    assert named == {
        "dlq.source.topic": b"orders",
        "dlq.source.partition": b"2",
        "dlq.source.offset": b"1234",
        "dlq.source.timestamp": b"1700000000250",
        "dlq.schema.id": b"17",
        "dlq.error.class": b"registry_codecs.errors.DecodeError",
        "dlq.error.message": b"body does not decode",
        "dlq.error.reason": b"body_does_not_decode",
        "dlq.pipeline": b"p",
    }


def test_no_schema_id_header_when_unknown_and_builtin_class_names_are_short() -> None:
    headers = dict(dead_letter_headers(None, SOURCE, KeyError("user"), pipeline="p"))
    assert "dlq.schema.id" not in headers
    assert headers["dlq.error.class"] == b"KeyError"
    assert headers["dlq.error.reason"] == b"transform_failed"


def test_reasons() -> None:
    assert reason_of(FramingError("x")) == "framing"
    assert reason_of(TransformResultError("x")) == "transform_result_invalid"
    assert reason_of(RegistryUnavailable("x")) == "registry_unavailable"
    assert reason_of(ZeroDivisionError()) == "transform_failed"


def test_messages_are_bounded_and_scrubbed() -> None:
    planted = "hunter2-planted"
    text = (
        f"GET http://svc:{planted}@registry:8081/x failed; password={planted} token: {planted} " + "x" * 5000
    )
    cleaned = scrub(text)
    assert planted not in cleaned
    assert "http://***@registry:8081/x" in cleaned
    assert len(cleaned) == MAX_MESSAGE_CHARS
    assert cleaned.endswith("\u2026")
    headers = dict(dead_letter_headers(None, SOURCE, ValueError(text), pipeline="p"))
    assert planted.encode() not in headers["dlq.error.message"]

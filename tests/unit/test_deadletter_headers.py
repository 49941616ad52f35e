"""Dead-letter headers at their edges: no timestamp, an explicit schema id over the error's, a message at
exactly its bound, an error without a message, every kind of secret scrubbed, the too-large reasons."""

from __future__ import annotations

import pytest

from registry_codecs import DecodeError
from workers.deadletter import (
    MAX_MESSAGE_CHARS,
    DeadLetterTooLarge,
    OutputTooLarge,
    SourceInfo,
    dead_letter_headers,
    reason_of,
    schema_id_of,
    scrub,
)


def test_no_timestamp_header_without_a_timestamp_and_milliseconds_rounded() -> None:
    headers = dict(dead_letter_headers(None, SourceInfo("t", 0, 5, None), ValueError("x"), pipeline="p"))
    assert "dlq.source.timestamp" not in headers
    headers = dict(dead_letter_headers(None, SourceInfo("t", 0, 5, 1.0006), ValueError("x"), pipeline="p"))
    assert headers["dlq.source.timestamp"] == b"1001"


def test_an_explicit_schema_id_wins_over_the_errors() -> None:
    error = DecodeError("bad", schema_id=17)
    headers = dict(dead_letter_headers(None, SourceInfo("t", 0, 0, None), error, pipeline="p", schema_id=3))
    assert headers["dlq.schema.id"] == b"3"
    headers = dict(dead_letter_headers(None, SourceInfo("t", 0, 0, None), error, pipeline="p", schema_id=0))
    assert headers["dlq.schema.id"] == b"0"  # id 0 is an id


def test_schema_id_of_only_trusts_an_int() -> None:
    class Odd(Exception):
        schema_id = "17"

    assert schema_id_of(DecodeError("x", schema_id=4)) == 4
    assert schema_id_of(Odd()) is None
    assert schema_id_of(ValueError()) is None


def test_an_error_without_a_message_is_named_by_its_class() -> None:
    headers = dict(dead_letter_headers(None, SourceInfo("t", 0, 0, None), KeyError(), pipeline="p"))
    assert headers["dlq.error.message"] == b"KeyError"


def test_nested_classes_keep_their_qualified_name() -> None:
    class Inner(Exception):
        pass

    headers = dict(dead_letter_headers(None, SourceInfo("t", 0, 0, None), Inner("x"), pipeline="p"))
    assert headers["dlq.error.class"] == f"{__name__}.{Inner.__qualname__}".encode()


def test_a_message_at_its_bound_is_kept_whole_and_one_over_is_cut() -> None:
    assert scrub("x" * MAX_MESSAGE_CHARS) == "x" * MAX_MESSAGE_CHARS
    cut = scrub("x" * (MAX_MESSAGE_CHARS + 1))
    assert cut == "x" * (MAX_MESSAGE_CHARS - 1) + "\u2026" and len(cut) == MAX_MESSAGE_CHARS
    assert scrub("abcdef", limit=4) == "abc\u2026"


@pytest.mark.parametrize(
    "text",
    [
        "password=s3cret",
        "PASSWD: s3cret",
        "secret = s3cret",
        "token:s3cret",
        "Authorization: s3cret",
        "api_key=s3cret",
        "api-key=s3cret",
        "apikey=s3cret",
        "see https://user:s3cret@host/x",
        "see https://s3cret@host/x",
    ],
)
def test_every_kind_of_secret_is_scrubbed(text: str) -> None:
    cleaned = scrub(text)
    assert "s3cret" not in cleaned and "***" in cleaned


def test_words_that_merely_contain_a_secret_word_are_kept() -> None:
    assert scrub("tokens_used=3 and mypassword_hint") == "tokens_used=3 and mypassword_hint"
    assert scrub("email a@b.c") == "email a@b.c"


def test_the_too_large_reasons() -> None:
    assert reason_of(OutputTooLarge("x")) == "output_too_large"
    # never a dead letter's reason (it is the dead letter that is refused): the stuck reason instead
    assert DeadLetterTooLarge.reason == "dead_letter_too_large"


def test_the_message_bound_is_512_characters_as_documented() -> None:
    assert len(scrub("x" * 600)) == 512 == MAX_MESSAGE_CHARS


def test_only_builtins_get_a_short_class_name() -> None:
    class Early(Exception):
        pass

    Early.__module__ = "asyncio.exceptions"  # sorts before "builtins"
    Early.__qualname__ = "Early"
    headers = dict(dead_letter_headers(None, SourceInfo("t", 0, 0, None), Early("x"), pipeline="p"))
    assert headers["dlq.error.class"] == b"asyncio.exceptions.Early"

"""Pure pieces of the registry transport: URL parsing and redaction, credentials, backoff, Retry-After."""

from __future__ import annotations

import base64

import pytest
from requests.auth import HTTPBasicAuth

from registry_codecs.registry import RegistryClient
from registry_codecs.registry_http import backoff_delay, retry_after_seconds
from registry_codecs.registry_urls import (
    BearerAuth,
    build_session,
    parse_base_urls,
    redact_url,
    secrets_of,
    split_urls,
)

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("http://user:pw@host:8081", "http://host:8081"),
        ("https://user@host/apis/ccompat/v7", "https://host/apis/ccompat/v7"),
        ("http://a%40b:p%3Aw@[::1]:8081/x", "http://[::1]:8081/x"),
        ("http://host:8081", "http://host:8081"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_split_urls_accepts_comma_separated_strings_and_sequences() -> None:
    assert split_urls(" http://a:1 , http://b:2,,") == ["http://a:1", "http://b:2"]
    assert split_urls(["http://a:1,http://b:2", "http://c:3"]) == ["http://a:1", "http://b:2", "http://c:3"]


def test_user_info_becomes_that_urls_basic_auth_and_leaves_the_url() -> None:
    bases = parse_base_urls(f"http://alice:{SECRET}@one:1/,http://two:2", basic_auth=("bob", "pw"))
    assert [b.url for b in bases] == ["http://one:1", "http://two:2"]
    first, second = (b.auth for b in bases)
    assert isinstance(first, HTTPBasicAuth)
    assert isinstance(second, HTTPBasicAuth)
    assert (first.username, first.password) == ("alice", SECRET)
    assert (second.username, second.password) == ("bob", "pw")


def test_percent_encoded_user_info_is_decoded() -> None:
    (base,) = parse_base_urls("http://a%40corp:p%3Aw%2F@h:1")
    assert isinstance(base.auth, HTTPBasicAuth)
    assert (base.auth.username, base.auth.password) == ("a@corp", "p:w/")


def test_bearer_token() -> None:
    (base,) = parse_base_urls("https://h", bearer_token=SECRET)
    assert isinstance(base.auth, BearerAuth)


@pytest.mark.parametrize(
    ("urls", "kwargs", "message"),
    [
        ("", {}, "no schema-registry URL"),
        (" , ", {}, "no schema-registry URL"),
        (f"ftp://u:{SECRET}@h", {}, "not an http"),
        ("http://", {}, "not an http"),
        ("http://h", {"basic_auth": ("u", SECRET), "bearer_token": SECRET}, "not both"),
    ],
)
def test_invalid_configuration_is_refused_without_echoing_secrets(
    urls: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_base_urls(urls, **kwargs)  # type: ignore[arg-type]
    assert SECRET not in str(info.value)


def test_key_file_without_cert_file_is_refused() -> None:
    with pytest.raises(ValueError, match="certificate"):
        build_session(ca_file=None, cert_file=None, key_file="client.key")


def test_secrets_of_lists_passwords_tokens_and_basic_header_values() -> None:
    bases = parse_base_urls(f"http://alice:{SECRET}@one:1") + parse_base_urls(
        "http://t", bearer_token="tok-123"
    )
    found = secrets_of(bases)
    assert SECRET in found
    assert "tok-123" in found
    assert base64.b64encode(f"alice:{SECRET}".encode()).decode() in found


def test_repr_of_auth_objects_and_client_hide_secrets() -> None:
    client = RegistryClient(f"http://alice:{SECRET}@one:1,http://two:2", read_timeout=1)
    bearer = RegistryClient("http://h:1", bearer_token=SECRET)
    try:
        texts = [repr(client), str(client), repr(bearer)]
        texts += [repr(b) for b in parse_base_urls(f"http://alice:{SECRET}@one:1")]
        texts += [repr(b.auth) for b in parse_base_urls(f"http://alice:{SECRET}@one:1")]
        texts += [repr(BearerAuth(SECRET))]
        for text in texts:
            assert SECRET not in text
        assert repr(client) == "RegistryClient(urls=['http://one:1', 'http://two:2'], auth='basic')"
        assert repr(bearer) == "RegistryClient(urls=['http://h:1'], auth='bearer')"
    finally:
        client.close()
        bearer.close()


def test_backoff_grows_exponentially_up_to_the_cap_with_bounded_jitter() -> None:
    low = [backoff_delay(n, 0.1, 2.0, lambda: 0.0) for n in range(8)]
    high = [backoff_delay(n, 0.1, 2.0, lambda: 1.0) for n in range(8)]
    assert low[:4] == pytest.approx([0.05, 0.1, 0.2, 0.4])
    assert high[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert high[-1] == pytest.approx(2.0)  # capped
    assert low[-1] == pytest.approx(1.0)  # never less than half the step: no instant retry
    assert backoff_delay(3, 0.1, 2.0, lambda: 0.5) == pytest.approx(0.6)


def test_retry_after_lengthens_the_pause_up_to_the_cap() -> None:
    assert backoff_delay(0, 0.1, 5.0, lambda: 1.0, retry_after=2.0) == pytest.approx(2.0)
    assert backoff_delay(0, 0.1, 5.0, lambda: 1.0, retry_after=60.0) == pytest.approx(5.0)
    assert backoff_delay(3, 0.1, 5.0, lambda: 1.0, retry_after=0.0) == pytest.approx(0.8)


def test_backoff_with_zero_base_does_not_wait() -> None:
    assert backoff_delay(5, 0.0, 5.0, lambda: 1.0) == 0.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-1", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds

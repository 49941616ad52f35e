"""One masking rule for secrets in text: settings' reprs, dead-letter messages and logs agree."""

from __future__ import annotations

from registry_codecs.redact import mask_secrets
from workers.deadletter import scrub
from workers.settings import mask_url


def test_url_user_info_and_secret_pairs_are_masked_everywhere_the_same_way() -> None:
    text = "GET https://alice:s3cret@registry:8081/subjects failed; token=abc123 Authorization: Bearer xyz"
    masked = mask_secrets(text)
    assert "s3cret" not in masked and "abc123" not in masked and "xyz" not in masked
    assert masked.startswith("GET https://***@registry:8081/subjects failed")
    assert scrub(text) == masked == mask_url(text)


def test_text_without_secrets_is_unchanged() -> None:
    text = "schema id 42 not found at http://registry:8081/schemas/ids/42"
    assert mask_secrets(text) == text

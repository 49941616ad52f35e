"""Registry base URLs and credentials: parsing, redaction, auth objects and the HTTP session.

User info in a URL (``http://user:pass@host``) becomes that URL's basic auth and is cut out of the URL at
once, so no URL the client keeps, logs or puts in a message can carry a password. The auth objects mask
their secrets in `repr`, and `secrets_of` lists every form of a credential (including the base64 of a
basic-auth header) so the transport can mask one a server echoes back.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth

ACCEPT = (
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; q=0.9, "
    "application/json; q=0.5"
)


class BearerAuth(AuthBase):
    """Sends ``Authorization: Bearer <token>``; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(token='***')"


class MaskedBasicAuth(HTTPBasicAuth):
    """HTTP basic auth whose repr shows the user name only."""

    def __repr__(self) -> str:
        return f"MaskedBasicAuth(username={self.username!r}, password='***')"


@dataclass(frozen=True, slots=True)
class BaseUrl:
    """One registry base URL, without user info, and the credentials to send to it."""

    url: str
    auth: AuthBase | None = field(default=None, repr=False)


def quote_subject(subject: str) -> str:
    """`subject` as one URL path segment: subjects may hold "/", ":" or spaces (record-name strategies)."""
    return quote(subject, safe="")


def redact_url(url: str) -> str:
    """Return `url` without its user info (``http://u:p@h:1/x`` -> ``http://h:1/x``)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def split_urls(urls: str | Sequence[str]) -> list[str]:
    """Split a comma-separated string (or a sequence of such strings) into stripped, non-empty URLs."""
    items = [urls] if isinstance(urls, str) else list(urls)
    return [url.strip() for item in items for url in item.split(",") if url.strip()]


def parse_base_urls(
    urls: str | Sequence[str],
    basic_auth: tuple[str, str] | None = None,
    bearer_token: str | None = None,
) -> tuple[BaseUrl, ...]:
    """Validate the base URLs and attach credentials: the URL's own user info first, then the explicit ones.

    Raises:
        ValueError: no URL, a URL that is not http(s), or both basic auth and a bearer token.
    """
    if basic_auth is not None and bearer_token is not None:
        raise ValueError("configure basic auth or a bearer token for the schema registry, not both")
    found = split_urls(urls)
    if not found:
        raise ValueError("no schema-registry URL given")
    bases = []
    for url in found:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"schema-registry URL {redact_url(url)!r} is not an http(s) URL with a host")
        auth: AuthBase | None = None
        if parts.username is not None:
            auth = MaskedBasicAuth(unquote(parts.username), unquote(parts.password or ""))
        elif basic_auth is not None:
            auth = MaskedBasicAuth(*basic_auth)
        elif bearer_token is not None:
            auth = BearerAuth(bearer_token)
        bases.append(BaseUrl(redact_url(url).rstrip("/"), auth))
    return tuple(bases)


def secrets_of(bases: Sequence[BaseUrl]) -> tuple[str, ...]:
    """Every credential string a server could echo back: passwords, tokens and basic-auth header values."""
    found: set[str] = set()
    for base in bases:
        if isinstance(base.auth, HTTPBasicAuth):
            user, password = str(base.auth.username), str(base.auth.password)
            found.add(password)
            pair = f"{user}:{password}".encode()
            found.add(base64.b64encode(pair).decode("ascii"))
        elif isinstance(base.auth, BearerAuth):
            found.add(base.auth._token)
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def build_session(
    *, ca_file: str | None, cert_file: str | None, key_file: str | None, pool_size: int = 16
) -> requests.Session:
    """A session with the registry's Accept header, TLS settings, and no retries of its own."""
    if key_file is not None and cert_file is None:
        raise ValueError("a client key file needs a client certificate file")
    session = requests.Session()
    session.headers["Accept"] = ACCEPT
    if ca_file is not None:
        session.verify = ca_file
    if cert_file is not None:
        session.cert = (cert_file, key_file) if key_file is not None else cert_file
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


__all__ = [
    "ACCEPT",
    "BaseUrl",
    "BearerAuth",
    "MaskedBasicAuth",
    "build_session",
    "parse_base_urls",
    "quote_subject",
    "redact_url",
    "secrets_of",
    "split_urls",
]

"""The HTTP side of the schema-registry client: base URLs, credentials, retries, fail-over, error mapping.

`Transport.request` sends one logical request and either returns the decoded JSON answer or raises a
typed `RegistryError`. Retries are done here rather than by a urllib3 `Retry` on the adapter because the
decision needs the response body (Confluent's 5000x codes) and must move across base URLs: a connection
error, timeout, 408, 429, 5xx or 50001-50003 tries the next URL at once; when every URL has failed, the
whole list is tried again after a jittered exponential pause, up to `max_retries` more times. Credentials
never reach a URL, a log line or a message: user info is cut out of the URLs at construction, and any
secret the server echoes back in an error body is masked.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth

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
from registry_codecs.metrics import CodecMetrics

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPT = (
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; q=0.9, "
    "application/json; q=0.5"
)
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


class RetryLater(RegistryUnavailable):
    """One attempt failed in a way that retrying can fix; `retry_after` is the server's hint, if any."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, error_code=error_code)
        self.retry_after = retry_after


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


def backoff_delay(retry: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Pause before retry number `retry` (0-based): "equal jitter" over ``min(cap, base * 2**retry)``.

    Half the step is fixed, so a retry never comes at once; half is random, so clients that failed
    together do not come back together.
    """
    step = min(cap, base * 2.0**retry)
    return step / 2 + rand() * step / 2


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds; an HTTP date or garbage gives None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


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


class Incrementable(Protocol):
    """A counter child, or the no-op stand-in when no metrics are configured."""

    def inc(self, amount: float = 1) -> None: ...


class Observable(Protocol):
    """A histogram child, or the no-op stand-in."""

    def observe(self, amount: float) -> None: ...


class NullMetric:
    """Stands in for counters and histograms when the client has no metrics."""

    def inc(self, amount: float = 1) -> None:
        """Count nothing: no metrics were configured."""

    def observe(self, amount: float) -> None:
        """Record nothing: no metrics were configured."""


NULL_METRIC = NullMetric()


class Transport:
    """Sends requests to the first base URL that answers, with retries; see the module docstring."""

    def __init__(
        self,
        bases: Sequence[BaseUrl],
        session: requests.Session,
        *,
        timeout: tuple[float, float],
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        metrics: CodecMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,  # jitter only, not security
    ) -> None:
        if max_retries < 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("max_retries, backoff_base and backoff_max must not be negative")
        if min(timeout) <= 0:
            raise ValueError("registry timeouts must be positive")
        self.bases = tuple(bases)
        self.session = session
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = (backoff_base, backoff_max)
        self._metrics = metrics
        self._secrets = secrets_of(self.bases)
        self._sleep = sleep
        self._rand = rand
        self._preferred = 0  # index of the last base URL that answered; tried first next time
        self._counters: dict[tuple[str, str], Incrementable] = {}
        self._histograms: dict[str, Observable] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        retries: int | None = None,
    ) -> Any:
        """Send `method path` and return the decoded JSON answer.

        Args:
            method, path: the HTTP method and the path below the base URL (already URL-quoted).
            endpoint: low-cardinality name for metrics and logs (``"schema_by_id"``, ``"register"`` ...).
            body: JSON body, sent with the registry's content type.
            params: query parameters.
            retries: rounds over all URLs after the first; None means the client's `max_retries`.

        Raises:
            RegistryUnavailable: no URL answered usefully within the retry budget.
            RegistryError: a subclass for the answer (not found, incompatible, invalid, auth).
        """
        rounds = 1 + (self._max_retries if retries is None else retries)
        data = None if body is None else json.dumps(body).encode()
        started = time.perf_counter()
        try:
            return self._with_retries(method, path, endpoint, data, params, rounds)
        finally:
            self._histogram(endpoint).observe(time.perf_counter() - started)

    def _with_retries(
        self,
        method: str,
        path: str,
        endpoint: str,
        data: bytes | None,
        params: Mapping[str, str] | None,
        rounds: int,
    ) -> Any:
        last: RetryLater | None = None
        for round_no in range(rounds):
            if last is not None:
                self._sleep(self._pause(round_no - 1, last))
            for index in self._order():
                try:
                    answer = self._send(self.bases[index], method, path, endpoint, data, params)
                except RetryLater as exc:
                    last = exc
                    logger.info("registry attempt failed endpoint=%s round=%d: %s", endpoint, round_no, exc)
                    continue
                self._preferred = index
                return answer
        assert last is not None  # noqa: S101  # rounds >= 1 and every path above returns or sets it
        attempts = rounds * len(self.bases)
        logger.warning(
            "registry unavailable endpoint=%s attempts=%d: %s",
            endpoint,
            attempts,
            last,
            extra={"endpoint": endpoint, "attempts": attempts},
        )
        raise RegistryUnavailable(
            f"schema registry unavailable after {attempts} attempts; last: {last}",
            status_code=last.status_code,
            error_code=last.error_code,
        ) from last

    def _order(self) -> list[int]:
        start, count = self._preferred, len(self.bases)
        return [(start + i) % count for i in range(count)]

    def _pause(self, retry: int, last: RetryLater) -> float:
        base, cap = self._backoff
        delay = backoff_delay(retry, base, cap, self._rand)
        if last.retry_after is not None:
            delay = min(cap, max(delay, last.retry_after))
        return delay

    def _send(
        self,
        base: BaseUrl,
        method: str,
        path: str,
        endpoint: str,
        data: bytes | None,
        params: Mapping[str, str] | None,
    ) -> Any:
        url = base.url + path
        headers = {"Content-Type": CONTENT_TYPE} if data is not None else None
        try:
            response = self.session.request(
                method, url, data=data, params=params, headers=headers, auth=base.auth, timeout=self._timeout
            )
        except requests.Timeout as exc:
            self._count(endpoint, None)
            raise RetryLater(f"{method} {url} timed out ({self._brief(exc)})") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            self._count(endpoint, None)
            raise RetryLater(f"{method} {url} failed to connect ({self._brief(exc)})") from exc
        except requests.RequestException as exc:
            self._count(endpoint, None)
            raise RegistryError(f"{method} {url} failed ({self._brief(exc)})") from exc
        self._count(endpoint, response.status_code)
        if response.status_code < 400:
            try:
                return response.json()
            except ValueError as exc:
                raise RegistryError(
                    f"{method} {url} answered {response.status_code} with a body that is not JSON",
                    status_code=response.status_code,
                ) from exc
        raise self._error(response, method, url, endpoint)

    def _error(self, response: requests.Response, method: str, url: str, endpoint: str) -> RegistryError:
        status = response.status_code
        error_code, message = parse_error_body(response.text)
        text = f"{method} {url} answered {status}"
        if error_code is not None:
            text += f" (error code {error_code})"
        text += f": {self._scrub(message or response.reason or '')}"
        cls = error_class_for(status, error_code, endpoint)
        if cls is RegistryUnavailable:
            hint = retry_after_seconds(response.headers.get("Retry-After"))
            return RetryLater(text, status_code=status, error_code=error_code, retry_after=hint)
        return cls(text, status_code=status, error_code=error_code)

    def _brief(self, exc: Exception) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}")[:_MAX_MESSAGE]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _count(self, endpoint: str, status: int | None) -> None:
        outcome = outcome_for(status)
        counter = self._counters.get((endpoint, outcome))
        if counter is None:
            counter = (
                NULL_METRIC
                if self._metrics is None
                else self._metrics.registry_requests.labels(endpoint, outcome)
            )
            self._counters[(endpoint, outcome)] = counter
        counter.inc()

    def _histogram(self, endpoint: str) -> Observable:
        histogram = self._histograms.get(endpoint)
        if histogram is None:
            metrics = self._metrics
            histogram = NULL_METRIC if metrics is None else metrics.registry_request_seconds.labels(endpoint)
            self._histograms[endpoint] = histogram
        return histogram

    def close(self) -> None:
        """Close the session's pooled connections."""
        self.session.close()


__all__ = [
    "CONTENT_TYPE",
    "NULL_METRIC",
    "BaseUrl",
    "BearerAuth",
    "Incrementable",
    "MaskedBasicAuth",
    "NullMetric",
    "Observable",
    "RetryLater",
    "Transport",
    "backoff_delay",
    "build_session",
    "error_class_for",
    "outcome_for",
    "parse_base_urls",
    "parse_error_body",
    "redact_url",
    "retry_after_seconds",
    "split_urls",
]

"""The HTTP side of the schema-registry client: retries, fail-over, timeouts and request metrics.

`Transport.request` sends one logical request and either returns the decoded JSON answer or raises a
typed `RegistryError`. Retries are done here rather than by a urllib3 `Retry` on the adapter because the
decision needs the response body (Confluent's 5000x codes) and must move across base URLs: a connection
error, timeout, 408, 429, 5xx or 50001-50003 tries the next URL at once; when every URL has failed, the
whole list is tried again after a jittered exponential pause, up to `max_retries` more times. Any secret
a server echoes back in an error body is masked before it reaches a message.

A caller on an event loop (the Faust codec) must not sleep between retry rounds: inside `one_round()`
every request makes one round over the URLs (each bounded by the client's timeouts) and an outage ends
in `RegistryNotRetried` instead of waiting. The flag is a context variable, so it holds for that thread
or task only; the same client keeps its retries everywhere else.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final, Protocol

import requests

from registry_codecs.errors import RegistryError, RegistryNotRetried, RegistryUnavailable
from registry_codecs.metrics import CodecMetrics
from registry_codecs.registry_answers import error_class_for, outcome_for, parse_error_body
from registry_codecs.registry_urls import BaseUrl, secrets_of

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_MAX_MESSAGE = 300
#: Set (by `one_round`) while the caller must not wait for retry rounds: an event loop.
SINGLE_ROUND: Final[ContextVar[bool]] = ContextVar("registry_single_round", default=False)


@contextmanager
def one_round() -> Iterator[None]:
    """Within this block, registry requests make one round over the URLs, no retry, no backoff sleep.

    An outage then raises `RegistryNotRetried` (a `RegistryUnavailable`) after at most one request per
    base URL, each bounded by the client's connect and read timeouts.
    """
    token = SINGLE_ROUND.set(True)
    try:
        yield
    finally:
        SINGLE_ROUND.reset(token)


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


def backoff_delay(
    retry: int, base: float, cap: float, rand: Callable[[], float], retry_after: float | None = None
) -> float:
    """Pause before retry number `retry` (0-based): "equal jitter" over ``min(cap, base * 2**retry)``.

    Half the step is fixed, so a retry never comes at once; half is random, so clients that failed
    together do not come back together. A server's ``Retry-After`` lengthens the pause, up to `cap`:
    a worker must not stall longer than its operator allowed because a proxy said so.
    """
    step = min(cap, base * 2.0**retry)
    delay = step / 2 + rand() * step / 2
    if retry_after is not None:
        delay = min(cap, max(delay, retry_after))
    return delay


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds; an HTTP date or garbage gives None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


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
        single = SINGLE_ROUND.get()
        rounds = 1 if single else 1 + (self._max_retries if retries is None else retries)
        data = None if body is None else json.dumps(body).encode()
        started = time.perf_counter()
        try:
            return self._with_retries(method, path, endpoint, data, params, rounds)
        except RegistryUnavailable as exc:
            if not single:
                raise
            raise RegistryNotRetried(
                f"{exc}; not retried: the caller runs on an event loop (the Faust codec does not retry)",
                status_code=exc.status_code,
                error_code=exc.error_code,
            ) from exc
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
                self._sleep(backoff_delay(round_no - 1, *self._backoff, self._rand, last.retry_after))
            for index in self._order():
                try:
                    answer = self._send(self.bases[index], method, path, endpoint, data, params)
                except RetryLater as exc:
                    last = exc
                    logger.info("registry attempt failed endpoint=%s round=%d: %s", endpoint, round_no, exc)
                    continue
                except RegistryError:
                    self._preferred = index  # it answered, if only to say no: it is up
                    raise
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
            # verify and cert are passed per request: set only on the session, requests lets the
            # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE environment variables override them.
            response = self.session.request(
                method,
                url,
                data=data,
                params=params,
                headers=headers,
                auth=base.auth,
                timeout=self._timeout,
                verify=self.session.verify,
                cert=self.session.cert,
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
    "SINGLE_ROUND",
    "Incrementable",
    "NullMetric",
    "Observable",
    "RetryLater",
    "Transport",
    "backoff_delay",
    "one_round",
    "retry_after_seconds",
]

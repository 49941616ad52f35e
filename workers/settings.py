"""The worker's settings: read once from ``AVROFLOW_*`` environment variables into a frozen, typed object.

`Settings.from_env()` parses every value explicitly (``bool("0")`` is true, so booleans are spelled out),
checks that files named by a setting exist, and fails fast with a `SettingsError` naming the variable:
a missing required value, a malformed one, or an ``AVROFLOW_*`` variable nobody reads (usually a typo,
which would otherwise be ignored silently). Passwords and tokens are held in `Secret`, whose repr and str
never show the value; URLs with user info are masked in the settings' repr too.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, TypeVar

from registry_codecs.redact import mask_secrets

PREFIX: Final = "AVROFLOW_"

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("logfmt", "json")

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_PIPELINES_SPEC: Final = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting is missing, malformed or unknown. The message names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class Secret:
    """A secret string whose repr and str are masked; call :meth:`reveal` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value. Use it only to hand the value to a client, never to log it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def mask_url(url: str) -> str:
    """Return `url` with any ``user:password@`` part replaced by ``***@`` (`mask_secrets`)."""
    return mask_secrets(url)


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    """Everything the worker reads from the environment. Build with :meth:`from_env`.

    Each field is read from ``AVROFLOW_`` + the field name upper-cased (``kafka_bootstrap_servers`` from
    ``AVROFLOW_KAFKA_BOOTSTRAP_SERVERS``), except `schema_registry_urls` (``AVROFLOW_SCHEMA_REGISTRY_URL``).
    """

    kafka_bootstrap_servers: tuple[str, ...]
    schema_registry_urls: tuple[str, ...]
    app_id: str = "avroflow"
    pipelines: str = "workers.sample:PIPELINES"
    # Kafka security
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: Secret | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Kafka client tuning
    kafka_session_timeout_seconds: float = 30.0
    kafka_producer_linger_seconds: float = 0.005
    kafka_producer_max_batch_size: int = 65536
    kafka_commit_interval_seconds: float = 1.0
    kafka_fetch_max_wait_seconds: float = 0.1
    #: aiokafka's idempotent producer (acks=all): a retried send is neither duplicated nor reordered.
    kafka_idempotent_producer: bool = True
    #: The worker's Faust fast path (workers/faust/fastpath.py, batches.py); off: plain Faust dispatch.
    faust_fast_path: bool = True
    topic_partitions: int = 1
    # Schema registry
    schema_registry_username: str | None = None
    schema_registry_password: Secret | None = None
    schema_registry_bearer_token: Secret | None = None
    schema_registry_ca_file: Path | None = None
    schema_registry_cert_file: Path | None = None
    schema_registry_key_file: Path | None = None
    schema_registry_timeout_seconds: float = 10.0
    latest_schema_ttl_seconds: float = 30.0
    schema_not_found_retry_seconds: float = 30.0
    auto_register_schemas: bool = False
    # Processing
    dlq_suffix: str = ".dlq"
    batch_size: int = 500
    batch_within_seconds: float = 0.05
    retry_backoff_seconds: float = 0.2
    retry_backoff_max_seconds: float = 10.0
    registry_check_interval_seconds: float = 5.0
    readiness_broker_timeout_seconds: float = 30.0
    lag_check_interval_seconds: float = 15.0
    # Process
    web_host: str = "0.0.0.0"  # noqa: S104 - a container's probes reach the pod IP, not loopback
    web_port: int = 6066
    log_level: str = "INFO"
    log_format: str = "logfmt"
    shutdown_timeout_seconds: float = 20.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read the settings from `environ` (the process environment by default).

        Raises:
            SettingsError: a required variable is missing, a value is malformed, a file it names does
                not exist, the security settings contradict each other, or an ``AVROFLOW_*`` variable is
                not a known setting.
        """
        env = {k: v for k, v in environ.items() if k.startswith(PREFIX)}
        unknown = sorted(set(env) - set(VARIABLES.values()))
        if unknown:
            raise SettingsError(unknown[0], _unknown_setting(unknown[0]))
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(VARIABLES[f.name], "").strip()
            if raw:
                values[f.name] = _PARSERS.get(f.name, _parse_str)(VARIABLES[f.name], raw)
            elif f.name in ("kafka_bootstrap_servers", "schema_registry_urls"):
                raise SettingsError(VARIABLES[f.name], "required but not set")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check the combinations a single value cannot (SASL needs credentials, a cert needs its key).

        Raises:
            SettingsError: naming the variable to fix.
        """
        if self.kafka_security_protocol.startswith("SASL_"):
            for name in ("kafka_sasl_username", "kafka_sasl_password"):
                if getattr(self, name) is None:
                    raise SettingsError(
                        VARIABLES[name], f"required with security protocol {self.kafka_security_protocol}"
                    )
        for cert, key in (
            ("kafka_ssl_certfile", "kafka_ssl_keyfile"),
            ("schema_registry_cert_file", "schema_registry_key_file"),
        ):
            if (getattr(self, cert) is None) != (getattr(self, key) is None):
                missing = key if getattr(self, key) is None else cert
                raise SettingsError(VARIABLES[missing], f"required together with {VARIABLES[cert]}")
        self._check_kafka_tls_files()
        if self.schema_registry_password is not None and self.schema_registry_username is None:
            raise SettingsError(VARIABLES["schema_registry_username"], "required with a registry password")
        if self.batch_within_seconds <= 0 or self.retry_backoff_seconds <= 0:
            bad = "batch_within_seconds" if self.batch_within_seconds <= 0 else "retry_backoff_seconds"
            raise SettingsError(VARIABLES[bad], "must be greater than 0")
        if (
            self.retry_backoff_max_seconds < self.retry_backoff_seconds
        ):  # a cap of 0 would retry in a tight loop
            raise SettingsError(
                VARIABLES["retry_backoff_max_seconds"],
                f"must be at least {VARIABLES['retry_backoff_seconds']} ({self.retry_backoff_seconds}),"
                f" got {self.retry_backoff_max_seconds}",
            )

    def _check_kafka_tls_files(self) -> None:
        # Loaded here, so a wrong file stops the start naming the variable instead of a traceback later;
        # the empty key password makes an encrypted key fail instead of OpenSSL prompting on the terminal.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            if self.kafka_ssl_cafile is not None:
                context.load_verify_locations(cafile=self.kafka_ssl_cafile)
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                VARIABLES["kafka_ssl_cafile"], f"not a PEM CA file: {_ssl_reason(exc)}"
            ) from None
        if self.kafka_ssl_certfile is None or self.kafka_ssl_keyfile is None:
            return
        try:
            context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile, password=lambda: b"")
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                VARIABLES["kafka_ssl_keyfile"],
                f"cannot load it with AVROFLOW_KAFKA_SSL_CERTFILE as a PEM certificate and its unencrypted "
                f"private key: {_ssl_reason(exc)}",
            ) from None

    @property
    def kafka_uses_ssl(self) -> bool:
        """Whether the Kafka connection is encrypted (SSL or SASL_SSL)."""
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    def dlq_topic_for(self, source: str) -> str:
        """Return the default dead-letter topic of `source`."""
        return source + self.dlq_suffix

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "schema_registry_urls":
                value = tuple(mask_url(u) for u in value)
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason).lower().replace("_", " ") if reason else str(exc)


def _parse_str(variable: str, raw: str) -> str:
    return raw


def _parse_list(variable: str, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:
        raise SettingsError(variable, "expected a comma-separated list")
    return items


def _parse_bootstrap(variable: str, raw: str) -> tuple[str, ...]:
    servers = _parse_list(variable, raw)
    for server in servers:
        host, sep, port = server.removeprefix("kafka://").rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise SettingsError(variable, f"expected host:port entries (port 1 to 65535), got {server!r}")
    return tuple(s.removeprefix("kafka://") for s in servers)


def _parse_urls(variable: str, raw: str) -> tuple[str, ...]:
    urls = _parse_list(variable, raw)
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise SettingsError(variable, f"expected http:// or https:// URLs, got {mask_url(url)!r}")
    return urls


def _parse_bool(variable: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(variable, f"expected true/false (or 1/0, yes/no, on/off), got {raw!r}")


def _number(
    convert: Callable[[str], N], minimum: N, kind: str, maximum: N | None = None
) -> Callable[[str, str], N]:
    def parse(variable: str, raw: str) -> N:
        try:
            value = convert(raw)
        except ValueError:
            raise SettingsError(variable, f"expected {kind}, got {raw!r}") from None
        # written as `not (...)` so that NaN is rejected too
        if not (math.isfinite(value) and value >= minimum and (maximum is None or value <= maximum)):
            bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise SettingsError(variable, f"must be {bound}, got {raw!r}")
        return value

    return parse


def _choice(options: tuple[str, ...], *, upper: bool = True) -> Callable[[str, str], str]:
    def parse(variable: str, raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise SettingsError(variable, f"expected one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def _parse_secret(variable: str, raw: str) -> Secret:
    return Secret(raw)


def _parse_file(variable: str, raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise SettingsError(variable, f"no such file: {raw}")
    return path


def _parse_pipelines(variable: str, raw: str) -> str:
    if not _PIPELINES_SPEC.match(raw):
        raise SettingsError(variable, f"expected 'package.module:ATTRIBUTE', got {raw!r}")
    return raw


def _parse_topic_suffix(variable: str, raw: str) -> str:
    if not re.fullmatch(r"[\w.-]+", raw):
        raise SettingsError(variable, f"expected letters, digits, '.', '_' or '-', got {raw!r}")
    return raw


_seconds = _number(float, 0.0, "a number of seconds")
_PARSERS: Final[dict[str, Callable[[str, str], Any]]] = {
    "kafka_bootstrap_servers": _parse_bootstrap,
    "schema_registry_urls": _parse_urls,
    "pipelines": _parse_pipelines,
    "kafka_security_protocol": _choice(SECURITY_PROTOCOLS),
    "kafka_sasl_mechanism": _choice(SASL_MECHANISMS),
    "kafka_sasl_password": _parse_secret,
    "kafka_ssl_cafile": _parse_file,
    "kafka_ssl_certfile": _parse_file,
    "kafka_ssl_keyfile": _parse_file,
    "kafka_session_timeout_seconds": _number(float, 1.0, "a number of seconds"),
    "kafka_producer_linger_seconds": _seconds,
    "kafka_producer_max_batch_size": _number(int, 1, "a whole number of bytes"),
    "kafka_commit_interval_seconds": _number(float, 0.1, "a number of seconds"),
    "kafka_fetch_max_wait_seconds": _number(float, 0.001, "a number of seconds"),
    "kafka_idempotent_producer": _parse_bool,
    "faust_fast_path": _parse_bool,
    "topic_partitions": _number(int, 1, "a whole number"),
    "schema_registry_password": _parse_secret,
    "schema_registry_bearer_token": _parse_secret,
    "schema_registry_ca_file": _parse_file,
    "schema_registry_cert_file": _parse_file,
    "schema_registry_key_file": _parse_file,
    "schema_registry_timeout_seconds": _number(float, 0.1, "a number of seconds"),
    "latest_schema_ttl_seconds": _seconds,
    "schema_not_found_retry_seconds": _seconds,
    "auto_register_schemas": _parse_bool,
    "dlq_suffix": _parse_topic_suffix,
    "batch_size": _number(int, 1, "a whole number"),
    "batch_within_seconds": _seconds,
    "retry_backoff_seconds": _seconds,
    "retry_backoff_max_seconds": _seconds,
    "registry_check_interval_seconds": _number(float, 0.1, "a number of seconds"),
    "readiness_broker_timeout_seconds": _number(float, 1.0, "a number of seconds"),
    "lag_check_interval_seconds": _number(float, 1.0, "a number of seconds"),
    "web_port": _number(int, 1, "a TCP port", 65535),
    "log_level": _choice(LOG_LEVELS),
    "log_format": _choice(LOG_FORMATS, upper=False),
    "shutdown_timeout_seconds": _number(float, 1.0, "a number of seconds"),
}

#: The environment variable each field is read from.
VARIABLES: Final[dict[str, str]] = {
    f.name: PREFIX + ("SCHEMA_REGISTRY_URL" if f.name == "schema_registry_urls" else f.name.upper())
    for f in fields(Settings)
}

__all__ = ["PREFIX", "VARIABLES", "Secret", "Settings", "SettingsError", "mask_url"]


def _unknown_setting(name: str) -> str:
    close = difflib.get_close_matches(name, VARIABLES.values(), n=1)
    if close:
        return f"unknown setting; did you mean {close[0]}?"
    return f"unknown setting (known: {', '.join(sorted(VARIABLES.values()))})"

"""`avroflow produce` and `avroflow consume`: Avro console tools on aiokafka.

Like Confluent's kafka-avro-console-producer and -consumer: `produce` reads one JSON object per line from
stdin, encodes it with the latest schema of ``<topic>-value`` in the Confluent wire format and produces
it; `consume` prints each message as a JSON line with its partition, offset, key, schema id and decoded
value. Two JSON forms (``--format``): ``json``, natural JSON with ISO dates (`workers.avro_json`), and
``avro-json``, Avro's own JSON encoding as Confluent's tools print and read it, value only, one per line
(`workers.avro_json_encoding`): what `consume --format avro-json` prints, `produce --format avro-json`
writes back as the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from registry_codecs.avro import parse_registered
from registry_codecs.errors import CodecError, SubjectNotFound
from registry_codecs.framing import HEADER_SIZE, header, looks_framed
from registry_codecs.registry import RegistryClient
from registry_codecs.serde import AvroDeserializer, AvroSerializer
from workers.avro_json import JsonConversionError, from_json, to_json_default
from workers.avro_json_encoding import AvroBodyError, AvroJsonCodec
from workers.broker_wait import KafkaAccessRefused, probe
from workers.cli import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from workers.cli_clients import kafka_options, kafka_security_options, load_settings, registry_client
from workers.settings import Settings, SettingsError

_POLL_MS = 200
_CONNECT_TIMEOUT = 10.0
AVRO_JSON = "avro-json"


class LineError(ValueError):
    """An input line cannot be produced; the message says which line and why."""


class KafkaUnreachable(ConnectionError):
    """No bootstrap server answered; the message says what each one did."""


def kafka_reachable(settings: Settings) -> None:
    """Check, with one connection attempt per bootstrap server, that the broker answers with these settings.

    Raises:
        KafkaAccessRefused: the credentials or a certificate were refused (retrying cannot help).
        KafkaUnreachable: no server answered.
    """
    servers = settings.kafka_bootstrap_servers
    error = probe(servers, kafka_security_options(settings), _CONNECT_TIMEOUT)
    if error is not None:
        raise KafkaUnreachable(f"Kafka broker unreachable at {','.join(servers)}: {error}")


def cmd_produce(args: argparse.Namespace) -> int:
    """`produce TOPIC`: JSON lines from stdin to Avro records on TOPIC."""
    return _with_clients(args, "produce", lambda s, c: _produce(s, c, args, sys.stdin))


def cmd_consume(args: argparse.Namespace) -> int:
    """`consume TOPIC`: Avro records on TOPIC to JSON lines on stdout."""
    return _with_clients(args, "consume", lambda s, c: _consume(s, c, args, sys.stdout))


def _with_clients(
    args: argparse.Namespace,
    command: str,
    run: Callable[[Settings, RegistryClient], Coroutine[Any, Any, int]],
) -> int:
    try:
        settings = load_settings(bootstrap_servers=args.bootstrap_servers, registry_url=args.registry_url)
    except SettingsError as exc:
        print(f"avroflow {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        kafka_reachable(settings)
    except KafkaAccessRefused as exc:
        print(f"avroflow {command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KafkaUnreachable as exc:
        print(f"avroflow {command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    client = registry_client(settings)
    try:
        return asyncio.run(run(settings, client))
    except SubjectNotFound as exc:
        print(
            f"avroflow {command}: {exc} (register a schema first: avroflow schemas register)", file=sys.stderr
        )
    except (CodecError, KafkaError, LineError) as exc:  # RegistryError is a CodecError
        print(f"avroflow {command}: {exc}", file=sys.stderr)
    finally:
        client.close()
    return EXIT_FAILED


class _Encoder:
    """Turns one JSON line into (key, framed value) with the subject's latest schema."""

    def __init__(self, client: RegistryClient, subject: str, key_field: str | None, form: str) -> None:
        self.serializer = AvroSerializer(client, subject)
        self.schema_id = self.serializer.schema_id
        registered = client.get_schema(self.schema_id)
        self.schema = json.loads(registered.schema_str)
        self.key_field = key_field
        # Avro JSON is written straight to the body, so the branch each union value names is the one written
        self.avro_json = AvroJsonCodec(parse_registered(registered)) if form == AVRO_JSON else None

    def encode(self, number: int, line: str) -> tuple[bytes | None, bytes]:
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise LineError(f"line {number}: not JSON: {exc}") from exc
        try:
            if self.avro_json is not None:
                value = header(self.schema_id) + self.avro_json.from_json(line)
            elif not isinstance(record, dict):
                raise LineError(f"line {number}: expected a JSON object, got {type(record).__name__}")
            else:
                value = self.serializer.encode(from_json(self.schema, record))
        # JsonConversionError, AvroJsonError and RecordDoesNotFitSchema, whose messages name the field path
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, LineError):
                raise
            raise LineError(f"line {number}: {exc or 'nested too deep'}") from exc
        return self._key(number, record), value

    def _key(self, number: int, record: Any) -> bytes | None:
        if self.key_field is None:
            return None
        if not isinstance(record, dict):
            raise LineError(f"line {number}: no field {self.key_field!r} for the key in a non-object value")
        if self.key_field not in record:
            raise LineError(f"line {number}: no field {self.key_field!r} for the key")
        key = record[self.key_field]
        if self.avro_json is not None and isinstance(key, dict) and len(key) == 1:
            [key] = key.values()  # {"string": "u1"}: the union's value, not its wrapper
        text = key if isinstance(key, str) else json.dumps(key, default=to_json_default)
        return text.encode("utf-8")


async def _produce(
    settings: Settings, client: RegistryClient, args: argparse.Namespace, stdin: TextIO
) -> int:
    subject = args.subject or f"{args.topic}-value"
    encoder = _Encoder(client, subject, args.key_field, args.format)
    producer = AIOKafkaProducer(acks="all", **kafka_options(settings))
    await producer.start()
    sent: list[asyncio.Future[Any]] = []
    try:
        number = 0
        while line := await asyncio.to_thread(stdin.readline):
            number += 1
            if line.strip():
                key, value = encoder.encode(number, line)
                sent.append(await producer.send(args.topic, value=value, key=key))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    print(
        f"produced {len(sent)} record(s) to {args.topic} with schema id {encoder.schema_id} ({subject})",
        file=sys.stderr,
    )
    return EXIT_OK


async def _consume(settings: Settings, client: RegistryClient, args: argparse.Namespace, out: TextIO) -> int:
    consumer = AIOKafkaConsumer(
        args.topic,
        group_id=args.group,
        enable_auto_commit=args.group is not None,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        **kafka_options(settings),
    )
    deserializer = AvroDeserializer(client, subject=args.topic)
    show = AvroJsonPrinter(client, deserializer).line if args.format == AVRO_JSON else None
    await consumer.start()
    printed = skipped = 0
    idle_since = time.monotonic()
    try:
        while args.max_messages is None or printed + skipped < args.max_messages:
            if args.timeout is not None and time.monotonic() - idle_since >= args.timeout:
                break
            batches = await consumer.getmany(timeout_ms=_POLL_MS, max_records=args.max_messages)
            for message in (m for batch in batches.values() for m in batch):
                if args.max_messages is not None and printed + skipped >= args.max_messages:
                    break
                idle_since = time.monotonic()
                text = _text(show, deserializer, message)
                if text is None:
                    skipped += 1
                else:
                    print(text, file=out, flush=True)
                    printed += 1
    finally:
        await consumer.stop()
    also = f" ({skipped} skipped: not printable as Avro JSON)" if skipped else ""
    print(f"consumed {printed} message(s) from {args.topic}{also}", file=sys.stderr)
    return EXIT_FAILED if skipped else EXIT_OK


def _text(
    show: Callable[[bytes | None], str] | None, deserializer: AvroDeserializer, message: Any
) -> str | None:
    """The line to print for `message`, or None when it cannot be printed as Avro JSON (said on stderr)."""
    if show is None:
        return json.dumps(render(deserializer, message), default=to_json_default)
    try:
        return show(message.value)
    # Not Avro: said on stderr, never printed where a value is expected; a registry outage stops the tool.
    except (ValueError, CodecError) as exc:
        if isinstance(exc, CodecError) and exc.retriable:
            raise
        reason = exc.reason if isinstance(exc, CodecError) else "avro_json"
        where = f"partition {message.partition} offset {message.offset}"
        print(f"avroflow consume: {where}: skipped, {reason}: {exc}", file=sys.stderr)
        return None


class AvroJsonPrinter:
    """Prints a message value as kafka-avro-console-consumer does: the Avro JSON of its writer schema.

    A tombstone prints as ``null``, as Confluent's consumer prints it.
    """

    def __init__(self, client: RegistryClient, deserializer: AvroDeserializer) -> None:
        self._client = client
        self._deserializer = deserializer
        self._codecs: dict[int, AvroJsonCodec] = {}

    def line(self, value: bytes | None) -> str:
        """Return the Avro JSON text of one message value.

        Raises:
            CodecError: not a frame, an unknown schema id, a body that does not decode (retriable ones,
                the registry unreachable, are raised too: `RegistryUnavailable` is not a ValueError).
            AvroBodyError: the body does not read as Avro JSON's walk reads it.
        """
        if value is None:
            return "null"
        schema_id, _ = self._deserializer.decode_with_id(value)  # the same checks and reasons as `json`
        codec = self._codecs.get(schema_id)
        if codec is None:
            codec = self._codecs[schema_id] = AvroJsonCodec(
                parse_registered(self._client.get_schema(schema_id))
            )
        return codec.to_json(value[HEADER_SIZE:])


def render(deserializer: AvroDeserializer, message: Any) -> dict[str, Any]:
    """Return the JSON-ready view of one consumed message.

    A null value (a tombstone, as compacted topics use to delete a key) is shown as ``"value": null``
    with ``"tombstone": true``. A value that is not a decodable frame is shown with ``"error"`` (the
    reason and message) and its raw bytes instead of the decoded value, so one poison message does not
    stop the tool. A registry that cannot answer is not such a case: `RegistryUnavailable` propagates.
    """
    line: dict[str, Any] = {
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "key": _key(deserializer, message.key),
    }
    if message.value is None:
        line.update(schema_id=None, value=None, tombstone=True)
        return line
    try:
        schema_id, value = deserializer.decode_with_id(message.value)
    except CodecError as exc:
        if exc.retriable:
            raise
        line.update(schema_id=None, value=None, error=f"{exc.reason}: {exc}", raw=message.value)
        return line
    line.update(schema_id=schema_id, value=value)
    return line


def _key(deserializer: AvroDeserializer, key: bytes | None) -> Any:
    if key is None:
        return None
    if looks_framed(key):  # a 5-byte key is a frame too: a record with no fields has an empty body
        try:
            return deserializer.decode(key)
        except CodecError as exc:
            if exc.retriable:
                raise
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key.decode("latin-1")


__all__ = [
    "AVRO_JSON",
    "AvroBodyError",
    "AvroJsonPrinter",
    "JsonConversionError",
    "KafkaUnreachable",
    "LineError",
    "cmd_consume",
    "cmd_produce",
    "kafka_reachable",
    "render",
]

"""`avroflow produce` and `avroflow consume`: Avro console tools on aiokafka.

Like Confluent's kafka-avro-console-producer and -consumer: `produce` reads one JSON object per line from
stdin, encodes it with the latest schema of ``<topic>-value`` in the Confluent wire format and produces
it; `consume` prints each message as a JSON line with its partition, offset, key, schema id and decoded
value. JSON <-> Avro conversion rules are in `workers.avro_json`.
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

from registry_codecs.errors import CodecError, RegistryError, SubjectNotFound
from registry_codecs.framing import looks_framed
from registry_codecs.registry import RegistryClient
from registry_codecs.serde import AvroDeserializer, AvroSerializer
from workers.avro_json import JsonConversionError, from_json, to_json_default
from workers.broker_wait import KafkaAccessRefused, probe
from workers.cli import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from workers.cli_clients import kafka_options, kafka_security_options, load_settings, registry_client
from workers.settings import Settings, SettingsError

_POLL_MS = 200
_CONNECT_TIMEOUT = 10.0


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
    except (RegistryError, KafkaError, LineError) as exc:
        print(f"avroflow {command}: {exc}", file=sys.stderr)
    finally:
        client.close()
    return EXIT_FAILED


class _Encoder:
    """Turns one JSON line into (key, framed value) with the subject's latest schema."""

    def __init__(self, client: RegistryClient, subject: str, key_field: str | None) -> None:
        self.serializer = AvroSerializer(client, subject)
        self.schema_id = self.serializer.schema_id
        self.schema = json.loads(client.get_schema(self.schema_id).schema_str)
        self.key_field = key_field

    def encode(self, number: int, line: str) -> tuple[bytes | None, bytes]:
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise LineError(f"line {number}: not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise LineError(f"line {number}: expected a JSON object, got {type(record).__name__}")
        try:
            value = self.serializer.encode(from_json(self.schema, record))
        # JsonConversionError and RecordDoesNotFitSchema, whose messages name the field path
        except ValueError as exc:
            raise LineError(f"line {number}: {exc}") from exc
        return self._key(number, record), value

    def _key(self, number: int, record: dict[str, Any]) -> bytes | None:
        if self.key_field is None:
            return None
        if self.key_field not in record:
            raise LineError(f"line {number}: no field {self.key_field!r} for the key")
        key = record[self.key_field]
        text = key if isinstance(key, str) else json.dumps(key, default=to_json_default)
        return text.encode("utf-8")


async def _produce(
    settings: Settings, client: RegistryClient, args: argparse.Namespace, stdin: TextIO
) -> int:
    subject = args.subject or f"{args.topic}-value"
    encoder = _Encoder(client, subject, args.key_field)
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
    await consumer.start()
    printed = 0
    idle_since = time.monotonic()
    try:
        while args.max_messages is None or printed < args.max_messages:
            if args.timeout is not None and time.monotonic() - idle_since >= args.timeout:
                break
            batches = await consumer.getmany(timeout_ms=_POLL_MS, max_records=args.max_messages)
            for message in (m for batch in batches.values() for m in batch):
                if args.max_messages is not None and printed >= args.max_messages:
                    break
                print(
                    json.dumps(render(deserializer, message), default=to_json_default), file=out, flush=True
                )
                printed += 1
                idle_since = time.monotonic()
    finally:
        await consumer.stop()
    print(f"consumed {printed} message(s) from {args.topic}", file=sys.stderr)
    return EXIT_OK


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
    "JsonConversionError",
    "KafkaUnreachable",
    "LineError",
    "cmd_consume",
    "cmd_produce",
    "kafka_reachable",
    "render",
]

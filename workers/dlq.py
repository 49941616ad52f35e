"""`avroflow dlq inspect` and `avroflow dlq replay`: dead letters read back, and sent back once fixed.

A dead letter (`workers.deadletter`) is the original message, key, bytes and headers, plus ``dlq.*``
headers saying where it came from and why. `inspect` prints one JSON line per dead letter with those
facts; `replay` sends the chosen ones back to their source topic (or ``--to``) with their original key,
bytes and headers (the ``dlq.*`` ones removed, ``dlq.replayed.from`` added), so the worker processes
them again once the cause is fixed (a sink schema registered, a transform corrected).

Replays are recorded in a ledger topic beside the dead-letter topic (``<dlq>.replayed``, one record per
replayed dead letter, keyed ``partition:offset``), written after the replayed record is acknowledged;
a later replay reads the ledger first and skips what it lists, so each dead letter goes back once. A
replay that dies between the two writes can send that one record again (the ledger says so at worst
once per crash). Both read the dead-letter topic from its start up to its end when they begin.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from workers import deadletter
from workers.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from workers.cli_clients import kafka_options, kafka_security_options, load_settings
from workers.settings import Settings, SettingsError

#: The suffix of the ledger topic that records which dead letters were replayed.
LEDGER_SUFFIX: Final = ".replayed"
#: Header added to a replayed record: ``<dead-letter topic>:<partition>:<offset>`` it came from.
REPLAYED_FROM: Final = "dlq.replayed.from"
_POLL_MS: Final = 500


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead-letter topic."""

    partition: int
    offset: int
    timestamp: int  # milliseconds since the epoch, when it was dead-lettered
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        """The last value of header `name`, as text (None when absent)."""
        values = [v for k, v in self.headers if k == name]
        return values[-1].decode("utf-8", "replace") if values else None

    @property
    def reason(self) -> str:
        return self.header(deadletter.ERROR_REASON) or "unknown"

    @property
    def source_topic(self) -> str | None:
        return self.header(deadletter.SOURCE_TOPIC)

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the source record had (every header but the ``dlq.*`` ones)."""
        return [(k, v) for k, v in self.headers if not k.startswith("dlq.")]

    def view(self, replayed: bool) -> dict[str, Any]:
        """The JSON-ready line `inspect` prints."""
        source_partition = self.header(deadletter.SOURCE_PARTITION)
        source_offset = self.header(deadletter.SOURCE_OFFSET)
        schema_id = self.header(deadletter.SCHEMA_ID)
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": _iso(self.timestamp),
            "reason": self.reason,
            "field": self.header(deadletter.ERROR_FIELD),
            "error_class": self.header(deadletter.ERROR_CLASS),
            "error_message": self.header(deadletter.ERROR_MESSAGE),
            "pipeline": self.header(deadletter.PIPELINE),
            "source": {
                "topic": self.source_topic,
                "partition": int(source_partition) if source_partition else None,
                "offset": int(source_offset) if source_offset else None,
            },
            "schema_id": int(schema_id) if schema_id else None,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "value_bytes": len(self.value) if self.value is not None else None,
            "replayed": replayed,
        }


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters a command acts on: by reason, and by when they were dead-lettered."""

    reasons: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.since_ms is not None and letter.timestamp < self.since_ms:
            return False
        return self.until_ms is None or letter.timestamp < self.until_ms


@dataclass
class ReplayReport:
    """What a replay did, printed as one JSON line."""

    read: int = 0
    filtered_out: int = 0
    already_replayed: int = 0
    replayed: int = 0
    no_source: int = 0

    def line(self) -> str:
        return json.dumps(
            {
                "read": self.read,
                "filtered_out": self.filtered_out,
                "already_replayed": self.already_replayed,
                "replayed": self.replayed,
                "no_source_topic": self.no_source,
            }
        )


async def _described(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """The partitions of `topic` as the admin API describes them (none when it does not exist)."""
    admin = _admin(settings)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return []
        (described,) = await admin.describe_topics([topic])
        partitions: list[dict[str, Any]] = described["partitions"]
        return partitions
    finally:
        await admin.close()


async def partitions_of(settings: Settings, topic: str) -> list[int]:
    """The partition numbers of `topic` (none when it does not exist)."""
    return sorted(p["partition"] for p in await _described(settings, topic))


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=list(settings.kafka_bootstrap_servers), **kafka_security_options(settings)
    )


async def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of `topic` from its start to its end as of now (no consumer group)."""
    partitions = await partitions_of(settings, topic)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, **kafka_options(settings))
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            batches = await consumer.getmany(*tps, timeout_ms=_POLL_MS)
            for tp, batch in batches.items():
                records += [m for m in batch if m.offset < ends[tp]]
        return records
    finally:
        await consumer.stop()


def dead_letters(records: Iterable[Any]) -> list[DeadLetter]:
    """The records of a dead-letter topic as `DeadLetter`s, in partition and offset order."""
    letters = [
        DeadLetter(
            r.partition, r.offset, r.timestamp, r.key, r.value, tuple((k, bytes(v)) for k, v in r.headers)
        )
        for r in records
    ]
    return sorted(letters, key=lambda d: (d.partition, d.offset))


def _headers(headers: Iterable[tuple[str, Any]]) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, bytes(v) if v is not None else b"") for k, v in headers)


async def replayed_positions(settings: Settings, topic: str) -> set[tuple[int, int]]:
    """The ``(partition, offset)`` of every dead letter of `topic` the ledger lists as replayed."""
    positions = set()
    for record in await read_topic(settings, topic + LEDGER_SUFFIX):
        partition, _, offset = (record.key or b"").decode().partition(":")
        if partition.isdigit() and offset.isdigit():
            positions.add((int(partition), int(offset)))
    return positions


async def inspect(settings: Settings, topic: str, selection: Selection, out: TextIO) -> int:
    """Print the selected dead letters of `topic`; return how many."""
    replayed = await replayed_positions(settings, topic)
    shown = 0
    for letter in dead_letters(await read_topic(settings, topic)):
        if selection.matches(letter):
            line = letter.view((letter.partition, letter.offset) in replayed)
            print(json.dumps(line), file=out, flush=True)
            shown += 1
    return shown


async def replay(
    settings: Settings, topic: str, selection: Selection, *, to: str | None = None, dry_run: bool = False
) -> ReplayReport:
    """Send the selected dead letters of `topic` back (to their source topic, or `to`), each once."""
    report = ReplayReport()
    done = await replayed_positions(settings, topic)
    chosen = []
    for letter in dead_letters(await read_topic(settings, topic)):
        report.read += 1
        if not selection.matches(letter):
            report.filtered_out += 1
        elif (letter.partition, letter.offset) in done:
            report.already_replayed += 1
        elif (target := to or letter.source_topic) is None:
            report.no_source += 1
        else:
            chosen.append((letter, target))
    if dry_run or not chosen:
        report.replayed = len(chosen) if dry_run else 0
        return report
    await _ensure_ledger(settings, topic)
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **kafka_options(settings))
    await producer.start()
    try:
        for letter, target in chosen:
            await _replay_one(producer, topic, letter, target)
            report.replayed += 1
    finally:
        await producer.stop()
    return report


async def _replay_one(producer: AIOKafkaProducer, topic: str, letter: DeadLetter, target: str) -> None:
    position = f"{letter.partition}:{letter.offset}"
    headers = [*letter.original_headers(), (REPLAYED_FROM, f"{topic}:{position}".encode())]
    await (await producer.send(target, value=letter.value, key=letter.key, headers=headers))
    record = json.dumps({"to": target, "replayed_at": _iso(_now_ms())}).encode()
    await (await producer.send(topic + LEDGER_SUFFIX, value=record, key=position.encode()))


async def _ensure_ledger(settings: Settings, topic: str) -> None:
    """Create the ledger topic of `topic` when missing: one partition, as many replicas as `topic`."""
    replicas = max(len(p["replicas"]) for p in await _described(settings, topic))
    admin = _admin(settings)
    await admin.start()
    try:
        name = topic + LEDGER_SUFFIX
        if name not in await admin.list_topics():
            try:
                await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=replicas)])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


def cmd_inspect(args: argparse.Namespace) -> int:
    """`dlq inspect TOPIC`: print the dead letters of TOPIC as JSON lines."""
    settings, selection = _prepare(args)
    if settings is None or selection is None:
        return EXIT_USAGE
    shown = asyncio.run(inspect(settings, args.topic, selection, sys.stdout))
    print(f"{shown} dead letter(s) in {args.topic}", file=sys.stderr)
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """`dlq replay TOPIC`: send the chosen dead letters of TOPIC back to their source topic."""
    settings, selection = _prepare(args)
    if settings is None or selection is None:
        return EXIT_USAGE
    report = asyncio.run(replay(settings, args.topic, selection, to=args.to, dry_run=args.dry_run))
    print(report.line())
    return EXIT_FAILED if report.no_source else EXIT_OK


def _prepare(args: argparse.Namespace) -> tuple[Settings | None, Selection | None]:
    try:
        settings = load_settings(bootstrap_servers=args.bootstrap_servers, registry_url=args.registry_url)
        selection = Selection(frozenset(args.reason or ()), _when(args.since), _when(args.until))
    except (SettingsError, ValueError) as exc:
        print(f"avroflow dlq: {exc}", file=sys.stderr)
        return None, None
    return settings, selection


def _when(text: str | None) -> int | None:
    """Milliseconds since the epoch from an ISO-8601 time (UTC when it names no zone) or a number of ms."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


__all__ = [
    "LEDGER_SUFFIX",
    "REPLAYED_FROM",
    "DeadLetter",
    "ReplayReport",
    "Selection",
    "cmd_inspect",
    "cmd_replay",
    "inspect",
    "replay",
]

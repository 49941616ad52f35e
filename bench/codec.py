"""Codec benchmark: records/s of our Avro codec vs raw fastavro and confluent-kafka, as ratios in one run.

Run ``python bench/codec.py`` (or ``make bench``). It starts the project's local schema registry on a free
loopback port (``--in-memory`` skips it), registers a 17-field schema and an evolved reader schema, then
times, interleaved and best-of-N:

- raw fastavro with struct framing (the practical limit, the anchor of every ratio);
- our AvroSerializer/AvroDeserializer on the real RegistryClient, and the same through the Faust codec
  (our encodes are validated: every value checked against what its Avro type holds exactly; raw is not);
- confluent-kafka's AvroSerializer/AvroDeserializer on its mock:// registry;
- decoding through an evolved reader schema: ours, and fastavro's own per-message resolution;
- typed records (`workers.typed`, what an agent with ``value_type`` gets): our decode then the record as a
  dataclass or a `faust.Record`, and such a record turned back into a dict and encoded; their ratios are
  to our own dict decode and encode (the cost of typing, issue 15: at most 1.3x, a ratio of 0.77 or more).

It prints a table, checks that the timed loops made no registry request, and ends with one JSON line of
the ratios. Wall time never decides pass or fail; compare ratios from one run, the machine is noisy.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import decimal
import gc
import io
import json
import random
import struct
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fastavro
import faust
from prometheus_client import CollectorRegistry

from registry_codecs import AvroDeserializer, AvroSerializer, CodecMetrics, RegistryClient, ValueDoesNotFit
from registry_codecs.faust_codec import ConfluentAvroCodec
from registry_codecs.memory import InMemorySchemaLookup
from registry_codecs.schemas import SchemaLookup
from workers.typed import RecordType, untyped

SUBJECT = "bench-events-value"
ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [{"name": n, "type": "string"} for n in ("street", "city", "zip")],
}
WRITER: dict[str, Any] = {
    "type": "record",
    "name": "Event",
    "namespace": "com.example.avroflow",
    "fields": [
        {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "user_id", "type": "long"},
        {"name": "session", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "score", "type": "double"},
        {"name": "active", "type": "boolean"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["CLICK", "VIEW", "BUY"]}},
        {"name": "referrer", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attributes", "type": {"type": "map", "values": "string"}},
        {"name": "address", "type": ADDRESS},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "open_time", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "rating", "type": "float"},
    ],
}


def evolved_reader() -> dict[str, Any]:
    """The writer schema one version later: a field dropped, two added with defaults, two promoted."""
    reader = copy.deepcopy(WRITER)
    fields = [f for f in reader["fields"] if f["name"] != "session"]
    for field in fields:
        if field["name"] == "count":
            field["type"] = "long"
        if field["name"] == "rating":
            field["type"] = "double"
    fields.append({"name": "channel", "type": "string", "default": "web"})
    fields.append({"name": "email", "type": ["null", "string"], "default": None})
    reader["fields"] = fields
    return reader


@dataclasses.dataclass
class Event:
    """WRITER's record as a dataclass (the nested address stays a dict)."""

    event_id: uuid.UUID
    user_id: int
    session: str
    count: int
    score: float
    active: bool
    kind: str
    tags: list[str]
    attributes: dict[str, str]
    address: dict[str, str]
    created_at: datetime.datetime
    updated_at: datetime.datetime
    birth_date: datetime.date
    open_time: datetime.time
    amount: decimal.Decimal
    rating: float
    referrer: str | None = None


class EventRecord(faust.Record, serializer="json"):
    """WRITER's record as a faust.Record."""

    event_id: uuid.UUID
    user_id: int
    session: str
    count: int
    score: float
    active: bool
    kind: str
    tags: list[str]
    attributes: dict[str, str]
    address: dict[str, str]
    created_at: datetime.datetime
    updated_at: datetime.datetime
    birth_date: datetime.date
    open_time: datetime.time
    amount: decimal.Decimal
    rating: float
    referrer: str | None = None


def make_records(n: int) -> list[dict[str, Any]]:
    """`n` varied records that fit WRITER (seeded: every run encodes the same data)."""
    rnd = random.Random(7)
    utc = datetime.UTC
    base = datetime.datetime(2024, 5, 1, tzinfo=utc)
    return [
        {
            "event_id": uuid.UUID(int=rnd.getrandbits(128)),
            "user_id": rnd.randrange(2**40),
            "session": f"sess-{rnd.randrange(10**8):08d}",
            "count": rnd.randrange(-1000, 1000),
            "score": rnd.random() * 100,
            "active": rnd.random() < 0.5,
            "kind": rnd.choice(["CLICK", "VIEW", "BUY"]),
            "referrer": None if rnd.random() < 0.3 else "https://example.com/landing",
            "tags": [f"t{rnd.randrange(50)}" for _ in range(rnd.randrange(4))],
            "attributes": {f"k{j}": f"v{rnd.randrange(99)}" for j in range(rnd.randrange(3))},
            "address": {"street": f"{rnd.randrange(999)} Main St", "city": "Springfield", "zip": "12345"},
            "created_at": base + datetime.timedelta(milliseconds=rnd.randrange(10**9)),
            "updated_at": base + datetime.timedelta(microseconds=rnd.randrange(10**12)),
            "birth_date": datetime.date(1950, 1, 1) + datetime.timedelta(days=rnd.randrange(20000)),
            "open_time": datetime.time(rnd.randrange(24), rnd.randrange(60), 0, 1000 * rnd.randrange(1000)),
            "amount": decimal.Decimal(rnd.randrange(-(10**8), 10**8)) / 100,
            "rating": float(rnd.randrange(50)) / 10,
        }
        for _ in range(n)
    ]


@contextmanager
def schema_lookup(in_memory: bool, metrics: CodecMetrics) -> Iterator[tuple[SchemaLookup, str]]:
    """Yield a lookup (the real client on a real local registry unless `in_memory`) and its description."""
    if in_memory:
        yield InMemorySchemaLookup(), "in-memory lookup"
        return
    from devstack.registry.process import RegistryProcess

    with RegistryProcess() as registry:
        client = RegistryClient(registry.url, metrics=metrics)
        try:
            yield client, f"RegistryClient on the local registry at {registry.url}"
        finally:
            client.close()


def confluent_pair(records: list[dict[str, Any]]) -> tuple[Callable[[Any], Any], Callable[[Any], Any], bytes]:
    """confluent-kafka's serializer and deserializer on its mock registry, and one of its frames."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer as CDeserializer
    from confluent_kafka.schema_registry.avro import AvroSerializer as CSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient.new_client({"url": "mock://bench"})
    ctx = SerializationContext("bench-events", MessageField.VALUE)
    serializer = CSerializer(client, json.dumps(WRITER))
    deserializer = CDeserializer(client)
    frame = serializer(records[0], ctx)
    return (lambda r: serializer(r, ctx)), (lambda f: deserializer(f, ctx)), frame


def build_variants(
    lookup: SchemaLookup, metrics: CodecMetrics, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """Return {name: (operation, inputs)} for every timed variant."""
    writer_id = lookup.register(SUBJECT, json.dumps(WRITER))
    parsed = fastavro.parse_schema(copy.deepcopy(WRITER))
    parsed_reader = fastavro.parse_schema(evolved_reader())
    pack_header, unpack_header = struct.Struct(">bI").pack, struct.Struct(">bI").unpack
    header = pack_header(0, writer_id)

    def raw_encode(record: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(header)
        fastavro.schemaless_writer(buffer, parsed, record)
        return buffer.getvalue()

    def raw_decode(data: bytes) -> Any:
        buffer = io.BytesIO(data)
        _magic, _schema_id = unpack_header(buffer.read(5))
        return fastavro.schemaless_reader(buffer, parsed, None)

    def fastavro_resolving_decode(data: bytes) -> Any:
        buffer = io.BytesIO(data)
        _magic, _schema_id = unpack_header(buffer.read(5))
        return fastavro.schemaless_reader(buffer, parsed, parsed_reader)

    frames = [raw_encode(r) for r in records]
    serializer = AvroSerializer(lookup, SUBJECT, metrics=metrics)
    deserializer = AvroDeserializer(lookup, subject=SUBJECT, metrics=metrics)
    evolving = AvroDeserializer(lookup, reader_schema=evolved_reader(), subject=SUBJECT, metrics=metrics)
    codec = ConfluentAvroCodec(lookup=lookup, subject=SUBJECT, metrics=metrics)
    c_encode, c_decode, c_frame = confluent_pair(records)
    c_frames = [c_frame[:1] + c_frame[1:5] + f[5:] for f in frames]  # same bodies, their schema id
    assert serializer.encode(records[0]) == frames[0] and codec.dumps(records[0]) == frames[0]
    _check_validated((serializer.encode, codec.dumps), records[0], raw_encode)
    assert evolving.decode(frames[0]) == fastavro_resolving_decode(frames[0])
    typed = _typed_variants(serializer, deserializer, records, frames)
    return typed | {
        "raw_encode": (raw_encode, records),
        "codec_encode": (serializer.encode, records),
        "faust_codec_encode": (codec.dumps, records),
        "confluent_encode": (c_encode, records),
        "raw_decode": (raw_decode, frames),
        "codec_decode": (deserializer.decode, frames),
        "faust_codec_decode": (codec.loads, frames),
        "confluent_decode": (c_decode, c_frames),
        "codec_decode_reader_schema": (evolving.decode, frames),
        "fastavro_decode_reader_schema": (fastavro_resolving_decode, frames),
    }


def _typed_variants(
    serializer: AvroSerializer,
    deserializer: AvroDeserializer,
    records: list[dict[str, Any]],
    frames: list[bytes],
) -> dict[str, Any]:
    """Decode to and encode from a dataclass and a faust.Record, the way an agent's `TypedTransform` does."""
    variants = {}
    for label, cls in (("dataclass", Event), ("faust_record", EventRecord)):
        record_type = RecordType.of(cls)
        instances = [record_type.build(r) for r in records]
        assert serializer.encode(untyped(instances[0])) == frames[0]

        def decode(data: bytes, build: Callable[[Any], Any] = record_type.build) -> Any:
            return build(deserializer.decode(data))

        def encode(instance: Any, dump: Callable[[Any], Any] = serializer.encode) -> bytes:
            return dump(untyped(instance))

        variants[f"typed_{label}_decode"] = (decode, frames)
        variants[f"typed_{label}_encode"] = (encode, instances)
    return variants


def _check_validated(
    ours: tuple[Callable[[Any], Any], ...], record: dict[str, Any], raw: Callable[[Any], Any]
) -> None:
    """Check that our encoders refuse an int out of range, which raw fastavro writes silently."""
    overflowing = {**record, "count": 2**31 + 5}
    raw(overflowing)
    for encode in ours:
        try:
            encode(overflowing)
        except ValueDoesNotFit:
            continue
        raise AssertionError(f"{encode} wrote an int out of range: the timed encodes are not validated")


def measure(variants: dict[str, Any], rounds: int, batch: int) -> dict[str, float]:
    """Best records/s per variant over `rounds` interleaved batches of `batch` operations each."""
    best = dict.fromkeys(variants, 0.0)
    perf_counter = time.perf_counter
    gc.disable()  # a collection landing in one variant's batch and not another's is noise, not speed
    try:
        for round_no in range(rounds + 1):
            for name, (operation, inputs) in variants.items():
                n = len(inputs)
                start = perf_counter()
                for i in range(batch):
                    operation(inputs[i % n])
                elapsed = perf_counter() - start
                if round_no:  # round 0 warms caches, schemas and the allocator
                    best[name] = max(best[name], batch / elapsed)
                gc.collect(0)
            gc.collect()
    finally:
        gc.enable()
    return best


RATIOS = {
    "codec_encode": "raw_encode",
    "faust_codec_encode": "raw_encode",
    "confluent_encode": "raw_encode",
    "codec_decode": "raw_decode",
    "faust_codec_decode": "raw_decode",
    "confluent_decode": "raw_decode",
    "codec_decode_reader_schema": "raw_decode",
    "fastavro_decode_reader_schema": "raw_decode",
    "typed_dataclass_decode": "codec_decode",
    "typed_dataclass_encode": "codec_encode",
    "typed_faust_record_decode": "codec_decode",
    "typed_faust_record_encode": "codec_encode",
}


def registry_requests(metrics_registry: CollectorRegistry) -> float:
    """Registry HTTP requests counted so far by the client's metrics."""
    total = 0.0
    for family in metrics_registry.collect():
        if family.name == "avroflow_registry_requests":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="interleaved timing rounds (best is kept)")
    parser.add_argument("--batch", type=int, default=600, help="operations per variant per round")
    parser.add_argument("--in-memory", action="store_true", help="no registry process: an in-memory lookup")
    args = parser.parse_args(argv)
    records = make_records(1000)
    metrics_registry = CollectorRegistry()
    metrics = CodecMetrics.create(metrics_registry)
    with schema_lookup(args.in_memory, metrics) as (lookup, where):
        variants = build_variants(lookup, metrics, records)
        measure(variants, 0, 200)  # first use of every schema id: fetch, parse, plan
        requests_before = registry_requests(metrics_registry)
        rates = measure(variants, args.rounds, args.batch)
        requests_during = registry_requests(metrics_registry) - requests_before
    frame_size = len(variants["raw_decode"][1][0])
    print(f"17-field record, {frame_size}-byte frame; schemas from {where}")
    python = sys.version.split()[0]
    print(f"best of {args.rounds} interleaved rounds of {args.batch} operations; Python {python}")
    print(f"{'variant':32} {'records/s':>11} {'ratio':>7}  to")
    for name, rate in rates.items():
        anchor = RATIOS.get(name)
        ratio = f"{rate / rates[anchor]:.2f}x" if anchor else "1.00x"
        print(f"{name:32} {rate:11,.0f} {ratio:>7}  {anchor or name}")
    print(f"registry requests during the timed loops: {requests_during:.0f}")
    summary: dict[str, float] = {
        name: round(rates[name] / rates[anchor], 3) for name, anchor in RATIOS.items()
    }
    summary["raw_encode_per_s"] = round(rates["raw_encode"])
    summary["raw_decode_per_s"] = round(rates["raw_decode"])
    summary["registry_requests_during_timing"] = requests_during
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

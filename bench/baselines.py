"""The anchors `bench/worker.py` runs as subprocesses: a bare Faust agent and plain aiokafka loops.

``python bench/baselines.py faust --bootstrap H:P --source IN --sink OUT --group G`` runs a Faust
pass-through agent with Faust's defaults (raw bytes in, the same bytes out, one ``await sink.send`` per
record, the way a Faust agent is usually written). Only the session timeout (Tansu makes a new group wait
half of it before the first assignment), the heartbeat interval that must stay below it, the web port and
the in-memory table store are set.

``python bench/baselines.py aiokafka ... [--transform --registry URL]`` runs a plain aiokafka
consume-produce loop: `getmany` batches of up to 1,000 records, `send` each output without waiting, wait
for the batch's deliveries, commit. With ``--transform`` every record is decoded with
`AvroDeserializer` through the sample's reader schema, enriched by `workers.sample.enrich` and encoded with
`AvroSerializer` (latest schema of ``<sink>-value``): the worker's per-record work, without Faust.

Both stop on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LOOP_BATCH = 1000
LOOP_LINGER_MS = 5
LOOP_MAX_BATCH_BYTES = 1024 * 1024


def run_faust(args: argparse.Namespace) -> None:
    """Run the bare Faust pass-through agent until SIGTERM."""
    import faust

    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        autodiscover=False,
        web_port=args.web_port,
        web_bind="127.0.0.1",
        broker_session_timeout=args.session_timeout,
        broker_heartbeat_interval=args.session_timeout / 3,
    )
    source = app.topic(
        args.source, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    sink = app.topic(
        args.sink, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(source)
    async def passthrough(stream: Any) -> None:
        async for key, value in stream.items():
            await sink.send(key=key, value=value)

    sys.argv = [sys.argv[0], "worker", "-l", "info", "--web-port", str(args.web_port)]
    app.main()


async def _loop(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    transform = _transformer(args) if args.transform else None
    consumer = AIOKafkaConsumer(
        args.source,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=int(args.session_timeout * 1000),
        heartbeat_interval_ms=int(args.session_timeout * 1000 / 3),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, linger_ms=LOOP_LINGER_MS, max_batch_size=LOOP_MAX_BATCH_BYTES
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=LOOP_BATCH)
            deliveries = []
            for records in batches.values():
                for record in records:
                    value = transform(record.value) if transform else record.value
                    deliveries.append(await producer.send(args.sink, value, key=record.key))
            if deliveries:
                await asyncio.gather(*deliveries)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def _transformer(args: argparse.Namespace) -> Any:
    from registry_codecs import AvroDeserializer, AvroSerializer, RegistryClient
    from workers.sample import INPUT_SCHEMA_FILE, enrich

    client = RegistryClient(args.registry)
    decoder = AvroDeserializer(client, reader_schema=INPUT_SCHEMA_FILE.read_text())
    encoder = AvroSerializer(client, f"{args.sink}-value")

    def transform(value: bytes) -> bytes:
        return encoder.encode(enrich(decoder.decode(value)) or {})

    return transform


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", choices=("faust", "aiokafka"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--session-timeout", type=float, default=1.5)
    parser.add_argument("--web-port", type=int, default=6066)
    parser.add_argument("--transform", action="store_true", help="aiokafka: decode, enrich, encode")
    parser.add_argument("--registry", default="", help="registry URL (with --transform)")
    args = parser.parse_args(argv)
    if args.role == "faust":
        run_faust(args)
    else:
        asyncio.run(_loop(args))


if __name__ == "__main__":
    main()

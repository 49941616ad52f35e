"""Soak: a million records through the worker, watching memory, caches and throughput over time.

Run ``python bench/soak.py`` (``--records N`` for a shorter run). It starts the local stack (Apache Kafka,
or Tansu with ``--broker tansu``, and the project's registry on free loopback ports), registers the input
schema in several writer versions and the output schema, starts ``python -m workers worker`` as a subprocess
with the pipeline below, and writes the records from a producer thread while it samples, every
``--interval`` seconds, the worker's counters (/metrics) and its resident memory (/proc). It prints one line
per interval and a summary:

- RSS growth after warm-up (the first ``--warmup`` records): must stay under 50 MB;
- schema cache misses and registry requests after warm-up: bounded caches see no new misses;
- throughput per interval, and the ratio of the last quarter's median to the first quarter's (no decay).

The worker's records in == out at the end is checked; wall time never decides pass or fail.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import fastavro

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workers.pipeline import Pipeline  # noqa: E402 - after the path is set up for a checkout

FIELDS = [
    {"name": "id", "type": "long"},
    {"name": "user", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
]
INPUT = {"type": "record", "name": "Payment", "namespace": "avroflow.soak", "fields": FIELDS}
OUTPUT = {
    "type": "record",
    "name": "PaymentOut",
    "namespace": "avroflow.soak",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "user", "type": "string"},
        {"name": "cents", "type": "long"},
    ],
}
WRITER_VERSIONS = 4  # several writer ids in rotation: the decode caches see more than one entry


def writer_schema(version: int) -> dict[str, Any]:
    """Version `version` of the input: the base fields plus `version` optional extra fields."""
    extra = [{"name": f"extra{n}", "type": "string", "default": ""} for n in range(version)]
    return {**INPUT, "fields": FIELDS + extra}


def transform(payment: dict[str, Any]) -> dict[str, Any]:
    return {"id": payment["id"], "user": payment["user"], "cents": round(payment["amount"] * 100)}


PIPELINES = (
    Pipeline(
        name="soak",
        source=os.environ.get("SOAK_SOURCE", "soak-in"),
        sink=os.environ.get("SOAK_SINK", "soak-out"),
        transform=transform,
        reader_schema=json.dumps(INPUT),
    ),
)


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def produce(servers: str, topic: str, ids: dict[int, int], total: int, stop: threading.Event) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": servers, "linger.ms": 20, "queue.buffering.max.messages": 200_000}
    )
    parsed = {v: fastavro.parse_schema(writer_schema(v)) for v in ids}
    for i in range(total):
        if stop.is_set():
            break
        version = i % WRITER_VERSIONS
        body = io.BytesIO()
        body.write(b"\x00" + ids[version].to_bytes(4, "big"))
        record = {"id": i, "user": f"user-{i % 5000}", "amount": i / 100, "tags": ["a", "b"]}
        record.update({f"extra{n}": "x" for n in range(version)})
        fastavro.schemaless_writer(body, parsed[version], record)
        while True:
            try:
                producer.produce(topic, key=str(i).encode(), value=body.getvalue())
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)


def run(args: argparse.Namespace) -> int:
    from devstack.brokers import new_broker
    from devstack.registry import RegistryProcess
    from registry_codecs import RegistryClient

    work = Path(tempfile.mkdtemp(prefix="avroflow-soak-"))
    broker_helper = new_broker(args.broker)
    with broker_helper as broker, RegistryProcess() as registry, RegistryClient(registry.url) as client:
        broker.create_topics(["soak-in"], partitions=2)
        ids = {
            v: client.register("soak-in-value", json.dumps(writer_schema(v))) for v in range(WRITER_VERSIONS)
        }
        client.register("soak-out-value", json.dumps(OUTPUT))
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
        env.update(
            AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            AVROFLOW_SCHEMA_REGISTRY_URL=registry.url,
            AVROFLOW_APP_ID="soak",
            AVROFLOW_PIPELINES="soak:PIPELINES",
            AVROFLOW_WEB_HOST="127.0.0.1",
            AVROFLOW_WEB_PORT=str(port),
            AVROFLOW_LOG_LEVEL="WARNING",
            AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER="false",  # Tansu refuses InitProducerId
            PYTHONPATH=os.pathsep.join([str(REPO / "bench"), str(REPO)]),
        )
        log = (work / "worker.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers", "worker"], cwd=REPO, env=env, stdout=log, stderr=log
        )
        try:
            _wait_ready(port, worker)
            return _measure(args, broker.bootstrap_servers, ids, port, worker)
        finally:
            worker.terminate()
            worker.wait(30)
            log.close()
            print(f"worker log: {work / 'worker.log'}")


def _measure(args: argparse.Namespace, servers: str, ids: dict[int, int], port: int, worker: Any) -> int:
    stop = threading.Event()
    writer = threading.Thread(target=produce, args=(servers, "soak-in", ids, args.records, stop), daemon=True)
    started = time.monotonic()
    writer.start()
    rows: list[dict[str, float]] = []
    last_out, last_t = 0.0, started
    print(f"{'t(s)':>6} {'records out':>12} {'rec/s':>8} {'RSS MB':>7} {'cache miss':>10} {'reg. req':>8}")
    while True:
        time.sleep(args.interval)
        if worker.poll() is not None:
            print(f"worker exited with {worker.returncode}")
            return 1
        m = metrics(port)
        now, out = time.monotonic(), m.get("avroflow_records_out_total", 0.0)
        row = {
            "t": now - started,
            "out": out,
            "rate": (out - last_out) / (now - last_t),
            "rss_mb": rss_mb(worker.pid),
            "misses": m.get("avroflow_schema_cache_misses_total", 0.0),
            "requests": m.get("avroflow_registry_requests_total", 0.0),
            "in": m.get("avroflow_records_in_total", 0.0),
            "dead": m.get("avroflow_records_dead_lettered_total", 0.0),
        }
        rows.append(row)
        last_out, last_t = out, now
        print(
            f"{row['t']:6.0f} {out:12,.0f} {row['rate']:8,.0f} {row['rss_mb']:7.1f} "
            f"{row['misses']:10.0f} {row['requests']:8.0f}",
            flush=True,
        )
        if out + row["dead"] >= args.records:
            break
        if now - started > args.max_seconds:
            print("stopped at --max-seconds")
            stop.set()
            break
    return _summary(args, rows)


def _summary(args: argparse.Namespace, rows: list[dict[str, float]]) -> int:
    warm = [r for r in rows if r["out"] >= args.warmup] or rows[-1:]
    steady = [r["rate"] for r in warm[1:-1]] or [warm[0]["rate"]]  # the last interval is partial
    quarter = max(1, len(steady) // 4)
    first, last = statistics.median(steady[:quarter]), statistics.median(steady[-quarter:])
    summary = {
        "records": rows[-1]["out"],
        "dead_lettered": rows[-1]["dead"],
        "in_equals_out": rows[-1]["in"] == rows[-1]["out"] + rows[-1]["dead"],
        "seconds": round(rows[-1]["t"], 1),
        "mean_rate": round(rows[-1]["out"] / rows[-1]["t"]),
        "rss_after_warmup_mb": round(warm[0]["rss_mb"], 1),
        "rss_max_mb": round(max(r["rss_mb"] for r in warm), 1),
        "rss_growth_after_warmup_mb": round(max(r["rss_mb"] for r in warm) - warm[0]["rss_mb"], 1),
        "cache_misses_after_warmup": rows[-1]["misses"] - warm[0]["misses"],
        "registry_requests_after_warmup": rows[-1]["requests"] - warm[0]["requests"],
        "rate_first_quarter": round(first),
        "rate_last_quarter": round(last),
        "rate_last_over_first": round(last / first, 3) if first else 0.0,
    }
    print(json.dumps(summary))
    return 0 if summary["in_equals_out"] and summary["rss_growth_after_warmup_mb"] < 50 else 1


def _wait_ready(port: int, worker: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the worker did not become ready")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=100_000, help="records out before memory is baselined")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--broker", choices=("kafka", "tansu"), default="kafka")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())

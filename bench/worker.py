"""Worker benchmark: records/s of the real worker vs a bare Faust agent and plain aiokafka loops, one run.

Run ``python bench/worker.py`` (``--records 10000`` for a quick run; ``--broker kafka`` (the default),
``tansu``, or ``kafka,tansu`` for both in one run, one after the other). It starts the local broker
(Apache Kafka or Tansu) and schema registry on free loopback ports, encodes the input once (sample
`AppEvent`s, unique keys), and for each variant, on its own 4-partition input and output topics and its
own consumer group:

1. starts the process(es) and waits until they consume: one warm-up record per partition has its output
   (two workers: both answer /readyz 200 first, so they share the partitions before the run);
2. writes the records with confluent-kafka, and reads the output topic until every key has its output
   (verified by consuming: count, no loss; Tansu's end offsets under-report);
3. measures records/s from the first to the last output's producer timestamp (process start and
   group join are left out), CPU seconds of every process over the run (/proc/<pid>/stat), the peak
   resident memory of the variant's process (VmHWM), and for the worker its registry requests during
   the run (``avroflow_registry_requests_total`` before and after).

It prints a table and ends with one JSON line of the ratios to the bare Faust agent. Wall time never
decides pass or fail; compare the ratios of one run, the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

import benchkit as kit  # noqa: E402 - bench/ is on sys.path when run as a script

from devstack.brokers import BROKER_KINDS, new_broker  # noqa: E402
from devstack.registry.process import RegistryProcess  # noqa: E402
from registry_codecs import AvroDeserializer, RegistryClient  # noqa: E402
from workers.sample import OUTPUT_SCHEMA_FILE  # noqa: E402

PARTITIONS = 4
SESSION_TIMEOUT = 3.0  # Tansu holds a new group's first assignment for half of it (Kafka does not)
#: The worker's recommended settings (workers/README.md); everything else is the worker's default.
RECOMMENDED = {
    "AVROFLOW_BATCH_SIZE": "2000",  # the stream buffer follows: max(4096, 2 x batch)
    "AVROFLOW_KAFKA_PRODUCER_LINGER_SECONDS": "0.005",
    "AVROFLOW_KAFKA_PRODUCER_MAX_BATCH_SIZE": str(1024 * 1024),
}


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "worker", "faust", "aiokafka", "aiokafka_transform"
    about: str
    env: dict[str, str] = field(default_factory=dict)
    processes: int = 1


VARIANTS = (
    Variant("faust_passthrough", "faust", "bare Faust agent, raw bytes in -> same bytes out, Faust defaults"),
    Variant("worker_default", "worker", "the worker: decode, enrich, encode latest; default settings"),
    Variant("worker_recommended", "worker", "the worker with its recommended settings", RECOMMENDED),
    Variant("worker_recommended_x2", "worker", "two worker processes, one group", RECOMMENDED, 2),
    Variant("aiokafka_passthrough", "aiokafka", "plain aiokafka consume-produce loop, bytes through"),
    Variant("aiokafka_transform", "aiokafka_transform", "plain aiokafka loop, decode-enrich-encode"),
)


@dataclass
class Result:
    variant: Variant
    per_second: float = float("nan")
    seconds: float = float("nan")
    outputs: int = 0
    duplicates: int = 0
    missing: int = 0
    peak_rss_mb: float = float("nan")
    cpu: dict[str, float] = field(default_factory=dict)
    registry_requests: float = float("nan")
    registry_endpoints: dict[str, float] = field(default_factory=dict)
    dead_lettered: float = float("nan")
    produce_seconds: float = float("nan")
    window: float = float("nan")
    note: str = ""


class Stack:
    """Broker and registry for the whole run, plus the input frames encoded once."""

    def __init__(self, records: int, logs: Path, broker: str) -> None:
        self.records = records
        self.logs = logs
        self.kind = broker
        self.broker = new_broker(broker, log_dir=logs)
        self.registry = RegistryProcess()
        self.frames: list[tuple[bytes, bytes]] = []

    def __enter__(self) -> Stack:
        self.broker.start()
        self.registry.start()
        self.frames = kit.input_frames(self.registry.url, "bench-input-value", self.records)
        return self

    def __exit__(self, *exc: object) -> None:
        self.registry.stop()
        self.broker.stop()

    def pids(self) -> dict[str, int]:
        registry = getattr(self.registry, "_proc", None)
        found = {"broker": self.broker.pid, "registry": registry.pid if registry else None}
        return {name: pid for name, pid in found.items() if pid is not None}


def commands(
    stack: Stack, variant: Variant, source: str, sink: str, group: str
) -> list[tuple[list[str], dict[str, str], int]]:
    """Return (argv, env, web port) per process of the variant."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
    base_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(BENCH), str(REPO), os.environ.get("PYTHONPATH")])
    )
    bootstrap = stack.broker.bootstrap_servers
    runs = []
    for _ in range(variant.processes):
        port = kit.free_port()
        env = dict(base_env)
        if variant.kind == "worker":
            env.update(
                AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                AVROFLOW_SCHEMA_REGISTRY_URL=stack.registry.url,
                AVROFLOW_APP_ID=group,
                AVROFLOW_PIPELINES="bench_pipelines:PIPELINES",
                AVROFLOW_WEB_HOST="127.0.0.1",
                AVROFLOW_WEB_PORT=str(port),
                AVROFLOW_KAFKA_SESSION_TIMEOUT_SECONDS=str(SESSION_TIMEOUT),
                AVROFLOW_TOPIC_PARTITIONS=str(PARTITIONS),
                AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER="false",  # Tansu refuses InitProducerId
                BENCH_SOURCE_TOPIC=source,
                BENCH_SINK_TOPIC=sink,
                **variant.env,
            )
            argv = [sys.executable, "-m", "workers", "worker"]
        else:
            role = "faust" if variant.kind == "faust" else "aiokafka"
            argv = [sys.executable, str(BENCH / "baselines.py"), role, "--bootstrap", bootstrap]
            argv += ["--source", source, "--sink", sink, "--group", group, "--web-port", str(port)]
            argv += ["--session-timeout", str(SESSION_TIMEOUT)]
            if variant.kind == "aiokafka_transform":
                argv += ["--transform", "--registry", stack.registry.url]
        runs.append((argv, env, port))
    return runs


def wait_ready(procs: list[subprocess.Popen[bytes]], ports: list[int], worker: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a process exited early with {proc.returncode}")
        if not worker or all(kit.http_status(port, "/readyz") == 200 for port in ports):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not all become ready")
        time.sleep(0.2)


def register_sink(stack: Stack, sink: str) -> None:
    """Register the sample's output schema under ``<sink>-value`` (the worker encodes with its latest)."""
    with RegistryClient(stack.registry.url) as client:
        client.register(f"{sink}-value", OUTPUT_SCHEMA_FILE.read_text())


def warm_up(stack: Stack, source: str, collector: kit.OutputCollector, timeout: float) -> None:
    """Write one record per partition and wait for their outputs: every partition is assigned and hot."""
    for p in range(PARTITIONS):
        key = kit.WARM_PREFIX + str(p).encode()
        kit.produce(stack.broker.bootstrap_servers, source, [(key, stack.frames[p][1])], partition=p)
    if not collector.wait_for(kit.WARM_PREFIX, PARTITIONS, timeout):
        raise RuntimeError("the warm-up records got no output")


def run_variant(stack: Stack, variant: Variant, timeout: float) -> Result:
    """Run one variant end to end and return what was measured."""
    tag = uuid.uuid4().hex[:6]
    source, sink, group = f"in-{variant.name}-{tag}", f"out-{variant.name}-{tag}", f"g-{variant.name}-{tag}"
    bootstrap = stack.broker.bootstrap_servers
    stack.broker.create_topics([source, sink], partitions=PARTITIONS)
    if variant.kind in ("worker", "aiokafka_transform"):
        register_sink(stack, sink)
    result = Result(variant)
    procs: list[subprocess.Popen[bytes]] = []
    collector = kit.OutputCollector(bootstrap, sink, PARTITIONS).start()
    runs = commands(stack, variant, source, sink, group)
    ports = [port for _, _, port in runs]
    is_worker = variant.kind == "worker"
    try:
        for i, (argv, env, _) in enumerate(runs):
            with (stack.logs / f"{variant.name}-{i}.log").open("wb") as log:
                procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=log))
        wait_ready(procs, ports, is_worker, timeout)
        warm_up(stack, source, collector, timeout)
        pids = {f"{variant.name}[{i}]": proc.pid for i, proc in enumerate(procs)} | stack.pids()
        cpu_before = {name: kit.cpu_seconds(pid) for name, pid in pids.items()}
        bench_before = _own_cpu()
        machine_before = kit.machine_cpu_seconds()
        requests_before = kit.registry_requests(ports) if is_worker else {}
        window_start = time.monotonic()
        result.produce_seconds = kit.produce(bootstrap, source, stack.frames)
        complete = collector.wait_for(b"k", len(stack.frames), timeout)
        result.window = time.monotonic() - window_start
        result.cpu = {name: kit.cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        result.cpu["bench (producer, collector)"] = _own_cpu() - bench_before
        busy, idle = (a - b for a, b in zip(kit.machine_cpu_seconds(), machine_before, strict=True))
        result.cpu["anything else on the machine"] = max(0.0, busy - sum(result.cpu.values()))
        result.cpu["idle"] = idle
        result.peak_rss_mb = max(kit.peak_rss_mb(proc.pid) for proc in procs)
        if is_worker:
            after = kit.registry_requests(ports)
            during = {k: v - requests_before.get(k, 0.0) for k, v in after.items()}
            result.registry_requests = sum(during.values())
            result.registry_endpoints = {k: v for k, v in during.items() if v}
            result.dead_lettered = sum(
                kit.metric_sum(p, "avroflow_records_dead_lettered_total") for p in ports
            )
            if variant.processes > 1:
                shares = [kit.metric_sum(p, "avroflow_records_in_total") for p in ports]
                result.note = "inputs per worker: " + " / ".join(f"{s:.0f}" for s in shares)
        if not complete:
            result.note = (
                result.note + "; " if result.note else ""
            ) + "timed out before every output arrived"
    finally:
        for proc in procs:
            kit.sigterm_then_kill(proc)
        collector.stop()
    _score(result, collector, stack)
    verify(result, collector, stack)
    return result


def _score(result: Result, collector: kit.OutputCollector, stack: Stack) -> None:
    keys = {key for key, _ in stack.frames}
    seen = {key: ts for key, ts in collector.first_seen.items() if key in keys}
    result.outputs = len(seen)
    result.missing = len(keys) - len(seen)
    result.duplicates = collector.total - len(collector.first_seen)
    result.per_second, result.seconds = kit.throughput(list(seen.values()))


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def verify(result: Result, collector: kit.OutputCollector, stack: Stack) -> None:
    """Check every output's content: pass-through outputs equal their inputs; worker outputs decode with
    the sink's latest schema into the enriched event of the same input."""
    inputs = dict(stack.frames)
    wrong = 0
    if result.variant.kind in ("faust", "aiokafka"):
        wrong = sum(1 for key, value in collector.values.items() if key in inputs and value != inputs[key])
    else:
        with RegistryClient(stack.registry.url) as client:
            decoder = AvroDeserializer(client)
            for key, value in collector.values.items():
                if key in inputs:
                    record = decoder.decode(value)
                    wrong += record["event_id"] != f"evt-{int(key[1:]):08d}" or "is_conversion" not in record
    if wrong:
        result.note = (result.note + "; " if result.note else "") + f"{wrong} outputs with the wrong content"


def _fmt(value: float, spec: str = ",.0f") -> str:
    return "-" if value != value else format(value, spec)  # nan -> "-"


def print_table(results: list[Result], records: int) -> None:
    print(f"\n{records:,} records, {PARTITIONS} partitions; records/s from the first to the last output")
    header = f"{'variant':24} {'records/s':>10} {'x faust':>8} {'secs':>6} {'out':>7} {'lost':>5} {'dup':>5}"
    print(header + f" {'peak RSS MB':>11} {'reg. req':>8}")
    anchor = _anchor(results)
    for r in results:
        ratio = r.per_second / anchor if anchor else float("nan")
        print(
            f"{r.variant.name:24} {_fmt(r.per_second):>10} {_fmt(ratio, '.2f'):>8}"
            f" {_fmt(r.seconds, '.2f'):>6} {r.outputs:>7,} {r.missing:>5} {r.duplicates:>5}"
            f" {_fmt(r.peak_rss_mb, '.0f'):>11} {_fmt(r.registry_requests, '.0f'):>8}"
        )
    print("\nCPU seconds during each run, from the input's first write to its last output (2 cores):")
    for r in results:
        cpu = ", ".join(f"{name} {seconds:.2f}" for name, seconds in r.cpu.items())
        print(
            f"  {r.variant.name}: {cpu} (window {_fmt(r.window, '.2f')} s; input written in"
            f" {_fmt(r.produce_seconds, '.2f')} s)"
        )
        if r.registry_endpoints:
            asked = ", ".join(f"{name} {count:.0f}" for name, count in sorted(r.registry_endpoints.items()))
            print(f"    registry requests during the run, per endpoint (config = readiness ping): {asked}")
        if r.note:
            print(f"    note: {r.note}")


def _anchor(results: list[Result]) -> float:
    return next((r.per_second for r in results if r.variant.name == "faust_passthrough"), float("nan"))


def summary(results: list[Result]) -> dict[str, Any]:
    """The JSON line: ratios to the bare Faust agent, the scaling ratio, memory, registry requests."""
    anchor = _anchor(results)
    by_name = {r.variant.name: r for r in results}
    line: dict[str, Any] = {"faust_passthrough_per_s": round(anchor)}
    for r in results:
        if r.variant.name != "faust_passthrough":
            line[r.variant.name] = round(r.per_second / anchor, 3)
    one, two = by_name.get("worker_recommended"), by_name.get("worker_recommended_x2")
    if one and two:
        line["scaling_x2"] = round(two.per_second / one.per_second, 3)
    workers = [r for r in results if r.variant.kind == "worker"]
    line["worker_peak_rss_mb"] = round(max((r.peak_rss_mb for r in workers), default=float("nan")), 1)
    line["worker_registry_requests_during_runs"] = sum(r.registry_requests for r in workers)
    # Schema lookups (anything but the readiness ping): what a per-record registry call would show up as.
    line["worker_schema_lookups_during_runs"] = sum(
        count for r in workers for endpoint, count in r.registry_endpoints.items() if endpoint != "config"
    )
    line["lost"] = sum(r.missing for r in results)
    line["wrong_content"] = sum("wrong content" in r.note for r in results)
    return line


def best_of(rounds: list[list[Result]]) -> list[Result]:
    """Per variant, the round with the most records/s (a shared machine only ever slows a run down)."""
    best: dict[str, Result] = {}
    for results in rounds:
        for r in results:
            kept = best.get(r.variant.name)
            if kept is None or (r.missing == 0 and not r.per_second <= kept.per_second):
                best[r.variant.name] = r
    lost = {r.variant.name for results in rounds for r in results if r.missing}
    for name in lost:  # a loss in any round is reported, whatever the speed of the others
        best[name] = next(r for results in rounds for r in results if r.variant.name == name and r.missing)
    return list(best.values())


def print_rounds(rounds: list[list[Result]]) -> None:
    """Each round's ratios to that round's bare Faust agent (the spread says how noisy the machine was)."""
    if len(rounds) < 2:
        return
    print("\nratio to the bare Faust agent of the same round, rounds 1..n:")
    for i, variant in enumerate(r.variant for r in rounds[0]):
        ratios = []
        for results in rounds:
            anchor = _anchor(results)
            ratios.append(_fmt(results[i].per_second / anchor if anchor else float("nan"), ".2f"))
        print(f"  {variant.name:24} {' / '.join(ratios)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS), help="comma-separated")
    parser.add_argument("--timeout", type=float, default=180.0, help="per step of a variant, seconds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every variant; the best is kept")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and print where")
    parser.add_argument("--broker", default="kafka", help=f"comma-separated, of {', '.join(BROKER_KINDS)}")
    args = parser.parse_args(argv)
    brokers = args.broker.split(",")
    if not brokers or any(kind not in BROKER_KINDS for kind in brokers):
        parser.error(f"--broker: choose from {', '.join(BROKER_KINDS)}")
    chosen = [v for v in VARIANTS if v.name in args.variants.split(",")]
    logs = Path(tempfile.mkdtemp(prefix="avroflow-bench-"))
    every: list[Result] = []
    for kind in brokers:
        rounds = run_rounds(args, chosen, logs / kind, kind)
        results = best_of(rounds)
        print(f"== broker: {kind}")
        print_table(results, args.records)
        print_rounds(rounds)
        print(json.dumps({"broker": kind, **summary(results)}, sort_keys=True))
        every += [r for results_of_round in rounds for r in results_of_round]
    if args.keep_logs or any(r.note.startswith("failed") for r in every):
        print(f"logs: {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)
    return 0 if all(r.missing == 0 and "wrong content" not in r.note for r in every) else 1


def run_rounds(args: argparse.Namespace, chosen: list[Variant], logs: Path, kind: str) -> list[list[Result]]:
    """Every round of every chosen variant on one broker of `kind`."""
    logs.mkdir(parents=True)
    rounds: list[list[Result]] = []
    with Stack(args.records, logs, kind) as stack:
        for number in range(1, args.rounds + 1):
            rounds.append([])
            for variant in chosen:
                print(f"{kind} round {number}/{args.rounds}: {variant.name}: {variant.about}", flush=True)
                try:
                    rounds[-1].append(run_variant(stack, variant, args.timeout))
                except RuntimeError as exc:
                    print(f"  {variant.name} failed: {exc}; logs in {logs}", flush=True)
                    rounds[-1].append(Result(variant, note=f"failed: {exc}", missing=args.records))
    return rounds


if __name__ == "__main__":
    sys.exit(main())

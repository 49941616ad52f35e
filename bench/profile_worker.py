"""Where the worker's time per record goes: py-spy samples of the real worker over a bench run.

Run ``python bench/profile_worker.py`` (needs ``pip install py-spy``; not a project dependency). It starts
the local broker and registry, one worker (`bench/worker.py`'s recommended settings unless
``--default``), warms it up, then samples it with py-spy while it processes ``--records`` inputs, and
prints where the samples fall: by component (Faust, aiokafka, the codec, fastavro, the transform, the
worker's own code, asyncio), then the functions with the most samples on the CPU (self) and on the stack
(inclusive). ``--gil`` counts only samples of the thread holding the GIL (the worker is GIL-bound), so
the shares add up to where the process spends its one core.
"""

from __future__ import annotations

import argparse
import collections
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import benchkit as kit
import worker as bench  # bench/ is on sys.path when run as a script

COMPONENTS = (  # first match wins: a frame's file path -> component
    ("fastavro", "fastavro/"),
    ("codec (registry_codecs)", "registry_codecs/"),
    ("transform (workers/sample.py)", "workers/sample.py"),
    ("worker (workers/)", "workers/"),
    ("prometheus_client", "prometheus_client/"),
    ("aiokafka", "aiokafka/"),
    ("faust", "faust/"),
    ("mode", "mode/"),
    ("asyncio", "asyncio/"),
)


def component(frame: str) -> str:
    for name, marker in COMPONENTS:
        if marker in frame:
            return name
    return "other"


def report(raw: Path, top: int) -> None:
    """Print the shares by component (of the leaf frame) and the top functions, self and inclusive."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    parts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        parts[_deepest_known(frames)] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"\n{total} samples")
    print("\nby component (the innermost frame that belongs to a known package):")
    for name, count in parts.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\ntop {top} functions, {title}:")
        for frame, count in counter.most_common(top):
            print(f"  {100 * count / total:5.1f}%  {frame}")


def _deepest_known(frames: list[str]) -> str:
    for frame in reversed(frames):
        name = component(frame)
        if name != "other":
            return name
    return "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--default", action="store_true", help="the worker's default settings")
    parser.add_argument("--gil", action="store_true", help="only samples of the thread holding the GIL")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--py-spy", default=str(Path(sys.executable).with_name("py-spy")))
    args = parser.parse_args(argv)
    variant = bench.VARIANTS[1] if args.default else bench.VARIANTS[2]
    logs = Path(tempfile.mkdtemp(prefix="avroflow-profile-"))
    raw = logs / "profile.txt"
    with bench.Stack(args.records, logs) as stack:
        tag = uuid.uuid4().hex[:6]
        source, sink, group = f"in-{tag}", f"out-{tag}", f"g-{tag}"
        stack.broker.create_topics([source, sink], partitions=bench.PARTITIONS)
        bench.register_sink(stack, sink)
        collector = kit.OutputCollector(stack.broker.bootstrap_servers, sink, bench.PARTITIONS).start()
        argv_, env, port = bench.commands(stack, variant, source, sink, group)[0]
        with (logs / "worker.log").open("wb") as log:
            proc = subprocess.Popen(argv_, cwd=bench.REPO, env=env, stdout=log, stderr=log)
        try:
            bench.wait_ready([proc], [port], True, 120)
            bench.warm_up(stack, source, collector, 120)
            spy_argv = [
                args.py_spy,
                "record",
                "--pid",
                str(proc.pid),
                "--format",
                "raw",
                "--output",
                str(raw),
            ]
            spy_argv += ["--rate", str(args.rate), "--nonblocking"] + (["--gil"] if args.gil else [])
            spy = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
            kit.produce(stack.broker.bootstrap_servers, source, stack.frames)
            done = collector.wait_for(b"k", args.records, 300)
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        finally:
            kit.sigterm_then_kill(proc)
            collector.stop()
    print(f"{variant.name}: {args.records:,} records, every output {'arrived' if done else 'DID NOT arrive'}")
    report(raw, args.top)
    print(f"\nraw samples (py-spy collapsed stacks): {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mutation run (``make mutation``): cosmic-ray over the failure-path modules, each against its unit tests.

Usage: ``python tests/mutation/run.py [--jobs N] [module ...]`` (modules by short name, e.g. ``settings``;
all of TARGETS by default). Each module runs in a fresh ``git clone`` of HEAD under a temporary directory
(cosmic-ray mutates files on disk, so the working tree is never touched and uncommitted changes are not
measured), one module at a time, at ``nice 19``. With ``--jobs 2`` two cosmic-ray HTTP workers on loopback
share the mutants, each in its own clone. The session files and a JSON summary are kept in
``.mutation/`` (git-ignored); the summary has, per module, the mutants, killed, survived and the surviving
mutants' operator and line, to check against ``tests/mutation/equivalent.md``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".mutation"
UNIT = "tests/unit/"

#: module -> the unit tests that exercise it (the only ones run against its mutants).
TARGETS: dict[str, tuple[str, list[str]]] = {
    "delivery": (
        "workers/delivery.py",
        ["test_delivery_failures.py", "test_processing.py", "test_processing_edges.py"],
    ),
    "deadletter": (
        "workers/deadletter.py",
        [
            "test_deadletter_headers.py",
            "test_processing_deadletter.py",
            "test_delivery_failures.py",
            "test_processing.py",
            "test_processing_edges.py",
            "test_key_format.py",
        ],
    ),
    "registry_cache": (
        "registry_codecs/registry_cache.py",
        ["test_cache_deadlines.py", "test_registry_cache.py"],
    ),
    "settings": (
        "workers/settings.py",
        [
            "test_settings_limits.py",
            "test_settings_parsing.py",
            "test_settings_defaults.py",
            "test_settings.py",
            "test_settings_docs.py",
            "test_settings_kafka_tls.py",
            "test_settings_faust.py",
        ],
    ),
    "processing": (
        "workers/processing.py",
        [
            "test_delivery_failures.py",
            "test_key_format.py",
            "test_processing.py",
            "test_processing_outage.py",
            "test_processing_readiness.py",
            "test_processing_edges.py",
            "test_processing_unions.py",
            "test_processing_unknown_ids.py",
        ],
    ),
    "serde": (
        "registry_codecs/serde.py",
        [
            "test_serde_edges.py",
            "test_avro.py",
            "test_memory_lookup.py",
            "test_avro_projection.py",
            "test_hostile_decode.py",
            "test_avro_strict.py",
            "test_deep_records.py",
        ],
    ),
    "bounds": (
        "registry_codecs/bounds.py",
        ["test_bounds_shapes.py", "test_bounds_nested.py", "test_deep_records.py", "test_hostile_decode.py"],
    ),
}


#: Address space each test run may use. A mutant that lets a hostile body through (bounds.py) makes
#: fastavro build the 2**40 items the body claims: without a limit one such run took 8 GB of the shared
#: machine in four minutes; with it, the allocation fails at once (MemoryError: the mutant is killed).
#: The unit suites need well under 1 GiB.
MEMORY_LIMIT = 2 << 30


def config(module_path: str, tests: list[str], ports: list[int]) -> str:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--timeout=120"]
    if shutil.which("prlimit"):
        command = ["prlimit", f"--as={MEMORY_LIMIT}", "--", *command]
    command += [UNIT + t for t in tests]
    distributor = '[cosmic-ray.distributor]\nname = "local"\n'
    if ports:
        urls = ", ".join(f'"http://127.0.0.1:{p}"' for p in ports)
        distributor = (
            '[cosmic-ray.distributor]\nname = "http"\n\n'
            f"[cosmic-ray.distributor.http]\nworker-urls = [{urls}]\n"
        )
    return (
        "[cosmic-ray]\n"
        f'module-path = "{module_path}"\n'
        "timeout = 300.0\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(shlex.join(command))}\n\n" + distributor
    )


def clone(into: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(into)], check=True)
    return into


@contextlib.contextmanager
def workers(ports: list[int], config_file: Path, scratch: Path) -> Iterator[None]:
    procs = []
    try:
        for port in ports:
            where = clone(scratch / f"worker-{port}")
            cmd = ["nice", "-n", "19", str(Path(sys.executable).parent / "cosmic-ray"), "http-worker"]
            procs.append(
                subprocess.Popen(
                    [*cmd, "--port", str(port)], cwd=where, stdout=subprocess.DEVNULL, start_new_session=True
                )
            )
        for port in ports:
            _wait_for_port(port)
        yield
    finally:
        for proc in procs:  # each worker leads its own process group: stop it with its pytest children
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _wait_for_port(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.5)
    raise RuntimeError(f"cosmic-ray http-worker on port {port} did not start within {timeout} s")


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The (start, end) positions of every annotation: never evaluated under ``from __future__ import
    annotations`` (each module here has it), so a mutant inside one cannot change behaviour."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            every = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            every += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
            annotations = [a.annotation for a in every] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for a in annotations:
            if a is not None and a.end_lineno is not None and a.end_col_offset is not None:
                spans.append(((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)))
    return spans


def summarize(session: Path, module_path: str) -> dict[str, object]:
    """Per module: mutants, run, killed, survivors outside annotations, survivors inside them."""
    db = sqlite3.connect(session)
    rows = db.execute(
        "SELECT m.operator_name, m.start_pos_row, m.start_pos_col, m.occurrence, r.test_outcome,"
        " r.worker_outcome FROM mutation_specs m JOIN work_results r ON m.job_id = r.job_id"
    ).fetchall()
    total = db.execute("SELECT count(*) FROM mutation_specs").fetchone()[0]
    spans = annotation_spans((ROOT / module_path).read_text())

    def in_annotation(row: int, col: int) -> bool:
        return any(start <= (row, col) < end for start, end in spans)

    survivors = [
        (row, col, op.split("/")[-1], occ) for op, row, col, occ, test, _ in rows if test == "SURVIVED"
    ]
    annotation = [s for s in survivors if in_annotation(s[0], s[1])]
    behaviour = sorted(s for s in survivors if not in_annotation(s[0], s[1]))
    # a mutant that breaks the import (INCOMPETENT), hangs (TIMEOUT) or kills (ABNORMAL) the tests is caught
    killed = sum(
        1
        for *_, test, worker in rows
        if test in ("KILLED", "INCOMPETENT") or worker in ("TIMEOUT", "ABNORMAL")
    )
    return {
        "mutants": total,
        "done": len(rows),
        "killed": killed,
        "survived": len(behaviour),
        "equivalent_annotation": len(annotation),
        "survivors": [f"line {row}:{col} {op} #{occ}" for row, col, op, occ in behaviour],
    }


def _pending(session: Path) -> int:
    db = sqlite3.connect(session)
    query = "SELECT count(*) FROM work_items WHERE job_id NOT IN (SELECT job_id FROM work_results)"
    count = int(db.execute(query).fetchone()[0])
    db.close()
    return count


def _module_digest(module_path: str) -> str:
    return hashlib.sha256((ROOT / module_path).read_bytes()).hexdigest()[:16]


def _forget_survivors(session: Path) -> int:
    """Drop the results of surviving (and unfinished) mutants so that `exec` runs them again."""
    db = sqlite3.connect(session)
    with db:
        count = db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount
    db.close()
    return int(count)


def _drop_annotation_mutants(session: Path, module_path: str) -> int:
    """Remove the mutants inside annotations (equivalent: see `annotation_spans`); return how many."""
    spans = annotation_spans((ROOT / module_path).read_text())
    db = sqlite3.connect(session)
    specs = db.execute("SELECT job_id, start_pos_row, start_pos_col FROM mutation_specs").fetchall()
    drop = [(job,) for job, row, col in specs if any(a <= (row, col) < b for a, b in spans)]
    with db:
        for table in ("mutation_specs", "work_items"):
            db.executemany(f"DELETE FROM {table} WHERE job_id = ?", drop)  # noqa: S608
    db.close()
    return len(drop)


def _sample(session: Path, size: int, seed: str) -> int:
    """Keep a seeded random `size` of the session's mutants (all when size is 0); return how many it had."""
    db = sqlite3.connect(session)
    ids = sorted(row[0] for row in db.execute("SELECT job_id FROM work_items"))
    if 0 < size < len(ids):
        drop = set(ids) - set(random.Random(seed).sample(ids, size))
        with db:
            for table in ("mutation_specs", "work_items"):
                db.executemany(f"DELETE FROM {table} WHERE job_id = ?", [(i,) for i in drop])  # noqa: S608
    db.close()
    return len(ids)


def run_one(name: str, jobs: int, resume: bool, sample: int) -> dict[str, object]:
    module_path, tests = TARGETS[name]
    OUT.mkdir(exist_ok=True)
    session, config_file = OUT / f"{name}.sqlite", OUT / f"{name}.toml"
    digest_file = OUT / f"{name}.digest"
    # Resuming re-runs only the survivors: valid while the module is unchanged and tests were only added.
    resume = resume and session.exists() and digest_file.exists()
    resume = resume and digest_file.read_text() == _module_digest(module_path)
    if resume:
        print(f"   resuming: {_forget_survivors(session)} survivors run again", flush=True)
    else:
        session.unlink(missing_ok=True)
        digest_file.write_text(_module_digest(module_path))
    ports = [9876 + i for i in range(jobs)] if jobs > 1 else []
    config_file.write_text(config(module_path, tests, ports))
    cosmic = [str(Path(sys.executable).parent / "cosmic-ray"), "--verbosity", "ERROR"]
    with tempfile.TemporaryDirectory(prefix=f"avroflow-mutation-{name}-") as tmp:
        scratch = Path(tmp)
        main = clone(scratch / "main")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        if not resume:
            subprocess.run([*cosmic, "init", str(config_file), str(session)], cwd=main, check=True, env=env)
            subprocess.run([*cosmic, "baseline", str(config_file)], cwd=main, check=True, env=env)
            (OUT / f"{name}.annotations").write_text(str(_drop_annotation_mutants(session, module_path)))
            (OUT / f"{name}.population").write_text(str(_sample(session, sample, name)))
        started = time.monotonic()
        with workers(ports, config_file, scratch) if ports else contextlib.nullcontext():
            exec_cmd = ["nice", "-n", "19", *cosmic, "exec", str(config_file), str(session)]
            for _ in range(3):  # a worker that refused a connection leaves its mutant pending: run it again
                subprocess.run(exec_cmd, cwd=main, check=True, env=env)
                if not _pending(session):
                    break
        summary = summarize(session, module_path)
        population = OUT / f"{name}.population"
        summary["population"] = int(population.read_text()) if population.exists() else summary["mutants"]
        annotations = OUT / f"{name}.annotations"
        if annotations.exists():
            summary["equivalent_annotation"] = int(annotations.read_text())
        summary["seconds"] = round(time.monotonic() - started)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(TARGETS), choices=[*TARGETS, []])
    parser.add_argument("--jobs", type=int, default=1, help="cosmic-ray HTTP workers (default 1: local)")
    parser.add_argument("--resume", action="store_true", help="re-run only the survivors of the last run")
    parser.add_argument("--sample", type=int, default=0, help="run a seeded random sample of N mutants")
    args = parser.parse_args()
    results_file = OUT / "summary.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name in args.modules:
        print(f"== {name}: {TARGETS[name][0]}", flush=True)
        results[name] = run_one(name, args.jobs, args.resume, args.sample)
        results_file.write_text(json.dumps(results, indent=2) + "\n")
        r = results[name]
        print(
            f"   {r['mutants']} of {r['population']} mutants ({r['done']} run), {r['killed']} killed,"
            f" {r['survived']} survived,"
            f" {r['equivalent_annotation']} in annotations ({r['seconds']} s)"
        )
        for line in r["survivors"]:  # type: ignore[attr-defined]
            print("   survived:", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

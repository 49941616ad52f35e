"""Fault report: runs the fault suite and prints, per scenario, records in, out, dead-lettered, duplicated
and lost.

Run ``python bench/faults.py`` (``make`` has no target for it; it takes a few minutes). It runs the fault
tests (tests/integration/test_faults_*.py and test_hostile_worker.py) with pytest, each against real
processes on loopback; every scenario appends its tally to a JSON-lines file (``FAULT_REPORT_FILE``, read by
tests/integration/faults_harness.py), and this script prints the table. The exit code is non-zero when a
test failed or any scenario lost a record. Extra arguments go to pytest (e.g. ``-k sigkill``).
``--broker kafka`` (the default), ``tansu`` or ``kafka,tansu`` (both, one after the other, a table each)
chooses the broker through the suite's ``AVROFLOW_TEST_BROKER``; on Tansu the Kafka-only scenarios (a broker
restart, a three-node cluster, one worker cut off alone) are skipped and have no row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = [
    "tests/integration/test_faults_registry.py",
    "tests/integration/test_faults_broker.py",
    "tests/integration/test_faults_kafka.py",
    "tests/integration/test_faults_group.py",
    "tests/integration/test_faults_kill.py",
    "tests/integration/test_hostile_worker.py",
]
COLUMNS = ("records_in", "out", "dead_lettered", "duplicated", "lost")


def main(argv: list[str]) -> int:
    brokers, pytest_args = _brokers(argv)
    failed = False
    for broker in brokers:
        rows, code = run_suite(broker, pytest_args)
        print(f"\n== broker: {broker}")
        print(f"{'scenario':<24}" + "".join(f"{c:>15}" for c in COLUMNS))
        for row in rows:
            print(f"{row['scenario']:<24}" + "".join(f"{row[c]:>15,}" for c in COLUMNS))
        lost = sum(row["lost"] for row in rows)
        print(json.dumps({"broker": broker, "scenarios": len(rows), "lost": lost, "tests_exit_code": code}))
        failed = failed or bool(lost or code)
    return 1 if failed else 0


def run_suite(broker: str, pytest_args: list[str]) -> tuple[list[dict[str, int | str]], int]:
    """Run the fault tests on `broker`; return each scenario's tally and pytest's exit code."""
    with tempfile.TemporaryDirectory(prefix="avroflow-faults-") as work:
        report = Path(work) / "faults.jsonl"
        env = {**os.environ, "FAULT_REPORT_FILE": str(report), "AVROFLOW_TEST_BROKER": broker}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITE, *pytest_args]
        tests = subprocess.run(command, cwd=REPO, env=env, check=False)
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    return rows, tests.returncode


def _brokers(argv: list[str]) -> tuple[list[str], list[str]]:
    rest, brokers = list(argv), ["kafka"]
    if "--broker" in rest:
        at = rest.index("--broker")
        brokers = rest[at + 1].split(",") if at + 1 < len(rest) else []
        del rest[at : at + 2]
    if not brokers or any(b not in ("kafka", "tansu") for b in brokers):
        raise SystemExit("--broker: kafka, tansu or kafka,tansu")
    return brokers, rest


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

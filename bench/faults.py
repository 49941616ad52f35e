"""Fault report: runs the fault suite and prints, per scenario, records in, out, dead-lettered, duplicated
and lost.

Run ``python bench/faults.py`` (``make`` has no target for it; it takes a few minutes). It runs the fault
tests (tests/integration/test_faults_*.py and test_hostile_worker.py) with pytest, each against real
processes on loopback; every scenario appends its tally to a JSON-lines file (``FAULT_REPORT_FILE``, read by
tests/integration/faults_harness.py), and this script prints the table. The exit code is non-zero when a
test failed or any scenario lost a record. Extra arguments go to pytest (e.g. ``-k sigkill``). The broker is
the test suite's (``AVROFLOW_TEST_BROKER``, Kafka by default); on Tansu the Kafka-only scenarios (a broker
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
    with tempfile.TemporaryDirectory(prefix="avroflow-faults-") as work:
        report = Path(work) / "faults.jsonl"
        env = {**os.environ, "FAULT_REPORT_FILE": str(report)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITE, *argv]
        tests = subprocess.run(command, cwd=REPO, env=env, check=False)
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    print()
    print(f"{'scenario':<24}" + "".join(f"{c:>15}" for c in COLUMNS))
    for row in rows:
        print(f"{row['scenario']:<24}" + "".join(f"{row[c]:>15,}" for c in COLUMNS))
    lost = sum(row["lost"] for row in rows)
    print(json.dumps({"scenarios": len(rows), "lost": lost, "tests_exit_code": tests.returncode}))
    return 1 if lost or tests.returncode else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

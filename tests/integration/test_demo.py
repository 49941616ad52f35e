"""`python -m workers demo` (what `make run` runs) end to end, as a subprocess on its own local stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from workers import demo_data

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_prints_every_enriched_record_the_dead_letters_and_a_balanced_summary() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
    result = subprocess.run(
        [sys.executable, "-m", "workers", "demo", "--timeout", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    events = demo_data.sample_events()
    expected = demo_data.expected_outputs(events)

    records = [line for line in out.splitlines() if re.match(r"^  u-\d\d ", line)]
    assert len(records) == expected
    assert {line.split()[1] for line in records} == {"page_view", "click", "signup", "purchase"}
    assert any("(v1: no session)" in line for line in records)  # v1 producers were read
    assert any(re.search(r" s-u-\d\d-\d ", line) for line in records)  # and v2 producers
    assert all(re.search(r"schema id \d+$", line) for line in records)

    dead = [line for line in out.splitlines() if "DEAD LETTER" in line]
    assert len(dead) == len(demo_data.poison_messages())
    assert {m.group(1) for line in dead if (m := re.search(r"reason (\S+)", line))} == {
        "framing",
        "unknown_schema",
    }

    n_in = len(events) + len(demo_data.poison_messages())
    n_dropped = len(events) - expected
    assert f"{n_in} = {expected} + {n_dropped} + 2 (holds)" in out
    assert "worker exited with code 0" in out
    assert "stopping the broker and the registry" in out

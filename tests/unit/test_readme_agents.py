"""The README's first example (a Faust app with avroflow agents) is real code that declares its agents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_readmes_agent_example_imports_and_declares_both_forms(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.search(r"## Write an agent.*?```python\n(.*?)```", readme, re.S)
    assert example, "the README's 'Write an agent' section has no python block"
    (tmp_path / "mystreams.py").write_text(example.group(1), encoding="utf-8")
    check = (
        "import mystreams\n"
        "from workers.agent_bodies import AsyncBody\n"
        "runners = mystreams.avro.runtime.runners\n"
        "assert sorted(runners) == ['check', 'enrich'], sorted(runners)\n"
        "assert isinstance(runners['check'].pipeline.transform.inner, AsyncBody)\n"
        "assert runners['enrich'].pipeline.transform({'status': 'test', 'total': 1.0}) is None\n"
        "assert sorted(mystreams.app.agents) == ['avroflow.pipeline.check', 'avroflow.pipeline.enrich']\n"
    )
    env = {
        "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "broker:9092",
        "AVROFLOW_SCHEMA_REGISTRY_URL": "https://registry:8081",
        "PYTHONPATH": f"{tmp_path}:{REPO}",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]

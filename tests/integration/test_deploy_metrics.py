"""Every metric the alert rules and the dashboard in deploy/ name is exported by a running worker.

The test starts the worker the way the image does (`python -m workers worker`, settings only from
``AVROFLOW_*`` variables) against the session's loopback broker and registry, after registering the
sample schemas with `python -m workers schemas register` as the compose stack's one-shot service does.
It then scrapes /metrics and compares the ``avroflow_*`` names in every PromQL expression with the
exported families. Labelled counters have no samples before their first increment, but
prometheus_client still prints their ``# HELP``/``# TYPE`` lines, so names are taken from the families,
not from the samples. The same worker answers the image's HEALTHCHECK command and the probes' paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from worker_harness import ON_TANSU

from devstack.brokers import Broker
from devstack.brokers import test_broker_kind as session_broker_kind
from devstack.children import stop_child

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SAMPLE_SCHEMAS = ROOT / "schemas"
STARTUP_TIMEOUT = 90.0
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "unknown": ("",),
}


PIPELINE_MODULE = """\
import dataclasses

from workers.sample import APP_EVENTS

PIPELINES = (dataclasses.replace(APP_EVENTS, source={source!r}, sink={sink!r}),)
"""


@dataclass(frozen=True)
class RunningWorker:
    process: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    source: str
    log: Path

    def get(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _prepare(workdir: Path, source: str, sink: str) -> None:
    """The sample pipeline on this module's own topics, and a subjects.json for its subjects."""
    (workdir / "deploy_check_pipelines.py").write_text(PIPELINE_MODULE.format(source=source, sink=sink))
    schemas = workdir / "schemas"
    (schemas / "versions").mkdir(parents=True)
    manifest = json.loads((SAMPLE_SCHEMAS / "subjects.json").read_text())
    renamed = {"app-events-value": f"{source}-value", "app-events-enriched-value": f"{sink}-value"}
    registrations = []
    for entry in manifest["registrations"]:
        shutil.copy(SAMPLE_SCHEMAS / entry["file"], schemas / entry["file"])
        registrations.append({"subject": renamed[entry["subject"]], "file": entry["file"]})
    (schemas / "subjects.json").write_text(json.dumps({"registrations": registrations}))


def _worker_env(bootstrap_servers: str, registry_url: str, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
    env.update(
        AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        AVROFLOW_SCHEMA_REGISTRY_URL=registry_url,
        AVROFLOW_PIPELINES="deploy_check_pipelines:PIPELINES",
        AVROFLOW_WEB_PORT=str(_free_port()),
        AVROFLOW_APP_ID=f"{workdir.name}-group",
        AVROFLOW_LOG_LEVEL="WARNING",
    )
    if session_broker_kind() == "tansu":
        env.update(ON_TANSU)
    return env


def _run_cli(args: list[str], env: dict[str, str], cwd: Path, stdin: bytes = b"") -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workers", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stderr.decode()}"


def _wait_for(worker: RunningWorker, what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"worker exited with {worker.process.returncode}:\n{worker.log_tail()}")
        try:
            if check():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    pytest.fail(f"worker: no {what} within {STARTUP_TIMEOUT}s:\n{worker.log_tail()}")


@pytest.fixture(scope="module")
def worker(
    broker: Broker,
    bootstrap_servers: str,
    registry_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningWorker]:
    workdir = tmp_path_factory.mktemp(f"t-deploy-{uuid.uuid4().hex[:8]}", numbered=False)
    source, sink = workdir.name, f"{workdir.name}-enriched"
    _prepare(workdir, source, sink)
    broker.create_topics([source, sink, source + ".dlq"])
    env = _worker_env(bootstrap_servers, registry_url, workdir)
    # As the compose stack's register-schemas service does, on this module's own subjects.
    _run_cli(["schemas", "register", "--dir", str(workdir / "schemas")], env, workdir)
    log = workdir / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers", "worker"], env=env, cwd=workdir, stdout=out, stderr=out
        )
    running = RunningWorker(process, int(env["AVROFLOW_WEB_PORT"]), env, source, log)
    try:
        _wait_for(running, "/metrics", lambda: running.get("/metrics").status_code == 200)
        yield running
    finally:
        stop_child(process, 30)


def exported_names(exposition: str) -> set[str]:
    """Every series name a PromQL query can select from this /metrics text, samples or not."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
        names |= {sample.name for sample in family.samples}
    return names


def referenced_names(expressions: list[str]) -> set[str]:
    """The avroflow_* names in PromQL expressions (quoted label values are left out)."""
    unquoted = re.sub(r'"[^"]*"', '""', "\n".join(expressions))
    return set(re.findall(r"\bavroflow_[A-Za-z0-9_:]*", unquoted))


def alert_expressions() -> list[str]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "avroflow-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return exprs + [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]


def test_the_name_extraction_reads_families_without_samples() -> None:
    text = (
        "# HELP avroflow_x_failures_total X\n# TYPE avroflow_x_failures_total counter\n"
        "# HELP avroflow_y_seconds Y\n# TYPE avroflow_y_seconds histogram\n"
    )
    names = exported_names(text)
    assert {"avroflow_x_failures_total", "avroflow_y_seconds_bucket", "avroflow_y_seconds_count"} <= names
    assert "avroflow_x_failures" not in names
    assert referenced_names(['sum(rate(avroflow_x_total{a="avroflow_no"}[5m]))']) == {"avroflow_x_total"}


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_named_in_deploy_is_exported_by_a_running_worker(
    worker: RunningWorker, source: str
) -> None:
    expressions = alert_expressions() if source == "alerts" else dashboard_expressions()
    referenced = referenced_names(expressions)
    assert {"avroflow_ready", "avroflow_records_dead_lettered_total"} <= referenced
    exported = exported_names(worker.get("/metrics").text)
    missing = referenced - exported
    assert not missing, f"{source} name metrics the worker does not export: {sorted(missing)}"


def test_the_image_healthcheck_passes_against_the_worker(worker: RunningWorker) -> None:
    dockerfile = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    (healthcheck,) = re.findall(r"^HEALTHCHECK (.*)$", dockerfile, re.MULTILINE)
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    done = subprocess.run(
        [sys.executable, *command[1:]], env=worker.env, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr.decode()


def test_the_probes_answer_and_the_worker_turns_ready(worker: RunningWorker) -> None:
    assert worker.get("/healthz").status_code == 200
    _wait_for(worker, "200 from /readyz", lambda: worker.get("/readyz").status_code == 200)
    assert worker.get("/readyz").json() == {"status": "ready"}
    assert _sample(worker, "avroflow_ready", {}) == 1


def test_a_record_shows_in_the_counters_the_dashboard_charts(worker: RunningWorker) -> None:
    event = {"event_id": "e1", "user_id": "u1", "event_type": "click", "occurred_at": "2024-05-01T12:00:00Z"}
    _run_cli(
        ["produce", worker.source, "--key-field", "user_id"],
        worker.env,
        worker.log.parent,
        stdin=json.dumps(event).encode() + b"\n",
    )
    labels = {"pipeline": "app-events-enrich"}
    _wait_for(worker, "counted output", lambda: _sample(worker, "avroflow_records_out_total", labels) == 1)
    assert _sample(worker, "avroflow_records_in_total", labels) == 1
    assert _sample(worker, "avroflow_records_dead_lettered_total", labels) in (None, 0.0)


def _sample(worker: RunningWorker, name: str, labels: dict[str, str]) -> float | None:
    """The sum of the samples `name` whose labels include `labels`, or None when there is none."""
    values = [
        sample.value
        for family in text_string_to_metric_families(worker.get("/metrics").text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    return float(sum(values)) if values else None


def test_sigterm_stops_the_worker_cleanly_within_the_deployments_grace_period(worker: RunningWorker) -> None:
    # Last in the module on purpose: it stops the module's worker. Compose's stop_grace_period and the
    # pods' terminationGracePeriodSeconds assume the worker exits on its own, with 0, before they end.
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    deployment = yaml.safe_load((DEPLOY / "k8s" / "base" / "deployment.yaml").read_text())
    grace = min(
        float(compose["services"]["worker"]["stop_grace_period"].removesuffix("s")),
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
    )
    worker.process.terminate()
    try:
        code = worker.process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker outlived the {grace}s grace period after SIGTERM:\n{worker.log_tail()}")
    assert code == 0, worker.log_tail()

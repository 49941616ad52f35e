"""The container image recipe, the compose stack and the Prometheus/Grafana files in deploy/.

No Docker engine runs here, so the Dockerfile is read rather than built; what can be run is run: the
image's HEALTHCHECK command against a real HTTP server on loopback, and the compose stack's one-shot
commands through the real command-line parser. Environment variables are checked against the settings
the worker reads, and the alert rules and dashboard queries are checked for structure (that the metrics
they name exist is tests/integration/test_deploy_metrics.py's job: it scrapes a running worker).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from workers.cli import build_parser
from workers.settings import VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
KNOWN_VARIABLES = frozenset(VARIABLES.values())
COMPOSE_SERVICES = {
    "kafka",
    "create-topics",
    "schema-registry",
    "register-schemas",
    "worker",
    "prometheus",
    "grafana",
}


def _instructions(name: str) -> list[str]:
    """Arguments of every `name` instruction in the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", joined, re.MULTILINE)]


def _procfile_worker() -> list[str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = dict(line.split(":", 1) for line in lines if line.strip())
    return shlex.split(entries["worker"])


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"][name]
    return service


# -- Dockerfile ----------------------------------------------------------------------------------------


def test_the_image_is_built_in_two_stages_on_python_3_11_slim() -> None:
    stages = _instructions("FROM")
    assert stages == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    assert _instructions("ARG")[0] == "PYTHON_IMAGE=python:3.11-slim"
    assert "--from=builder /opt/venv /opt/venv" in _instructions("COPY")


def test_the_image_copies_every_package_the_project_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    tops = {name.split(".")[0] for name in setuptools["packages"]}
    packages = {setuptools.get("package-dir", {}).get(top, top) for top in tops}  # avroflow_schemas: schemas/
    copied = {src for c in _instructions("COPY") if not c.startswith("--from") for src in c.split()[:-1]}
    assert packages | {"pyproject.toml", "README.md", "schemas"} <= copied
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert not copied & ignored, "the Dockerfile copies what .dockerignore leaves out of the context"
    assert {".git", ".venv", "tests", ".env"} <= ignored


def test_the_image_runs_the_procfile_worker_command_as_an_unprivileged_user() -> None:
    assert [json.loads(cmd) for cmd in _instructions("CMD")] == [_procfile_worker()]
    (user,) = _instructions("USER")
    uid, gid = user.split(":")
    assert int(uid) >= 1000 and int(gid) >= 1000
    env = " ".join(_instructions("ENV"))
    assert "PYTHONUNBUFFERED=1" in env
    assert "PATH=/opt/venv/bin:$PATH" in env


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK command, with this interpreter for the image's `python`."""
    (healthcheck,) = _instructions("HEALTHCHECK")
    command: list[str] = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_healthcheck_follows_healthz(
    health_server: tuple[ThreadingHTTPServer, type[_Health]], status: int, healthy: bool
) -> None:
    server, handler = health_server
    handler.status = status
    env = {"AVROFLOW_WEB_PORT": str(server.server_address[1]), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(healthcheck_command(), env=env, capture_output=True, timeout=30, check=False)
    assert (done.returncode == 0) is healthy, done.stderr


def test_the_healthcheck_fails_when_nothing_listens(health_server: tuple[ThreadingHTTPServer, Any]) -> None:
    server, _ = health_server
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    env = {"AVROFLOW_WEB_PORT": str(port), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(healthcheck_command(), env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode != 0


# -- compose -------------------------------------------------------------------------------------------


def test_the_compose_stack_has_the_expected_services_on_pinned_images() -> None:
    services = _compose()["services"]
    assert set(services) == COMPOSE_SERVICES
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned image {image}"
    assert services["kafka"]["image"].startswith("confluentinc/cp-kafka:")
    assert services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")
    assert services["kafka"]["image"].split(":")[1] == services["schema-registry"]["image"].split(":")[1]


def test_kafka_runs_in_kraft_mode() -> None:
    kafka = _service("kafka")["environment"]
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka["CLUSTER_ID"]
    assert not any("ZOOKEEPER" in key for key in kafka)
    assert "zookeeper" not in _compose()["services"]


def test_every_avroflow_variable_in_compose_is_one_the_settings_read() -> None:
    for name in ("register-schemas", "worker"):
        env = _service(name)["environment"]
        unknown = {key for key in env if key.startswith("AVROFLOW_")} - KNOWN_VARIABLES
        assert not unknown, f"{name}: not read by workers/settings.py: {sorted(unknown)}"
        Settings.from_env({key: str(value) for key, value in env.items()})


def test_compose_commands_are_the_cli_commands() -> None:
    worker = _service("worker")
    assert worker["command"] == _procfile_worker()
    register = _service("register-schemas")["command"]
    assert register[:3] == ["python", "-m", "workers"]
    args = build_parser().parse_args(register[3:])
    assert (args.command, args.schemas_command) == ("schemas", "register")
    assert (args.dir / "subjects.json").relative_to("/app") == Path("schemas/subjects.json")
    assert (ROOT / "schemas" / "subjects.json").is_file()


def test_the_worker_starts_after_the_schemas_are_registered_and_stops_gracefully() -> None:
    worker = _service("worker")
    assert worker["depends_on"]["register-schemas"] == {"condition": "service_completed_successfully"}
    registry = _service("register-schemas")
    assert registry["depends_on"]["schema-registry"] == {"condition": "service_healthy"}
    settings = Settings.from_env({k: str(v) for k, v in worker["environment"].items()})
    grace = worker["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) >= settings.shutdown_timeout_seconds + 5
    assert f"{settings.web_port}:{settings.web_port}" in worker["ports"]


def test_prometheus_scrapes_the_worker_and_loads_the_alerts() -> None:
    prometheus = _service("prometheus")
    mounts = dict(v.removesuffix(":ro").split(":", 1) for v in prometheus["volumes"])
    for source in mounts:
        assert (DEPLOY / source).is_file(), source
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == [mounts["./prometheus/alerts.yml"]]
    (job,) = config["scrape_configs"]
    settings = Settings.from_env({k: str(v) for k, v in _service("worker")["environment"].items()})
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": [f"worker:{settings.web_port}"]}]


def test_grafana_provisions_the_dashboard() -> None:
    grafana = _service("grafana")
    mounts = dict(v.removesuffix(":ro").split(":", 1) for v in grafana["volumes"])
    assert mounts["./grafana/avroflow-dashboard.json"].startswith("/var/lib/grafana/dashboards/")
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/avroflow.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


# -- alert rules and dashboard ----------------------------------------------------------------------------


def balanced(expr: str) -> bool:
    """Whether brackets pair up and quotes close in a PromQL expression (quoted text is skipped)."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote = ""
    for char in expr:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not quote


@pytest.mark.parametrize(
    ("expr", "ok"),
    [("sum(rate(x[5m]))", True), ('x{a="(}"}', True), ("sum(rate(x[5m])", False), ('x{a="b}', False)],
)
def test_the_bracket_check_tells_balanced_from_broken(expr: str, ok: bool) -> None:
    assert balanced(expr) is ok


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert set(document) == {"groups"}
    rules: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        rules += group["rules"]
    return rules


def test_the_alert_rules_are_well_formed() -> None:
    rules = _alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"Avroflow[A-Z]\w+", rule["alert"])
        assert rule["expr"].strip() and balanced(rule["expr"]), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert {"summary", "description"} <= set(rule["annotations"])


def test_the_alerts_cover_the_failure_kinds_the_issue_names() -> None:
    exprs = " ".join(rule["expr"] for rule in _alert_rules())
    for metric in (
        "avroflow_decode_failures_total",
        "avroflow_encode_failures_total",
        "avroflow_records_dead_lettered_total",
        "avroflow_registry_requests_total",
        "avroflow_ready",
    ):
        assert re.search(rf"\b{metric}\b", exprs), metric


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DEPLOY / "grafana" / "avroflow-dashboard.json").read_text())
    return loaded


def test_the_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and balanced(target["expr"]), panel["title"]
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']}: undefined variables {used - variables}"


def test_the_dashboard_charts_every_metric_the_alerts_use() -> None:
    def names(exprs: list[str]) -> set[str]:
        return set(re.findall(r"\bavroflow_\w+", " ".join(exprs)))

    alert_metrics = names([rule["expr"] for rule in _alert_rules()])
    panels = [p for p in _dashboard()["panels"] if p["type"] != "row"]
    dashboard_metrics = names([t["expr"] for p in panels for t in p["targets"]])
    assert alert_metrics <= dashboard_metrics, sorted(alert_metrics - dashboard_metrics)


def test_the_readme_lists_every_alert() -> None:
    readme = (DEPLOY / "README.md").read_text()
    missing = [rule["alert"] for rule in _alert_rules() if f"`{rule['alert']}`" not in readme]
    assert not missing, f"deploy/README.md does not describe {missing}"

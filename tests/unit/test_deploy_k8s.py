"""The Kubernetes manifests in deploy/k8s: valid for Kubernetes 1.30, consistent with each other, the
image and the worker's settings.

No kubectl or kustomize here, so the test renders the base and the production overlay itself with the
subset of kustomize they use (resources, namespace, images, replicas, strategic-merge patches); a
kustomization key outside that subset fails the test instead of being ignored. Built-in kinds validate
strictly (unknown fields are errors) against the schemas shipped by kubernetes-validate; the
prometheus-operator ServiceMonitor and KEDA's ScaledObject and TriggerAuthentication, CRDs, validate against
the small schemas below (the fields these manifests use, anything else refused). A strategic-merge patch
of ``$patch: delete`` deletes its target, as kustomize does.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from workers.pipeline import load_pipelines
from workers.settings import VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
KEDA = K8S / "overlays" / "keda"
KUBERNETES_VERSION = "1.30"
KNOWN_VARIABLES = frozenset(VARIABLES.values())
KUSTOMIZE_KEYS = frozenset({"apiVersion", "kind", "namespace", "resources", "images", "replicas", "patches"})
CLUSTER_SCOPED = frozenset({"Namespace"})

SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {"matchLabels": {"type": "object"}},
                    "additionalProperties": False,
                },
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scheme": {"enum": ["http", "https"]},
                        },
                    },
                },
            },
        },
    },
}


_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_POLICIES = {
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "value", "periodSeconds"],
        "properties": {
            "type": {"enum": ["Pods", "Percent"]},
            "value": {"type": "integer"},
            "periodSeconds": {"type": "integer"},
        },
    },
}
_SCALING_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"stabilizationWindowSeconds": {"type": "integer", "minimum": 0}, "policies": _POLICIES},
}
#: KEDA 2.x ScaledObject (keda.sh/v1alpha1), the fields used here; the Kafka trigger's metadata keys are
#: the scaler's documented parameters (https://keda.sh/docs/latest/scalers/apache-kafka/).
KAFKA_TRIGGER_KEYS = frozenset(
    {
        "bootstrapServers",
        "consumerGroup",
        "topic",
        "lagThreshold",
        "activationLagThreshold",
        "offsetResetPolicy",
        "allowIdleConsumers",
        "scaleToZeroOnInvalidOffset",
        "excludePersistentLag",
        "limitToPartitionsWithLag",
        "version",
        "partitionLimitation",
        "sasl",
        "tls",
        "unsafeSsl",
    }
)
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"scaleDown": _SCALING_RULES, "scaleUp": _SCALING_RULES},
                                }
                            },
                        }
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "kafka"},
                            "metadata": {
                                **_STRING_MAP,
                                "propertyNames": {"enum": sorted(KAFKA_TRIGGER_KEYS)},
                                "required": ["bootstrapServers", "consumerGroup", "topic", "lagThreshold"],
                            },
                            "authenticationRef": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}
TRIGGER_AUTHENTICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["parameter", "name", "key"],
                        "properties": {
                            # the Kafka scaler's authentication parameters
                            "parameter": {
                                "enum": [
                                    "sasl",
                                    "username",
                                    "password",
                                    "tls",
                                    "ca",
                                    "cert",
                                    "key",
                                    "keyPassword",
                                ]
                            },
                            "name": {"type": "string"},
                            "key": {"type": "string"},
                        },
                    },
                }
            },
        },
    },
}
CRD_SCHEMAS = {
    "ServiceMonitor": SERVICE_MONITOR_SCHEMA,
    "ScaledObject": SCALED_OBJECT_SCHEMA,
    "TriggerAuthentication": TRIGGER_AUTHENTICATION_SCHEMA,
}


# -- a small kustomize ------------------------------------------------------------------------------------


def _load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _merge(target: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for these manifests: maps merge, named lists merge by name."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = _merge(target[key], value) if key in target else value
        return merged
    if isinstance(target, list) and isinstance(patch, list) and _named(target) and _named(patch):
        by_name = {item["name"]: item for item in target}
        result = [_merge(item, next((p for p in patch if p["name"] == item["name"]), {})) for item in target]
        return result + [item for item in patch if item["name"] not in by_name]
    return patch


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def render(directory: Path) -> list[dict[str, Any]]:
    """Render the kustomization in `directory`, as `kubectl kustomize` would for the features used."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(spec) - KUSTOMIZE_KEYS
    assert not unsupported, f"{directory}: kustomization keys this test cannot render: {unsupported}"
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        objects += render(path) if path.is_dir() else _load_documents(path)
    for patch_entry in spec.get("patches", []):
        for patch in _load_documents(directory / patch_entry["path"]):
            target = _find(objects, patch["kind"], patch["metadata"]["name"])
            if patch.get("$patch") == "delete":
                objects.remove(target)
            else:
                objects[objects.index(target)] = _merge(target, patch)
    for image in spec.get("images", []):
        for obj in objects:
            for container in _containers(obj):
                if container["image"].split(":")[0] == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    for replicas in spec.get("replicas", []):
        _find(objects, "Deployment", replicas["name"])["spec"]["replicas"] = replicas["count"]
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] != "Deployment":
        return []
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers


# -- helpers over the rendered objects ---------------------------------------------------------------------


@pytest.fixture(params=[BASE, PRODUCTION, KEDA], ids=["base", "production", "keda"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def _worker(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _containers(_find(objects, "Deployment", "avroflow"))
    assert [c["name"] for c in containers] == ["worker"]
    return containers[0]


def _pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _find(objects, "Deployment", "avroflow")["spec"]["template"]["spec"]
    return spec


def _environment(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The AVROFLOW_* environment the worker container gets, secret values replaced by placeholders."""
    worker = _worker(objects)
    env: dict[str, str] = {}
    for source in worker.get("envFrom", []):
        env.update(_find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in worker.get("env", []):
        env[var["name"]] = var.get("value", "placeholder-from-secret")
    return env


def _settings(objects: list[dict[str, Any]]) -> Settings:
    return Settings.from_env(_environment(objects))


def _quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


# -- tests ----------------------------------------------------------------------------------------------


def test_the_base_renders_the_expected_objects() -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in render(BASE))
    assert kinds == [
        ("ConfigMap", "avroflow-config"),
        ("Deployment", "avroflow"),
        ("HorizontalPodAutoscaler", "avroflow"),
        ("PodDisruptionBudget", "avroflow"),
        ("Service", "avroflow"),
        ("ServiceAccount", "avroflow"),
        ("ServiceMonitor", "avroflow"),
    ]


def test_every_object_validates_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        if obj["kind"] in CRD_SCHEMAS:
            jsonschema.validate(obj, CRD_SCHEMAS[obj["kind"]])
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "template", "spec", "containers", 0, "livenessProbe", "httpGet", "paht"), "/healthz"),
        (("spec", "template", "spec", "terminationGracePeriodSeconds"), "30s"),
        (("spec", "template", "spec", "containers", 0, "resources", "limits", "memory"), ["512Mi"]),
    ],
    ids=["unknown-field", "wrong-type", "bad-quantity"],
)
def test_the_validation_catches_a_broken_deployment(path: tuple[str | int, ...], value: Any) -> None:
    deployment = copy.deepcopy(_find(render(BASE), "Deployment", "avroflow"))
    node: Any = deployment
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_avroflow_variable_is_one_the_settings_read(rendered: list[dict[str, Any]]) -> None:
    named = set(_environment(rendered))
    example = yaml.safe_load((BASE / "secret.example.yaml").read_text())
    named |= set(example["stringData"])
    assert named, "no AVROFLOW_* variable found: the test would prove nothing"
    assert named <= KNOWN_VARIABLES, f"not read by workers/settings.py: {sorted(named - KNOWN_VARIABLES)}"


def test_the_settings_accept_the_configured_values(rendered: list[dict[str, Any]]) -> None:
    settings = _settings(rendered)
    assert settings.kafka_bootstrap_servers
    assert settings.schema_registry_urls


def test_probes_ports_and_service_monitor_point_at_the_worker_web_server(
    rendered: list[dict[str, Any]],
) -> None:
    worker = _worker(rendered)
    settings = _settings(rendered)
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports == {"http": settings.web_port}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert worker["startupProbe"]["httpGet"]["path"] == "/healthz"
    service = _find(rendered, "Service", "avroflow")
    assert [(p["name"], p["targetPort"]) for p in service["spec"]["ports"]] == [("http", "http")]
    monitor = _find(rendered, "ServiceMonitor", "avroflow")
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("http", "/metrics")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_selectors_match_the_pods(rendered: list[dict[str, Any]]) -> None:
    deployment = _find(rendered, "Deployment", "avroflow")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels
    assert _find(rendered, "Service", "avroflow")["spec"]["selector"].items() <= pod_labels
    pdb = _find(rendered, "PodDisruptionBudget", "avroflow")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow", "idle, unready pods would block drains"
    scalers = [o for o in rendered if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
    assert len(scalers) == 1, "one autoscaler per Deployment"
    target = scalers[0]["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "avroflow")


def test_a_rollout_never_adds_a_pod_beyond_the_current_count(rendered: list[dict[str, Any]]) -> None:
    # One pod at a time: one rebalance per step (a surge pod would get no partition and sit idle).
    strategy = _find(rendered, "Deployment", "avroflow")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def test_the_grace_period_covers_the_graceful_shutdown(rendered: list[dict[str, Any]]) -> None:
    grace = _pod_spec(rendered)["terminationGracePeriodSeconds"]
    assert grace >= _settings(rendered).shutdown_timeout_seconds + 5


def test_the_pod_runs_unprivileged_on_a_read_only_root(rendered: list[dict[str, Any]]) -> None:
    pod = _pod_spec(rendered)
    worker = _worker(rendered)
    context = worker["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    uid = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert uid == [(str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"]))]
    workdir = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.MULTILINE)[-1]
    writable = {m["mountPath"] for m in worker["volumeMounts"]}
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert {m["name"] for m in worker["volumeMounts"]} <= empty_dirs
    assert {"/tmp", workdir} <= writable, "Faust writes its data directory under the working directory"  # noqa: S108


def test_resources_have_requests_within_limits(rendered: list[dict[str, Any]]) -> None:
    resources = _worker(rendered)["resources"]
    for name in ("cpu", "memory"):
        assert _quantity(resources["requests"][name]) <= _quantity(resources["limits"][name])


def test_the_container_runs_the_procfile_worker_command(rendered: list[dict[str, Any]]) -> None:
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    assert _worker(rendered)["command"] == shlex.split(procfile["worker"])


def test_credentials_are_only_referenced(rendered: list[dict[str, Any]]) -> None:
    assert not [o for o in rendered if o["kind"] == "Secret"], "a Secret with values is rendered"
    example = yaml.safe_load((BASE / "secret.example.yaml").read_text())
    assert set(example["stringData"].values()) == {"CHANGE-ME"}
    refs = [v["valueFrom"]["secretKeyRef"] for v in _worker(rendered)["env"] if "valueFrom" in v]
    assert {r["name"] for r in refs} == {example["metadata"]["name"]}
    assert {r["key"] for r in refs} == set(example["stringData"])


def test_production_pins_the_image_and_requires_credentials() -> None:
    objects = render(PRODUCTION)
    worker = _worker(objects)
    name, _, tag = worker["image"].rpartition(":")
    assert name and tag and tag != "latest"
    assert all(v["valueFrom"]["secretKeyRef"]["optional"] is False for v in worker["env"] if "valueFrom" in v)
    assert _settings(objects).kafka_security_protocol == "SASL_SSL"
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"avroflow"}


def test_production_replicas_sit_within_the_autoscaler_range() -> None:
    objects = render(PRODUCTION)
    hpa = _find(objects, "HorizontalPodAutoscaler", "avroflow")["spec"]
    replicas = _find(objects, "Deployment", "avroflow")["spec"]["replicas"]
    assert hpa["minReplicas"] == replicas <= hpa["maxReplicas"]
    base_cpu = _worker(render(BASE))["resources"]["requests"]["cpu"]
    assert _quantity(_worker(objects)["resources"]["requests"]["cpu"]) > _quantity(base_cpu)


def test_keda_replaces_the_cpu_autoscaler_with_a_lag_scaler_on_the_workers_own_group_and_topic() -> None:
    objects = render(KEDA)
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"], "two autoscalers would fight"
    scaled = _find(objects, "ScaledObject", "avroflow")["spec"]
    assert scaled["scaleTargetRef"]["name"] == _find(objects, "Deployment", "avroflow")["metadata"]["name"]
    (trigger,) = scaled["triggers"]
    meta = trigger["metadata"]
    settings = _settings(objects)
    sources = {p.source for p in load_pipelines(settings.pipelines)}
    assert meta["consumerGroup"] == settings.app_id  # Faust's group id is the app id
    assert meta["topic"] in sources
    assert meta["bootstrapServers"].split(",") == list(settings.kafka_bootstrap_servers)
    assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512" and settings.kafka_uses_ssl
    assert meta["offsetResetPolicy"] == "earliest"  # as the worker's consumer_auto_offset_reset
    assert (meta["allowIdleConsumers"], meta["excludePersistentLag"]) == ("false", "true")


def test_keda_scales_within_the_production_range_and_with_the_workers_credentials() -> None:
    objects = render(KEDA)
    scaled = _find(objects, "ScaledObject", "avroflow")["spec"]
    production_hpa = _find(render(PRODUCTION), "HorizontalPodAutoscaler", "avroflow")["spec"]
    replicas = _find(objects, "Deployment", "avroflow")["spec"]["replicas"]
    assert scaled["minReplicaCount"] == production_hpa["minReplicas"] == replicas
    assert scaled["maxReplicaCount"] == production_hpa["maxReplicas"]  # the source's partition count
    auth = _find(objects, "TriggerAuthentication", scaled["triggers"][0]["authenticationRef"]["name"])
    worker_refs = {
        v["name"]: (v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
        for v in _worker(objects)["env"]
        if "valueFrom" in v
    }
    expected = {
        "username": worker_refs["AVROFLOW_KAFKA_SASL_USERNAME"],
        "password": worker_refs["AVROFLOW_KAFKA_SASL_PASSWORD"],
    }
    assert {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]} == expected


def test_the_crd_schemas_catch_a_misspelt_trigger_parameter() -> None:
    scaled = copy.deepcopy(_find(render(KEDA), "ScaledObject", "avroflow"))
    scaled["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "5"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)

"""`python -m workers schemas register|check` as subprocesses against the real local registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry_codecs.registry import RegistryClient
from workers.sample import INPUT_SCHEMA_FILE, INPUT_SCHEMA_V1_FILE, OUTPUT_SCHEMA_FILE

pytestmark = pytest.mark.integration


def _cli(registry_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
    env["AVROFLOW_SCHEMA_REGISTRY_URL"] = registry_url  # no bootstrap servers: schemas needs no broker
    return subprocess.run(
        [sys.executable, "-m", "workers", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _schemas_dir(tmp_path: Path, registrations: list[tuple[str, Path]]) -> Path:
    manifest = {"registrations": [{"subject": s, "file": str(p)} for s, p in registrations]}
    (tmp_path / "subjects.json").write_text(json.dumps(manifest))
    return tmp_path


@pytest.fixture
def subjects(unique_name: str) -> tuple[str, str]:
    return f"{unique_name}-in-value", f"{unique_name}-out-value"


@pytest.fixture
def project_dir(tmp_path: Path, subjects: tuple[str, str]) -> Path:
    """The project's schema files, under subjects unique to the test, in the project's order."""
    source, sink = subjects
    return _schemas_dir(
        tmp_path, [(source, INPUT_SCHEMA_V1_FILE), (source, INPUT_SCHEMA_FILE), (sink, OUTPUT_SCHEMA_FILE)]
    )


def test_register_prints_subject_version_and_id_of_each_file_in_order(
    registry_url: str, project_dir: Path, subjects: tuple[str, str]
) -> None:
    result = _cli(registry_url, "schemas", "register", "--dir", str(project_dir))
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    client = RegistryClient(registry_url)
    try:
        expected = [
            (subjects[0], 1, client.get_version(subjects[0], 1).schema_id, str(INPUT_SCHEMA_V1_FILE)),
            (subjects[0], 2, client.get_version(subjects[0], 2).schema_id, str(INPUT_SCHEMA_FILE)),
            (subjects[1], 1, client.get_version(subjects[1], 1).schema_id, str(OUTPUT_SCHEMA_FILE)),
        ]
    finally:
        client.close()
    assert lines == [[s, f"version {v}", f"id {i}", f] for s, v, i, f in expected]
    again = _cli(registry_url, "schemas", "register", "--dir", str(project_dir))
    assert again.returncode == 0 and again.stdout == result.stdout  # registering is idempotent


def test_v2_of_the_input_is_backward_compatible_with_v1_in_the_real_registry(
    registry_url: str, subjects: tuple[str, str]
) -> None:
    client = RegistryClient(registry_url)
    try:
        client.set_compatibility("BACKWARD", subjects[0])
        client.register(subjects[0], INPUT_SCHEMA_V1_FILE.read_text())
        assert client.test_compatibility(subjects[0], INPUT_SCHEMA_FILE.read_text()).is_compatible
    finally:
        client.close()


def test_check_reports_new_then_registered_subjects_and_passes(
    registry_url: str, project_dir: Path, subjects: tuple[str, str]
) -> None:
    before = _cli(registry_url, "schemas", "check", "--dir", str(project_dir))
    assert before.returncode == 0, before.stderr
    assert [line.split("\t")[:2] for line in before.stdout.splitlines()] == [
        [subjects[0], "new"],
        [subjects[0], "new"],
        [subjects[1], "new"],
    ]
    assert _cli(registry_url, "schemas", "register", "--dir", str(project_dir)).returncode == 0
    after = _cli(registry_url, "schemas", "check", "--dir", str(project_dir))
    assert after.returncode == 0
    assert [line.split("\t")[1].split(" (")[0] for line in after.stdout.splitlines()] == ["registered"] * 3


def _incompatible_v3(tmp_path: Path) -> Path:
    schema = json.loads(INPUT_SCHEMA_FILE.read_text())
    schema["fields"].append({"name": "country", "type": "string"})  # no default: old data has no value
    path = tmp_path / "v3.avsc"
    path.write_text(json.dumps(schema))
    return path


def test_an_incompatible_change_is_refused_with_the_registrys_reason(
    registry_url: str, project_dir: Path, subjects: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert _cli(registry_url, "schemas", "register", "--dir", str(project_dir)).returncode == 0
    other = tmp_path_factory.mktemp("v3")
    bad_dir = _schemas_dir(other, [(subjects[0], _incompatible_v3(other))])

    check = _cli(registry_url, "schemas", "check", "--dir", str(bad_dir))
    assert check.returncode == 1
    assert "INCOMPATIBLE" in check.stdout and "country" in check.stdout

    register = _cli(registry_url, "schemas", "register", "--dir", str(bad_dir))
    assert register.returncode == 1
    assert "incompatible" in register.stderr and "country" in register.stderr
    client = RegistryClient(registry_url)
    try:
        assert client.get_versions(subjects[0]) == [1, 2]  # nothing was registered
    finally:
        client.close()


def test_a_missing_manifest_is_a_usage_error_naming_the_file(registry_url: str, tmp_path: Path) -> None:
    result = _cli(registry_url, "schemas", "register", "--dir", str(tmp_path))
    assert result.returncode == 2
    assert "subjects.json" in result.stderr


def test_an_unreachable_registry_fails_with_a_message(tmp_path: Path) -> None:
    result = _cli("http://127.0.0.1:9", "schemas", "check")
    assert result.returncode == 1
    assert "registry" in result.stderr


def test_registry_credentials_come_from_the_environment_and_are_never_printed(tmp_path: Path) -> None:
    from devstack.registry.process import RegistryProcess

    password = "s3cret-" + os.urandom(4).hex()
    with RegistryProcess(basic_auth=("ci", password)) as registry:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
        env["AVROFLOW_SCHEMA_REGISTRY_URL"] = registry.url

        def check(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "workers", "schemas", "check"],
                env={**env, **extra},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        anonymous = check({})
        wrong = check(
            {"AVROFLOW_SCHEMA_REGISTRY_USERNAME": "ci", "AVROFLOW_SCHEMA_REGISTRY_PASSWORD": "nope"}
        )
        right = check(
            {"AVROFLOW_SCHEMA_REGISTRY_USERNAME": "ci", "AVROFLOW_SCHEMA_REGISTRY_PASSWORD": password}
        )
    assert anonymous.returncode == 1 and "401" in anonymous.stderr
    assert wrong.returncode == 1 and "nope" not in wrong.stdout + wrong.stderr
    assert right.returncode == 0, right.stderr
    assert right.stdout.count("\tnew\t") == 3
    assert password not in right.stdout + right.stderr

"""Where devstack finds Kafka's jars, and what it says when Java or Maven is missing (no download here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import kafka_runtime
from devstack.kafka import new_cluster_id
from devstack.kafka_runtime import KAFKA_VERSION, KafkaRuntimeMissing, kafka_classpath


@pytest.fixture
def no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment with an empty PATH, no JAVA_HOME and a cache folder of the test's own."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("AVROFLOW_KAFKA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fake_java(tmp_path: Path) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    return home


def test_no_java_says_what_to_install(no_tools: Path) -> None:
    with pytest.raises(
        KafkaRuntimeMissing, match=r"no 'java' is on PATH: install a Java 17\+ runtime and Maven"
    ):
        kafka_classpath()


def test_no_maven_says_what_to_install_and_downloads_nothing(
    no_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path)))
    with pytest.raises(KafkaRuntimeMissing, match=r"no 'mvn' is on PATH"):
        kafka_classpath()
    assert not (no_tools / f"kafka-{KAFKA_VERSION}" / "libs").exists()


def test_a_complete_cache_is_reused_without_maven(
    no_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path)))
    libs = no_tools / f"kafka-{KAFKA_VERSION}" / "libs"
    libs.mkdir(parents=True)
    (libs / ".complete").write_text(KAFKA_VERSION)
    assert kafka_classpath() == f"{libs}/*"


def test_a_half_fetched_cache_is_not_trusted(
    no_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path)))
    libs = no_tools / f"kafka-{KAFKA_VERSION}" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.4.0.jar").write_bytes(b"")  # no completion marker: a download that was cut off
    with pytest.raises(KafkaRuntimeMissing, match="mvn"):
        kafka_classpath()


def test_the_pom_names_the_version_the_module_runs() -> None:
    pom = (Path(kafka_runtime.__file__).parent / "maven" / "pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom
    assert "<artifactId>kafka_2.13</artifactId>" in pom


def test_cluster_ids_never_start_like_an_option() -> None:
    # The storage tool's parser reads an id that starts with "-" as an option: 1 in 64 random ids did,
    # and failed the broker's start (seen in CI). 2,000 draws miss such a bug with odds of about 1e-14.
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)

"""Which Java devstack runs Apicurio Registry with, and what it says when Java 21+ or Maven is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import apicurio_runtime
from devstack.apicurio_runtime import APICURIO_VERSION, ApicurioRuntimeMissing, apicurio_home, java21_binary


@pytest.fixture
def no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PATH, no JAVA_HOME, an empty JVM folder and a cache folder of the test's own."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv(apicurio_runtime.JAVA_HOME_ENV, raising=False)
    monkeypatch.setenv("AVROFLOW_KAFKA_CACHE", str(tmp_path / "cache"))
    (tmp_path / "jvm").mkdir()
    monkeypatch.setattr(apicurio_runtime, "_JVM_ROOT", tmp_path / "jvm")
    return tmp_path / "cache"


def _fake_jdk(folder: Path, major: int) -> Path:
    (folder / "bin").mkdir(parents=True)
    (folder / "release").write_text(f'IMPLEMENTOR="test"\nJAVA_VERSION="{major}.0.1"\n')
    java = folder / "bin" / "java"
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    return folder


def test_no_java_says_what_to_install(no_tools: Path) -> None:
    with pytest.raises(ApicurioRuntimeMissing, match=r"needs Java 21\+; found no Java: install a Java 21\+"):
        java21_binary()


def test_java_17_alone_is_named_and_refused(
    no_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _fake_jdk(tmp_path / "jdk17", 17)
    monkeypatch.setenv("JAVA_HOME", str(old))
    with pytest.raises(ApicurioRuntimeMissing, match=rf"found only Java 17 at {old}: install"):
        java21_binary()


def test_a_newer_jdk_beside_the_default_one_is_found(
    no_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_jdk(tmp_path / "jdk17", 17)))
    newer = _fake_jdk(tmp_path / "jvm" / "temurin-25-jdk-amd64", 25)
    assert java21_binary() == str(newer / "bin" / "java")


def test_the_explicit_setting_wins(no_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_jdk(tmp_path / "jvm" / "temurin-25-jdk-amd64", 25)
    chosen = _fake_jdk(tmp_path / "jdk21", 21)
    monkeypatch.setenv(apicurio_runtime.JAVA_HOME_ENV, str(chosen))
    assert java21_binary() == str(chosen / "bin" / "java")


def test_no_maven_says_so_and_downloads_nothing(
    no_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_jdk(tmp_path / "jdk25", 25)))
    with pytest.raises(ApicurioRuntimeMissing, match=r"no 'mvn' is on PATH"):
        apicurio_home()
    assert not (no_tools / f"apicurio-{APICURIO_VERSION}").exists()


def test_a_complete_cache_is_reused_without_maven(
    no_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_jdk(tmp_path / "jdk25", 25)))
    home = no_tools / f"apicurio-{APICURIO_VERSION}"
    home.mkdir(parents=True)
    (home / "quarkus-run.jar").write_bytes(b"")
    (home / ".complete").write_text(APICURIO_VERSION)
    assert apicurio_home() == home

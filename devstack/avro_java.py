"""Apache Avro's Java library for tests: fetched from Maven Central once, into the cache Kafka's jars use.

`avro_classpath()` returns the class path of the Avro release named by ``devstack/maven/avro/pom.xml``
(``avro-<version>/libs`` under `devstack.kafka_runtime.cache_root`, 5 MB with Jackson and the commons
jars), fetched with ``mvn dependency:copy-dependencies`` the first time and reused after; a file lock lets
two test sessions share one download. The console's Avro JSON (`workers.avro_json_encoding`) is checked
against Avro's own JsonEncoder and JsonDecoder run from these jars (tests/interop/AvroJsonOracle.java).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from devstack.kafka_runtime import cache_root, java_binary
from devstack.maven_fetch import run_maven

__all__ = ["AVRO_VERSION", "AvroJavaMissing", "avro_classpath"]

AVRO_VERSION = "1.12.2"
_POM = Path(__file__).with_name("maven") / "avro" / "pom.xml"
_COMPLETE = ".complete"
_MAVEN_TIMEOUT = 300.0


class AvroJavaMissing(RuntimeError):
    """Java or Maven is missing, or Maven could not fetch Avro's jars; the message says what to do."""


def avro_classpath(version: str = AVRO_VERSION) -> str:
    """Return the Java class path (``<dir>/*``) of Avro `version`, fetching it on first use.

    Raises:
        AvroJavaMissing: Java or Maven is not installed, or Maven failed (its output's tail is included).
    """
    try:
        java_binary()
    except RuntimeError as exc:
        raise AvroJavaMissing(str(exc)) from exc
    libs = cache_root() / f"avro-{version}" / "libs"
    if not (libs / _COMPLETE).exists():
        _fetch(version, libs)
    return f"{libs}{os.sep}*"


def _fetch(version: str, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise AvroJavaMissing("Avro's Java jars come from Maven Central through Maven; no 'mvn' is on PATH")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be fetching the same version right now
        if (libs / _COMPLETE).exists():
            return
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
        try:
            command = [
                mvn, "--batch-mode", "--quiet", "--file", str(_POM), f"-Davro.version={version}",
                "dependency:copy-dependencies", f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
            ]  # fmt: skip
            run_maven(command, f"Avro {version}", AvroJavaMissing, timeout=_MAVEN_TIMEOUT)
            if not any(staging.glob("avro-*.jar")):
                raise AvroJavaMissing(f"Maven ran but copied no avro jar into {staging}")
            (staging / _COMPLETE).write_text(version + "\n")
            shutil.rmtree(libs, ignore_errors=True)
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

"""devstack's Apicurio Registry helper: serves on loopback, logs to a file, and a stop leaves nothing behind.

Optional ``apicurio`` group (``AVROFLOW_TEST_APICURIO=1``).
"""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from devstack.apicurio import ApicurioRegistry

pytestmark = [pytest.mark.integration, pytest.mark.apicurio]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serves_logs_to_a_file_and_stops_clean() -> None:
    registry = ApicurioRegistry()  # Apicurio's own defaults: no settings added
    with registry:
        pid = registry.pid
        assert pid is not None and registry.url.startswith("http://127.0.0.1:")
        assert registry.url.endswith("/apis/ccompat/v7")
        with urllib.request.urlopen(f"{registry.url}/subjects", timeout=5) as answer:  # noqa: S310
            assert json.load(answer) == []  # in-memory storage: a new registry is empty
        with urllib.request.urlopen(f"{registry.url}/config", timeout=5) as answer:  # noqa: S310
            assert json.load(answer)["compatibilityLevel"] == "NONE"  # Confluent's default is BACKWARD
        assert "Listening on: http://127.0.0.1:" in registry.log_path.read_text()
    assert not registry.running and not _alive(pid)
    assert not registry.data_dir.exists()  # the temporary folder (log and scratch files) is gone

"""The registry as a process: persistence across restarts, concurrency, auth, TLS and start-up failures.

Each test starts its own `RegistryProcess` (these are about the process itself), on a free loopback port.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.registry import RegistryProcess, RegistryStartError
from devstack.registry import tls as registry_tls

pytestmark = pytest.mark.integration

TIMEOUT = 5.0


def schema(name: str, *fields: str) -> str:
    return json.dumps(
        {"type": "record", "name": name, "fields": [{"name": f, "type": "long"} for f in fields]}
    )


def register(url: str, subject: str, text: str, **kwargs: Any) -> requests.Response:
    return requests.post(
        f"{url}/subjects/{subject}/versions", json={"schema": text}, timeout=TIMEOUT, **kwargs
    )


def test_restart_on_the_same_data_dir_keeps_ids_versions_and_config(tmp_path: Path) -> None:
    proc = RegistryProcess(data_dir=tmp_path / "state")
    with proc:
        requests.put(f"{proc.url}/config/orders-value", json={"compatibility": "NONE"}, timeout=TIMEOUT)
        ids = [register(proc.url, "orders-value", schema("Order", *"abc"[:n])).json()["id"] for n in (1, 2)]
        other = register(proc.url, "users-value", schema("User", "id")).json()["id"]
        requests.delete(f"{proc.url}/subjects/users-value", timeout=TIMEOUT)
        port = proc.port
    assert not proc.running
    with proc:
        assert proc.port == port
        assert requests.get(f"{proc.url}/subjects/orders-value/versions", timeout=TIMEOUT).json() == [1, 2]
        latest = requests.get(f"{proc.url}/subjects/orders-value/versions/latest", timeout=TIMEOUT).json()
        assert latest["id"] == ids[1]
        assert requests.get(f"{proc.url}/config/orders-value", timeout=TIMEOUT).json() == {
            "compatibilityLevel": "NONE"
        }
        assert requests.get(f"{proc.url}/subjects", timeout=TIMEOUT).json() == ["orders-value"]
        assert requests.get(f"{proc.url}/schemas/ids/{other}", timeout=TIMEOUT).status_code == 200
        # Same schema again: same id. A new schema: a new id, never one already handed out.
        assert register(proc.url, "again", schema("Order", "a")).json()["id"] == ids[0]
        assert register(proc.url, "fresh", schema("Order", "a", "b", "c")).json()["id"] not in {*ids, other}


def test_without_a_data_dir_a_restart_starts_empty() -> None:
    proc = RegistryProcess()
    with proc:
        register(proc.url, "s", schema("S", "a"))
    with proc:
        assert requests.get(f"{proc.url}/subjects", timeout=TIMEOUT).json() == []


def test_concurrent_registrations_get_unique_consistent_ids(tmp_path: Path) -> None:
    """Eight threads register 10 distinct schemas each, all also registering one shared schema."""
    results: dict[str, int] = {}
    shared: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    with RegistryProcess(data_dir=tmp_path) as proc:

        def worker(n: int) -> None:
            try:
                with requests.Session() as session:
                    for i in range(10):
                        text = schema(f"T{n}x{i}", "a")
                        answer = session.post(
                            f"{proc.url}/subjects/t{n}-{i}/versions", json={"schema": text}, timeout=TIMEOUT
                        )
                        common = session.post(
                            f"{proc.url}/subjects/shared/versions",
                            json={"schema": schema("Shared", "a")},
                            timeout=TIMEOUT,
                        )
                        with lock:
                            results[text] = answer.json()["id"]
                            shared.append(common.json()["id"])
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        assert len(results) == 80
        assert len(set(results.values())) == 80  # every distinct schema got its own id
        assert len(set(shared)) == 1 and shared[0] not in results.values()
        assert requests.get(f"{proc.url}/subjects/shared/versions", timeout=TIMEOUT).json() == [1]
        for text, schema_id in list(results.items())[:10]:
            served = requests.get(f"{proc.url}/schemas/ids/{schema_id}", timeout=TIMEOUT).json()
            assert json.loads(served["schema"]) == json.loads(text)
    with RegistryProcess(data_dir=tmp_path) as again:  # and the file written under load reads back whole
        assert len(requests.get(f"{again.url}/subjects", timeout=TIMEOUT).json()) == 81


def test_basic_auth_is_required_and_never_shows_in_ps_or_logs() -> None:
    user, password = "svc", "s3cret-Pa55"
    with RegistryProcess(basic_auth=(user, password), log_level="INFO") as proc:
        anonymous = requests.get(f"{proc.url}/subjects", timeout=TIMEOUT)
        assert anonymous.status_code == 401
        assert anonymous.json()["error_code"] == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        wrong = requests.get(f"{proc.url}/subjects", auth=(user, "nope"), timeout=TIMEOUT)
        assert wrong.status_code == 401
        assert register(proc.url, "s", schema("S", "a"), auth=(user, password)).status_code == 200
        assert requests.get(f"{proc.url}/subjects", auth=(user, password), timeout=TIMEOUT).json() == ["s"]
        assert proc._proc is not None
        cmdline = Path(f"/proc/{proc._proc.pid}/cmdline").read_bytes()
        log = proc.stderr_tail(1_000_000)
        assert password.encode() not in cmdline
        assert "GET /subjects 401" in log and "POST /subjects/s/versions 200" in log
        assert password not in log
        assert "Authorization" not in log


def test_bearer_token() -> None:
    with RegistryProcess(bearer_token="tok-123") as proc:
        assert requests.get(f"{proc.url}/subjects", timeout=TIMEOUT).status_code == 401
        bad = requests.get(
            f"{proc.url}/subjects", headers={"Authorization": "Bearer tok-12"}, timeout=TIMEOUT
        )
        assert bad.status_code == 401
        good = requests.get(
            f"{proc.url}/subjects", headers={"Authorization": "Bearer tok-123"}, timeout=TIMEOUT
        )
        assert good.status_code == 200


@pytest.mark.parametrize("maker", [registry_tls.make_self_signed_cert, None], ids=["default", "openssl"])
def test_tls_serves_https_that_verifies_against_the_cert(
    tmp_path: Path, maker: Callable[[Path], tuple[Path, Path]] | None
) -> None:
    if maker is None:
        cert, key = tmp_path / "o.crt", tmp_path / "o.key"
        registry_tls._with_openssl(cert, key)
    else:
        cert, key = maker(tmp_path)
    with RegistryProcess(certfile=cert, keyfile=key, basic_auth=("u", "p")) as proc:
        assert proc.url.startswith("https://127.0.0.1:")
        answer = requests.get(f"{proc.url}/subjects", auth=("u", "p"), verify=str(cert), timeout=TIMEOUT)
        assert answer.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{proc.url}/subjects", timeout=TIMEOUT)  # the system CAs do not trust it
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(proc.url.replace("https", "http") + "/subjects", timeout=TIMEOUT)
        # A client that connects and never handshakes must not block others.
        with socket.create_connection((proc.host, proc.port), timeout=TIMEOUT):
            again = requests.get(f"{proc.url}/subjects", auth=("u", "p"), verify=str(cert), timeout=TIMEOUT)
            assert again.status_code == 200


def test_a_busy_port_fails_with_the_reason() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        proc = RegistryProcess(port=blocker.getsockname()[1])
        with pytest.raises(RegistryStartError, match="Address already in use"):
            proc.start(timeout=10)
        assert not proc.running


def test_a_corrupt_state_file_fails_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text("{ not json", encoding="utf-8")
    proc = RegistryProcess(data_dir=tmp_path)
    with pytest.raises(RegistryStartError, match="cannot load registry state"):
        proc.start(timeout=10)


def test_stop_is_idempotent_and_leaves_no_process() -> None:
    proc = RegistryProcess()
    proc.start()
    assert proc._proc is not None
    pid = proc._proc.pid
    proc.stop()
    proc.stop()
    assert not proc.running
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{proc.url}/subjects", timeout=TIMEOUT)
    assert os.environ.get("DEVSTACK_REGISTRY_BASIC_AUTH") is None  # the child's env never leaks into ours


def test_a_killed_registry_restarts_with_its_state(tmp_path: Path) -> None:
    proc = RegistryProcess(data_dir=tmp_path)
    with proc:
        schema_id = register(proc.url, "s", schema("S", "a")).json()["id"]
        proc.stop(grace=0)  # SIGKILL: no chance to flush anything on the way out
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{proc.url}/subjects", timeout=TIMEOUT)
        proc.start()
        assert requests.get(f"{proc.url}/schemas/ids/{schema_id}", timeout=TIMEOUT).status_code == 200


def _ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_works(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback() -> None:
    with RegistryProcess(host="::1") as proc:
        assert proc.url == f"http://[::1]:{proc.port}"
        assert requests.get(f"{proc.url}/subjects", timeout=TIMEOUT).json() == []

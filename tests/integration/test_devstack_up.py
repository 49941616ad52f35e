"""``python -m devstack up`` as a person runs it: a real subprocess, its addresses, Ctrl-C and SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from confluent_kafka.admin import AdminClient

from devstack.broker import free_port

pytestmark = pytest.mark.integration

_START_TIMEOUT = 60.0
_EXIT_TIMEOUT = 30.0
_SCHEMA = '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}'


@dataclass(frozen=True)
class _Up:
    proc: subprocess.Popen[str]
    bootstrap: str
    registry_url: str
    output: str

    @property
    def children(self) -> list[int]:
        """Pids of the broker and registry processes the command started."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Every `devstack up` a test starts; killed at the end if the test left one running."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # not every one leads a process group of its own
                os.killpg(proc.pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _up(started: list[subprocess.Popen[str]], *args: str) -> _Up:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a shell job, so killpg is a terminal's Ctrl-C
    )
    started.append(proc)
    output = _read_until(proc, "export AVROFLOW_SCHEMA_REGISTRY_URL=")
    bootstrap = re.search(r"^export AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=(\S+)$", output, re.M)
    registry = re.search(r"^export AVROFLOW_SCHEMA_REGISTRY_URL=(\S+)$", output, re.M)
    assert bootstrap is not None and registry is not None, output
    assert f"bootstrap servers: {bootstrap[1]}" in output
    assert f"schema registry:   {registry[1]}" in output
    return _Up(proc, bootstrap[1], registry[1], output)


def _read_until(proc: subprocess.Popen[str], marker: str) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()  # read the descriptor: a text wrapper's buffer would hide lines from select
    output = b""
    deadline = time.monotonic() + _START_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while marker.encode() not in output or not output.endswith(b"\n"):
            assert time.monotonic() < deadline, f"no {marker!r} in time; output so far:\n{output!r}"
            if sel.select(timeout=0.5):
                chunk = os.read(fd, 4096)
                assert chunk, f"exited with {proc.wait()} before {marker!r}:\n{output!r}\n{_stderr(proc)}"
                output += chunk
    return output.decode()


def _stderr(proc: subprocess.Popen[str]) -> str:
    return proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""


def _answers(up: _Up) -> None:
    metadata = AdminClient({"bootstrap.servers": up.bootstrap}).list_topics(timeout=10)
    assert [f"{b.host}:{b.port}" for b in metadata.brokers.values()] == [up.bootstrap]
    assert requests.get(f"{up.registry_url}/subjects", timeout=10).json() == []


def _running(pid: int) -> bool:
    """True while `pid` runs; a zombie (ended, not yet reaped by its new parent) has ended."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _assert_gone(pids: list[int], addresses: list[str]) -> None:
    # A child the kernel ends through its parent-death signal goes a moment after its parent: wait a little.
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        assert not _running(pid), f"process {pid} outlived devstack up"
    for address in addresses:
        host, port = address.removeprefix("http://").rsplit(":", 1)
        with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), 2):
            pass


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
@pytest.mark.parametrize("broker", ["tansu", "kafka"])
def test_up_prints_addresses_that_answer_and_stops_everything_on_a_signal(
    started: list[subprocess.Popen[str]], how: str, broker: str
) -> None:
    up = _up(started, "--broker", broker)
    _answers(up)
    children = up.children
    assert len(children) == 2
    kafka_log = re.search(r"^broker log: +(\S+)$", up.output, re.M)
    if broker == "kafka":  # its output goes to a file in a folder of its own, not to the terminal
        assert kafka_log is not None, up.output
        assert "Kafka Server started" in Path(kafka_log[1]).read_text()

    if how == "ctrl-c":
        os.killpg(up.proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
    else:
        up.proc.send_signal(signal.SIGTERM)

    assert up.proc.wait(_EXIT_TIMEOUT) == 0, _stderr(up.proc)
    _assert_gone(children, [up.bootstrap, up.registry_url])
    if kafka_log is not None:  # nothing on the terminal, and the temporary log dirs went with it
        assert "Kafka Server started" not in up.output + _stderr(up.proc)
        assert not Path(kafka_log[1]).parents[1].exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_starting_stops_what_already_runs(
    started: list[subprocess.Popen[str]], sig: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    children_file = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + _START_TIMEOUT
    while not children_file.read_text().split():  # the broker is spawned: the stack is part-way up
        assert proc.poll() is None and time.monotonic() < deadline, _stderr(proc)
        time.sleep(0.01)
    children = [int(pid) for pid in children_file.read_text().split()]

    proc.send_signal(sig)
    _, err = proc.communicate(timeout=_EXIT_TIMEOUT)
    # Usually it is still starting (130); on a fast machine it may already be up (0). Either way: clean.
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err
    _assert_gone(children, [])


def test_given_ports_are_used_and_the_data_dir_keeps_schema_ids_across_runs(
    started: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    port, registry_port = free_port(), free_port()
    args = ("--port", str(port), "--registry-port", str(registry_port), "--data-dir", str(tmp_path))

    first = _up(started, *args)
    assert first.bootstrap == f"127.0.0.1:{port}"
    assert first.registry_url == f"http://127.0.0.1:{registry_port}"
    answer = requests.post(
        f"{first.registry_url}/subjects/kept-value/versions", json={"schema": _SCHEMA}, timeout=10
    )
    schema_id = answer.json()["id"]
    first.proc.send_signal(signal.SIGINT)
    assert first.proc.wait(_EXIT_TIMEOUT) == 0

    second = _up(started, *args)
    fetched = requests.get(f"{second.registry_url}/subjects/kept-value/versions/latest", timeout=10).json()
    assert fetched["id"] == schema_id
    second.proc.send_signal(signal.SIGINT)
    assert second.proc.wait(_EXIT_TIMEOUT) == 0
    assert f"listening on: tcp://127.0.0.1:{port}" in (tmp_path / "tansu.log").read_text()


def test_a_process_that_dies_stops_the_other_and_exits_non_zero(started: list[subprocess.Popen[str]]) -> None:
    up = _up(started)
    broker_pid, registry_pid = up.children
    os.kill(broker_pid, signal.SIGKILL)

    assert up.proc.wait(_EXIT_TIMEOUT) == 1
    assert "exited unexpectedly" in _stderr(up.proc)
    _assert_gone([broker_pid, registry_pid], [up.registry_url])


def test_a_port_that_is_taken_is_a_clear_error_and_nothing_is_left_running(
    started: list[subprocess.Popen[str]],
) -> None:
    with socket.socket() as occupier:
        occupier.bind(("127.0.0.1", 0))
        occupier.listen()
        port = occupier.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack", "up", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(proc)
        _, err = proc.communicate(timeout=_START_TIMEOUT)
    assert proc.returncode == 1
    assert f"could not start: Tansu broker on 127.0.0.1:{port} could not listen" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("missing", ["java", "mvn"])
def test_kafka_without_java_or_maven_is_one_line_saying_what_to_install(
    started: list[subprocess.Popen[str]], tmp_path: Path, missing: str
) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with Java unless Java is what is missing, and no Maven
    bin_dir.mkdir()
    if missing != "java":
        (bin_dir / "java").symlink_to(shutil.which("java") or "/usr/bin/java")
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env.update(PATH=str(bin_dir), AVROFLOW_KAFKA_CACHE=str(tmp_path / "empty-cache"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up", "--broker", "kafka"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    started.append(proc)
    _, err = proc.communicate(timeout=_START_TIMEOUT)
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"no '{missing}' is on PATH" in lines[0]
    assert "install a Java 17+ runtime and Maven" in lines[0]

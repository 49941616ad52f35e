"""Argument parsing of the `avroflow` command line (no network)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from workers import cli


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("worker", "schemas", "produce", "consume", "demo"):
        assert command in out
    assert "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS" in out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_schemas_register_defaults_to_the_project_schemas_dir() -> None:
    args = cli.build_parser().parse_args(["schemas", "register"])
    assert args.schemas_command == "register"
    assert (args.dir / "subjects.json").is_file()


def test_schemas_check_takes_dir_and_registry_url() -> None:
    args = cli.build_parser().parse_args(["schemas", "check", "--dir", "/x", "--registry-url", "http://r:1"])
    assert args.dir == Path("/x")
    assert args.registry_url == "http://r:1"


def test_schemas_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["schemas"])
    assert exc.value.code == 2
    assert "ACTION" in capsys.readouterr().err


def test_produce_options() -> None:
    args = cli.build_parser().parse_args(
        ["produce", "app-events", "--key-field", "user_id", "--bootstrap-servers", "h:9092"]
    )
    assert (args.topic, args.key_field, args.subject, args.bootstrap_servers) == (
        "app-events",
        "user_id",
        None,
        "h:9092",
    )


def test_consume_options() -> None:
    args = cli.build_parser().parse_args(
        ["consume", "t", "--from-beginning", "--max-messages", "3", "--timeout", "1.5"]
    )
    assert (args.topic, args.from_beginning, args.max_messages, args.timeout) == ("t", True, 3, 1.5)
    defaults = cli.build_parser().parse_args(["consume", "t"])
    assert (defaults.from_beginning, defaults.max_messages, defaults.timeout) == (False, None, None)


@pytest.mark.parametrize("bad", ["0", "-1", "x"])
def test_consume_rejects_a_max_messages_below_one(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["consume", "t", "--max-messages", bad])
    assert exc.value.code == 2
    assert "--max-messages" in capsys.readouterr().err


def test_worker_without_settings_names_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AVROFLOW_KAFKA_BOOTSTRAP_SERVERS", "AVROFLOW_SCHEMA_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["worker"]) == cli.EXIT_USAGE
    assert "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err


def test_demo_options() -> None:
    args = cli.build_parser().parse_args(["demo", "--keep-running", "--timeout", "30"])
    assert (args.keep_running, args.timeout) == (True, 30.0)


def _no_avroflow_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}


def test_the_console_script_and_python_m_workers_are_the_same_command() -> None:
    script = Path(sys.executable).parent / "avroflow"
    for command in ([str(script)], [sys.executable, "-m", "workers"]):
        result = subprocess.run(
            [*command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=_no_avroflow_env(),
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: avroflow")


def test_the_procfile_worker_runs_the_worker_command() -> None:
    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()
    [worker] = [line for line in procfile.splitlines() if line.startswith("worker:")]
    command = shlex.split(worker.removeprefix("worker:"))
    assert command == ["python", "-m", "workers", "worker"]
    # Without settings the worker refuses to start and names what is missing (no broker needed to see it).
    result = subprocess.run(
        [sys.executable, *command[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_no_avroflow_env(),
    )
    assert result.returncode == cli.EXIT_USAGE
    assert "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS: required but not set" in result.stderr


def test_worker_with_an_unknown_pipelines_module_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AVROFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("AVROFLOW_SCHEMA_REGISTRY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AVROFLOW_PIPELINES", "no_such_module:PIPELINES")
    assert cli.main(["worker"]) == cli.EXIT_USAGE
    assert "no_such_module" in capsys.readouterr().err

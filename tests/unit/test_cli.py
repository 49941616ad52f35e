"""Argument parsing of the `avroflow` command line (no network)."""

from __future__ import annotations

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

"""The defaults in workers/README.md's settings table are the defaults the worker uses; more settings
edges: several unknown variables, `validate` on a directly built `Settings`, `Secret` equality both ways."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workers.settings import VARIABLES, Secret, Settings, SettingsError

README = Path(__file__).resolve().parents[2] / "workers" / "README.md"
REQUIRED = {
    "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "AVROFLOW_SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081",
}
ROW = re.compile(r"^\| (`AVROFLOW_[A-Z_]+`(?:, `AVROFLOW_[A-Z_]+`)*) \| ([^|]*) \|", re.M)


def documented_defaults() -> dict[str, str]:
    found: dict[str, str] = {}
    for names, defaults in ROW.findall(README.read_text(encoding="utf-8")):
        values = re.findall(r"`([^`]*)`", defaults)
        variables = re.findall(r"`(AVROFLOW_[A-Z_]+)`", names)
        if len(values) == len(variables):
            found.update(zip(variables, values, strict=True))
    return found


def test_every_default_in_the_readme_is_the_one_used() -> None:
    defaults = Settings.from_env(REQUIRED)
    documented = documented_defaults()
    by_variable = {variable: name for name, variable in VARIABLES.items()}
    assert len(documented) >= 20, "the table's shape changed: update ROW"
    for variable, text in documented.items():
        value = getattr(defaults, by_variable[variable])
        if isinstance(value, bool):
            assert str(value).lower() == text, variable
        elif isinstance(value, int | float):
            assert value == float(text), variable
        else:
            assert str(value) == text, variable


def test_of_several_unknown_variables_the_first_is_named_and_its_suggestion_given() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**REQUIRED, "AVROFLOW_APP_IDD": "x", "AVROFLOW_WEB_PORTT": "1"})
    assert caught.value.variable == "AVROFLOW_APP_IDD"
    assert "did you mean AVROFLOW_APP_ID?" in str(caught.value)


def test_validate_names_the_setting_below_zero_on_a_directly_built_settings() -> None:
    for name in ("batch_within_seconds", "retry_backoff_seconds"):
        settings = Settings(("h:1",), ("http://r",), **{name: -1.0})  # type: ignore[arg-type]
        with pytest.raises(SettingsError) as caught:
            settings.validate()
        assert caught.value.variable == VARIABLES[name]


def test_secrets_differ_both_ways() -> None:
    assert Secret("a") != Secret("b") and Secret("b") != Secret("a")


def test_secrets_compare_by_value_not_identity() -> None:
    built = "".join(["pass", "word"])  # an equal string that is another object
    assert Secret(built) == Secret("password")

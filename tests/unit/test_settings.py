"""Configuration: defaults, TOML file, DQD_* environment, flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dqd.cores import usable_cores
from dqd.errors import ConfigError
from dqd.settings import load, redact_url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DQD_") and name != "DQD_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


def test_zero_config_defaults() -> None:
    settings = load()
    assert settings.database_url_plain == "sqlite:///./dqd.db"
    assert settings.watch_dir == Path("./models")
    assert settings.output_dir == Path("./dqd-out")
    assert settings.search == "design"
    assert settings.benchmark.threads == usable_cores()


def test_usable_cores_follows_affinity() -> None:
    import os

    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))


def test_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "dqd.toml"
    config.write_text(
        'watch_dir = "/srv/models"\nsearch = "thorough"\n[benchmark]\nthreads = 3\nmargin = 0.1\n'
    )
    settings = load(config)
    assert settings.watch_dir == Path("/srv/models")
    assert settings.benchmark.threads == 3
    monkeypatch.setenv("DQD_BENCHMARK__THREADS", "5")
    monkeypatch.setenv("DQD_SEARCH", "design")
    settings = load(config)
    assert settings.benchmark.threads == 5
    assert settings.benchmark.margin == 0.1  # the file's other keys in that section survive
    assert settings.search == "design"
    settings = load(config, {"benchmark.threads": 7, "search": None})
    assert settings.benchmark.threads == 7
    assert settings.search == "design"


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('output_dir = "/data/out"\n')
    monkeypatch.setenv("DQD_CONFIG", str(config))
    assert load().output_dir == Path("/data/out")


@pytest.mark.parametrize(
    ("toml", "key", "allowed_fragment"),
    [
        ('search = "fast"', "search", "'design' or 'thorough'"),
        ("[benchmark]\nthreads = 0", "benchmark.threads", "greater than or equal to 1"),
        ('database_url = "mysql://x"', "database_url", "postgresql"),
        ("colour = 3", "colour", "no such key"),
        ('[watch]\nobserver = "kqueue"', "watch.observer", "'auto', 'native' or 'polling'"),
        ('[models."a/*.onnx"]\npin = { weight_type = "U4S4" }', 'models."a/*.onnx".pin', "U8U8, U8S8"),
        (
            '[models."m.onnx"]\npin = { weight_type = "U8S8", perchannel = true }',
            'models."m.onnx".pin',
            "'perchannel'",
        ),
        ("[models.m]\npin = { per_channel = true }", 'models."m".pin', "weight_type is required"),
        ('[models.m]\npin = { weight_type = "U8S8", op_types = "MatMul" }', 'models."m".pin', "a list of op"),
        ('[models.m]\npin = "int8"', 'models."m".pin', '"fp32" or a variant spec'),
    ],
)
def test_bad_values_name_key_value_and_allowed(
    tmp_path: Path, toml: str, key: str, allowed_fragment: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load(config)
    assert caught.value.key == key
    assert allowed_fragment in caught.value.allowed
    assert caught.value.exit_code == 2


def test_bad_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DQD_BENCHMARK__MARGIN", "lots")
    with pytest.raises(ConfigError) as caught:
        load()
    assert caught.value.key == "benchmark.margin"
    assert caught.value.value == "lots"


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="an existing TOML file"):
        load(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("search = \n")
    with pytest.raises(ConfigError, match="valid TOML"):
        load(broken)


def test_secrets_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DQD_DATABASE_URL", "postgresql+psycopg://dqd:hunter2@db:5432/dqd")
    monkeypatch.setenv("DQD_API__TOKEN", "s3cret-token")
    settings = load()
    shown = str(settings.redacted()) + repr(settings) + str(settings)
    assert "hunter2" not in shown
    assert "s3cret-token" not in shown
    assert settings.redacted()["database_url"] == "postgresql+psycopg://dqd:***@db:5432/dqd"
    assert settings.api_token() == "s3cret-token"


def test_bad_database_url_value_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DQD_DATABASE_URL", "mysql://root:hunter2@db/x")
    with pytest.raises(ConfigError) as caught:
        load()
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///./dqd.db", "sqlite:///./dqd.db"),
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_an_unknown_per_model_accuracy_key_names_the_key_and_the_allowed_ones(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text('[models."bert/*.onnx".accuracy]\nmin_cosine_mean = 0.9\nmin_cosin_worst = 0.8\n')
    with pytest.raises(ConfigError) as caught:
        load(config)
    assert caught.value.key == 'models."bert/*.onnx".accuracy.min_cosin_worst'
    assert caught.value.exit_code == 2
    assert "min_cosine_worst" in caught.value.allowed and "max_relative_l2" in caught.value.allowed


def test_known_per_model_accuracy_keys_load(tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text('[models."bert/*.onnx".accuracy]\nmin_cosine_mean = 0.9\nmax_relative_l2 = 0.5\n')
    assert load(config).models["bert/*.onnx"].accuracy == {"min_cosine_mean": 0.9, "max_relative_l2": 0.5}


def test_a_pin_is_fp32_or_a_checked_spec(tmp_path: Path) -> None:
    config = tmp_path / "pins.toml"
    config.write_text(
        '[models.a]\npin = "FP32"\n[models.b]\npin = { weight_type = "U8S8", per_channel = true }\n'
    )
    pins = {glob: section.pin for glob, section in load(config).models.items()}
    assert pins == {"a": "fp32", "b": {"weight_type": "U8S8", "per_channel": True}}


def test_a_wrong_database_url_scheme_stays_visible_with_only_the_password_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DQD_DATABASE_URL", "postgres://dqd:hunter2@db.internal:5432/dqd")
    with pytest.raises(ConfigError) as caught:
        load()
    message = str(caught.value)
    assert "'postgres://dqd:***@db.internal:5432/dqd'" in message and "hunter2" not in message
    assert "postgresql+psycopg://" in message


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("cron", "61 * * * *", "higher than the maximum value (59)"),
        ("cron", "0 2 * *", "5 cron fields"),
        ("cron", "0 2 * * * * *", "5 cron fields"),
        ("timezone", "Mars/Olympus", "a time zone name"),
    ],
)
def test_an_invalid_schedule_fails_at_load(key: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(overrides={f"schedule.{key}": value})
    assert caught.value.key == f"schedule.{key}" and words in caught.value.allowed


def test_valid_schedules_load() -> None:
    assert load(overrides={"schedule.cron": "*/10 * * * * *"}).schedule.cron == "*/10 * * * * *"
    assert load(overrides={"schedule.timezone": "Europe/Paris"}).schedule.timezone == "Europe/Paris"


def test_a_declared_host_identity_needs_the_allow_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DQD_HOST_CLASS", "x86_64-avx512vnni")
    with pytest.raises(ConfigError) as caught:
        load()
    assert caught.value.key == "allow_host_override" and "host_class is set" in str(caught.value)
    monkeypatch.setenv("DQD_ALLOW_HOST_OVERRIDE", "true")
    monkeypatch.setenv("DQD_HOST_ID", "bench-01")
    settings = load()
    assert (settings.host_class, settings.host_id) == ("x86_64-avx512vnni", "bench-01")


@pytest.mark.parametrize(
    ("key", "value"),
    [("DQD_HOST_ID", "x" * 33), ("DQD_HOST_ID", "has space"), ("DQD_HOST_CLASS", "NoDash")],
)
def test_a_declared_identity_must_fit_the_catalog(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv("DQD_ALLOW_HOST_OVERRIDE", "true")
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load()
    assert caught.value.key == key.removeprefix("DQD_").lower()

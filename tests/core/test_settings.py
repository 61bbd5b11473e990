"""Settings: file < environment < CLI, and one clear line for every bad configuration."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def write(tmp_path, text: str):
    path = tmp_path / "tollgate.yaml"
    path.write_text(text)
    return path


def test_file_then_env_then_overrides(tmp_path, monkeypatch):
    path = write(tmp_path, "sidecar:\n  port: 9000\n  host: 0.0.0.0\n")
    assert load_settings(path).sidecar.port == 9000
    monkeypatch.setenv("TOLLGATE_SIDECAR__PORT", "9001")
    settings = load_settings(path)
    assert (settings.sidecar.port, settings.sidecar.host) == (9001, "0.0.0.0")
    settings = load_settings(path, sidecar={"port": 9002})
    assert (settings.sidecar.port, settings.sidecar.host) == (9002, "0.0.0.0")


def test_database_url_defaults_to_sqlite_and_accepts_postgres(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings().resolved_database_url == "sqlite:///.tollgate/tollgate.db"
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", "postgres://u@h/db")
    assert load_settings().resolved_database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sidecar:\n  port: 99999\n", "sidecar.port: Input should be less than or equal to 65535"),
        ("models: [1\n", "invalid YAML"),
        ("modls: {}\n", "modls: Extra inputs are not permitted"),
        ("models:\n  m:\n    deployments: [{provider: openai}]\n", "needs base_url"),
        ("models:\n  m:\n    deployments: [{base_url: ftp://x}]\n", "must start with http"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("database_url: mysql://x\n", "sqlite:// or postgresql://"),
    ],
)
def test_bad_config_is_one_line(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and str(tmp_path) in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_secret_is_read_from_the_environment_only(tmp_path, monkeypatch):
    path = write(tmp_path, "models:\n  m:\n    deployments: [{base_url: 'http://x/v1', api_key_env: MY_KEY}]\n")
    settings = load_settings(path)
    deployment = settings.models["m"].deployments[0]
    assert deployment.api_key() is None
    monkeypatch.setenv("MY_KEY", "sk-secret")
    assert deployment.api_key() == "sk-secret"
    assert "sk-secret" not in repr(settings)


def test_otlp_endpoint_from_settings_then_the_standard_variables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert load_settings().telemetry.otlp_endpoint is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert load_settings().telemetry.otlp_endpoint == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/v1/traces")
    assert load_settings().telemetry.otlp_endpoint == "http://traces:4318/v1/traces"
    monkeypatch.setenv("TOLLGATE_TELEMETRY__OTLP_ENDPOINT", "http://mine:4318/v1/traces")
    assert load_settings().telemetry.otlp_endpoint == "http://mine:4318/v1/traces"

"""One validated configuration, resolved once: `tollgate.yaml` < `TOLLGATE_*` env < CLI flags.

Nested environment keys use a double underscore: `TOLLGATE_SIDECAR__PORT=9000`.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.config.access import AccessSettings
from core.config.batch import BatchSettings
from core.config.cache import CacheSettings
from core.config.dashboard import DashboardSettings
from core.config.guards import GuardSettings
from core.config.judges import JudgeSettings
from core.config.releases import ReleaseSettings
from core.config.routing import RoutingSettings
from core.errors import ConfigError

EMBEDDED_MODEL_NAME = "local/smollm2-135m"
DEFAULT_CONFIG_FILE = "tollgate.yaml"

_config_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("tollgate_config", default=None)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Price(_Frozen):
    """USD per million tokens."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0, description="Input read from a prompt cache")
    cache_write_per_mtok: float | None = Field(default=None, ge=0, description="Input written to a prompt cache")


class Deployment(_Frozen):
    """One place a model is served from.

    `provider: openai` is any OpenAI-compatible server (vLLM, llama.cpp, TGI, Ollama, OpenAI) and takes
    the fast path; `provider: litellm` sends the call through litellm (Anthropic, Gemini, ...).
    """

    name: str | None = None
    provider: Literal["openai", "litellm"] = "openai"
    base_url: str | None = None
    model: str | None = Field(default=None, description="Model name the upstream expects; default: the public name")
    api_key_env: str | None = Field(default=None, description="Name of the environment variable holding the key")
    timeout_s: float | None = Field(default=None, gt=0)
    kind: Literal["generic", "vllm"] = Field(default="generic", description="vllm: balance on its /metrics, check /health")
    max_in_flight: int | None = Field(default=None, ge=1, description="Admission limit; None = unlimited")
    queue_size: int = Field(default=64, ge=0, description="Requests waiting for a slot before 503s")
    queue_timeout_s: float = Field(default=10.0, gt=0, description="Longest wait for a slot before a 503")

    @model_validator(mode="after")
    def _needs_base_url(self) -> Deployment:
        if self.provider == "openai" and not self.base_url:
            raise ValueError("an openai-compatible deployment needs base_url")
        if self.provider == "litellm" and not self.model:
            raise ValueError("a litellm deployment needs model (e.g. anthropic/claude-3-5-haiku-latest)")
        if self.api_key_env and self.provider == "openai" and "@" in (self.base_url or "").split("/", 3)[2]:
            # aiohttp refuses an Authorization header beside credentials in the URL: every call would fail.
            raise ValueError("base_url carries credentials (user:password@) and api_key_env is set: use one")
        return self

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        # Messages never quote the URL: it may carry credentials.
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise ValueError("base_url has an invalid port") from None
        if not parts.hostname:
            raise ValueError("base_url has no host")
        return value.rstrip("/")

    def api_key(self) -> str | None:
        """Read the secret from the environment at the moment it is needed; it is never stored or logged."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelRoute(_Frozen):
    """A public model name: where it is served, what to fall back to, and its price."""

    deployments: list[Deployment] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)
    price: Price | None = None
    context_window: int | None = Field(
        default=None, ge=1, description="Tokens the model holds; a larger max_tokens is refused with a 400"
    )


class SidecarSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    first_byte_timeout_s: float = Field(default=120.0, gt=0)
    idle_timeout_s: float = Field(default=60.0, gt=0, description="Longest silence allowed inside a stream")
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_s: float = Field(default=0.05, ge=0)
    pool_size: int = Field(default=256, gt=0, description="Connections kept per upstream host")


class TrafficSettings(_Frozen):
    enabled: bool = True
    queue_size: int = Field(default=20_000, gt=0)
    batch_size: int = Field(default=500, gt=0)
    flush_interval_s: float = Field(default=0.25, gt=0)
    log_bodies: bool = True
    max_logged_body_chars: int = Field(default=64_000, gt=0)
    redact_pii: bool = True
    writer: Literal["process", "thread"] = Field(
        default="process",
        description="Where rows are finalised and stored: a child process (off the sidecar's GIL) or a thread",
    )
    memory_buffer_rows: int = Field(
        default=20_000, gt=0, description="Records held in memory while neither the database nor the spool takes them"
    )
    memory_buffer_bytes: int = Field(default=128 * 1024 * 1024, gt=0, description="The same bound in bytes")
    when_full: Literal["refuse", "shed"] = Field(
        default="refuse",
        description="Memory buffer full: refuse new requests (503 traffic_log_full) or serve them unlogged (counted)",
    )


class EmbeddedSettings(_Frozen):
    """The local llama.cpp server started when no upstream is configured."""

    enabled: Literal["auto", "always", "never"] = "auto"
    model_name: str = EMBEDDED_MODEL_NAME
    threads: int = Field(default=2, ge=1)
    parallel: int = Field(default=4, ge=1)
    context: int = Field(default=8192, ge=512)
    startup_timeout_s: float = Field(default=60.0, gt=0)


class TelemetrySettings(_Frozen):
    """OpenTelemetry export. Nothing is exported (and nothing is paid on the request path) without an endpoint."""

    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces; "
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT fill it in when unset"
    )
    service_name: str = "tollgate"


class Settings(BaseSettings):
    """Everything Tollgate reads from its configuration."""

    model_config = SettingsConfigDict(
        env_prefix="TOLLGATE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path(".tollgate")
    database_url: str | None = None
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    litellm_price_fallback: bool = Field(
        default=False, description="Price models missing from the bundled price table from litellm's installed map"
    )
    sidecar: SidecarSettings = SidecarSettings()
    traffic: TrafficSettings = TrafficSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    redis_url: str | None = Field(
        default=None, description="Redis shared by several sidecars (limits, budgets, cache); None = in-process state"
    )
    judges: JudgeSettings = JudgeSettings()
    guards: GuardSettings = GuardSettings()
    routing: RoutingSettings = RoutingSettings()
    cache: CacheSettings = CacheSettings()
    batch: BatchSettings = BatchSettings()
    access: AccessSettings = AccessSettings()
    releases: ReleaseSettings = ReleaseSettings()
    dashboard: DashboardSettings = DashboardSettings()

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, else SQLite under `data_dir`."""
        url = self.database_url
        if url is None:
            return f"sqlite:///{(self.data_dir / 'tollgate.db').as_posix()}"
        if url.startswith("postgresql://"):
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    def price_for(self, model: str) -> Price | None:
        """A configured price for `model` (its route's price, else the `prices` table)."""
        route = self.models.get(model)
        if route is not None and route.price is not None:
            return route.price
        return self.prices.get(model)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: CLI overrides, then TOLLGATE_* env, then the YAML file, then the standard
        # OpenTelemetry variables (so a collector configured for the whole host is used unless overridden).
        return (init_settings, env_settings, _YamlSource(settings_cls), _OtelEnvSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _config_path.get()
        if path is None:
            return {}
        return read_config_file(path)


class _OtelEnvSource(PydanticBaseSettingsSource):
    """`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if not endpoint and base:
            endpoint = base.rstrip("/") + "/v1/traces"
        return {"telemetry": {"otlp_endpoint": endpoint}} if endpoint else {}


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML config file into a mapping, with a one-line error on failure."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The file to read: the explicit one, else `$TOLLGATE_CONFIG`, else `./tollgate.yaml` if present."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    env_path = os.environ.get("TOLLGATE_CONFIG")
    if env_path:
        return find_config_file(env_path)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Resolve the configuration once. Raises `ConfigError` with a single readable line."""
    path = find_config_file(config_file)
    token = _config_path.set(path)
    try:
        clean = {key: value for key, value in overrides.items() if value is not None}
        return Settings(**clean)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, path)) from exc
    finally:
        _config_path.reset(token)


def _describe_validation_error(exc: ValidationError, path: Path | None) -> str:
    source = str(path) if path is not None else "configuration"
    parts = []
    for error in exc.errors()[:3]:
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return f"{source}: invalid config: " + "; ".join(parts) + more

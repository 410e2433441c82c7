"""What can be configured: the sections, their defaults and their validation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dqd.cores import usable_cores
from dqd.domain import VariantSpec
from dqd.errors import ConfigError
from dqd.hostlock import default_lock_path
from dqd.scratchnames import default_exclude_globs

ENV_PREFIX = "DQD_"
DEFAULT_DATABASE_URL = "sqlite:///./dqd.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BenchmarkSettings(_Section):
    threads: int = Field(default_factory=usable_cores, ge=1, le=1024)
    margin: float = Field(0.05, ge=0.0, lt=1.0, description="speed-up must clear 1 + margin")
    warmup_runs: int = Field(3, ge=0)
    min_seconds: float = Field(1.0, gt=0)
    max_seconds: float = Field(20.0, gt=0)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    decoder_past_length: int = Field(128, ge=1, description="KV-cache length the decode step is timed at")
    decoder_decides: Literal["decode", "prompt"] = Field(
        "decode", description="which decoder step's speed-up decides: one new token, or the prompt"
    )
    max_foreign_load: float = Field(
        0.25,
        gt=0,
        le=1.0,
        description="a benchmark during which others used the CPU more than this (dqd.hostload: a fraction "
        "of its time) is not trusted: the job waits busy_retry_seconds and runs again; 1 turns it off",
    )
    busy_retry_seconds: float = Field(120.0, gt=0, description="how long a job waits after a busy host")


class AccuracySettings(_Section):
    # Output noise bounds, in signal-to-noise terms: relative L2 0.35 is an SQNR of about 9 dB, and
    # cosine 0.95 the angle that much uncorrelated noise makes; worst 0.90 bounds any single sample.
    # Gross divergence (an LSTM's probabilities at cosine 0.75, relative L2 ~0.9) fails every bound.
    min_cosine_mean: float = Field(0.95, ge=-1.0, le=1.0)
    min_cosine_worst: float = Field(0.90, ge=-1.0, le=1.0)
    max_relative_l2: float = Field(0.35, gt=0.0)
    min_top1_agreement: float = Field(0.95, ge=0.0, le=1.0)
    synthetic_batch: int = Field(4, ge=1)
    default_dim: int = Field(16, ge=1, description="size of a symbolic dim with no better guess")
    sequence_length: int = Field(16, ge=1, description="calls in a stateful stream (decoders: decode steps)")
    decoder_prompt_tokens: int = Field(16, ge=1, description="prompt length of a decoder's judged generation")
    float_distribution: Literal["normal", "uniform"] = "normal"
    seed: int = 0
    input_shapes: dict[str, list[int]] = Field(default_factory=dict)


# The thresholds and numbers a model may set for itself (``[models."<glob>".accuracy]``): the
# numeric accuracy settings; input shapes have their own per-model key.
ACCURACY_OVERRIDE_KEYS = tuple(
    name for name, field in AccuracySettings.model_fields.items() if field.annotation in (float, int)
)


def _known_accuracy_key(key: str) -> str:
    # A typo would otherwise be silently ignored and the model gated with the global threshold.
    if key not in ACCURACY_OVERRIDE_KEYS:
        raise ValueError(f"one of {', '.join(ACCURACY_OVERRIDE_KEYS)}")
    return key


AccuracyOverrideKey = Annotated[str, AfterValidator(_known_accuracy_key)]


class LadderSettings(_Section):
    """``search = "thorough"``: the variant ladder (issue 6)."""

    time_budget_seconds: float = Field(600.0, gt=0, description="no new rung starts past this (per model)")
    noise: float = Field(0.05, ge=0.0, lt=1.0, description="speed-ups this close count as equal")
    screen: bool = Field(
        True,
        description=(
            "time each rung in a short pilot beside FP32 and the leader before gating it, skip the gate of "
            "rungs that cannot be selected, prune a rung whose per-channel twin was not faster, and end "
            "the playoff once it has told the finalists apart (false: time every rung to the end)"
        ),
    )
    pilot_seconds: float = Field(
        0.25, gt=0, description="screen: the pilot's first look at a rung's interval"
    )


class LimitSettings(_Section):
    timeout_seconds: float = Field(1800.0, gt=0)
    memory_mb: int = Field(8192, ge=64)
    external_data_mb: float = Field(
        1024.0,
        gt=0,
        description="models larger than this are written with their tensors in a .data file "
        "(protobuf refuses 2 GB); lowered only to exercise that path on small models",
    )
    background_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="nice increment of pre-processing, quantization and accuracy checks, run in a process of "
        "their own at the lowest best-effort I/O priority; benchmarks keep the daemon's priority; 0: no leaf",
    )


class WatchSettings(_Section):
    observer: Literal["auto", "native", "polling"] = "auto"
    poll_interval: float = Field(2.0, gt=0)
    settle_seconds: float = Field(2.0, ge=0)
    polling_settle_seconds: float = Field(
        30.0,
        ge=0,
        description="polling observer: no close events there, so quiet time alone marks a file complete",
    )
    include: list[str] = Field(default_factory=lambda: ["*.onnx"])
    exclude: list[str] = Field(default_factory=default_exclude_globs)
    reconcile_interval: float = Field(300.0, gt=0)


class WorkerSettings(_Section):
    concurrency: int = Field(1, ge=1, le=64)
    lease_seconds: float = Field(60.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    backoff_seconds: float = Field(30.0, ge=0)
    grace_seconds: float = Field(30.0, ge=0)
    heartbeat_seconds: float = Field(10.0, gt=0)
    host_ttl_seconds: float = Field(300.0, gt=0)
    poll_seconds: float = Field(
        2.0, gt=0, description="how often an idle worker looks for jobs queued by other hosts or commands"
    )


class ScheduleSettings(_Section):
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    max_age_days: float = Field(30.0, gt=0)
    enabled: bool = True

    # Checked when the configuration loads (`dqd config show` included), not after "daemon starting".
    # APScheduler, which will run it, is the judge; it is imported only for a value given.
    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str) -> str:
        return _checked_cron(value, default="0 2 * * *")

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        if value != "UTC":
            _cron_trigger("0 2 * * *", value, "a time zone name such as UTC or Europe/Paris")
        return value


def _checked_cron(value: str, *, default: str) -> str:
    """``value`` when APScheduler parses it (the default is known good: not imported for it)."""
    if value != default:
        _cron_trigger(value, "UTC", "a valid cron expression")
    return value


def _cron_trigger(expression: str, timezone: str, allowed: str) -> Any:
    """Five fields (minute hour day month weekday), or six with seconds first; ValueError otherwise."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    try:
        if len(fields) == 5:
            return CronTrigger.from_crontab(expression, timezone=timezone)
        if len(fields) == 6:
            names = ("second", "minute", "hour", "day", "month", "day_of_week")
            return CronTrigger(timezone=timezone, **dict(zip(names, fields, strict=True)))
    except (ValueError, LookupError) as exc:
        raise ValueError(f"{allowed} ({str(exc).strip(chr(39))})") from None
    raise ValueError("5 cron fields (minute hour day month weekday), or 6 with seconds first")


class ApiSettings(_Section):
    serve_in_daemon: bool = Field(False, description="`dqd run` also serves the API (`--serve`)")
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    token: SecretStr | None = None
    token_file: Path | None = None


def read_secret(value: SecretStr | None, file: Path | None, file_key: str) -> str | None:
    """A secret given inline, else read (stripped) from ``file``; None when neither is set."""
    if value is not None:
        return value.get_secret_value()
    if file is None:
        return None
    try:
        return file.read_text().strip() or None
    except OSError as exc:
        raise ConfigError(file_key, str(file), f"a readable file ({exc.strerror})") from exc


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url) < 10:
        raise ValueError(f"an http:// or https:// URL, not {url!r}")
    return url


class RetentionSettings(_Section):
    """What `dqd gc` and the optional daily sweep remove (see dqd.retention)."""

    keep_days: float = Field(7.0, ge=0, description="variant files written more recently are kept")
    sweep: bool = Field(False, description="run `dqd gc` daily in the daemon, at sweep_cron")
    sweep_cron: str = "30 3 * * *"
    unpublish_removed: bool = Field(
        False, description="also remove the published files of models deleted from the watched folder"
    )

    @field_validator("sweep_cron")
    @classmethod
    def _cron_parses(cls, value: str) -> str:
        return _checked_cron(value, default="30 3 * * *")


class NotificationSettings(_Section):
    """Webhooks called when the file to load for a (model path, host class) changes, and on errors."""

    webhooks: list[Annotated[str, AfterValidator(_http_url)]] = Field(default_factory=list)
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key of the X-Dqd-Signature header")
    secret_file: Path | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    backoff_seconds: float = Field(5.0, gt=0, description="first retry delay; doubles up to max_backoff")
    max_backoff_seconds: float = Field(3600.0, gt=0)
    give_up_hours: float = Field(72.0, gt=0, description="a call failing this long ends failed")

    def signing_secret(self) -> str | None:
        return read_secret(self.secret, self.secret_file, "notifications.secret_file")


class ModelOverrides(_Section):
    """Per-model settings: a ``[models."<glob>"]`` section or a ``<stem>.dqd.toml`` sidecar."""

    exclude: bool = False
    pin: dict[str, Any] | Literal["fp32"] | None = None
    search: Literal["design", "thorough"] | None = None
    nodes_to_exclude: list[str] = Field(default_factory=list)
    input_shapes: dict[str, list[int]] = Field(default_factory=dict)
    accuracy: dict[AccuracyOverrideKey, float] = Field(default_factory=dict)

    @field_validator("pin", mode="before")
    @classmethod
    def _pin_is_fp32_or_a_spec(cls, value: Any) -> Any:
        # Checked when the configuration loads, not when the model's turn comes hours later.
        if value is None or (isinstance(value, str) and value.lower() == "fp32"):
            return None if value is None else "fp32"
        if isinstance(value, Mapping):
            VariantSpec.from_settings(value)
            return dict(value)
        raise ValueError('"fp32" or a variant spec such as { weight_type = "U8S8", per_channel = true }')


HostId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,32}$")]  # hosts.id is VARCHAR(32)
HostClassName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+-[a-z0-9_+.]+$", max_length=64)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    watch_dir: Path = Path("./models")
    output_dir: Path = Path("./dqd-out")
    publish_dir: Path | None = None
    search: Literal["design", "thorough"] = "design"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    auto_migrate: bool | None = None  # default: on for SQLite, off for Postgres
    # Shared by every dqd process on the host (env DQD_HOST_LOCK); see dqd.hostlock.
    host_lock: Path = Field(default_factory=default_lock_path)
    # A declared identity (tests on one machine, a fleet whose class detection an operator
    # overrides): honoured only with allow_host_override, so a host never lies about its ISA by
    # accident; logged at start and recorded (hosts.declared) beside the flags really detected.
    host_id: HostId | None = None
    host_class: HostClassName | None = None
    allow_host_override: bool = False

    benchmark: BenchmarkSettings = Field(default_factory=BenchmarkSettings)
    accuracy: AccuracySettings = Field(default_factory=AccuracySettings)
    ladder: LadderSettings = Field(default_factory=LadderSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    models: dict[str, ModelOverrides] = Field(default_factory=dict)

    @field_validator("allow_host_override")
    @classmethod
    def _declared_identity_is_allowed(cls, value: bool, info: ValidationInfo) -> bool:
        declared = [key for key in ("host_id", "host_class") if info.data.get(key) is not None]
        if declared and not value:
            raise ValueError(
                f"true when {' and '.join(declared)} is set (DQD_ALLOW_HOST_OVERRIDE=true): a declared "
                "identity replaces the detected one on purpose only; unset it to use the detected one"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            hint = " (write postgresql+psycopg:// for postgres://)" if url.startswith("postgres:") else ""
            raise ValueError(f"a sqlite:/// or postgresql+psycopg:// URL{hint}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load() merges file, environment and flags itself, so precedence is explicit.
        return (init_settings,)

    @property
    def database_url_plain(self) -> str:
        return self.database_url.get_secret_value()

    def api_token(self) -> str | None:
        return read_secret(self.api.token, self.api.token_file, "api.token_file")

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as JSON-able data, secrets replaced."""
        data = self.model_dump(mode="json")
        data["database_url"] = redact_url(self.database_url_plain)
        data["api"]["token"] = "********" if self.api.token else None
        data["notifications"]["secret"] = "********" if self.notifications.secret else None
        return data


def redact_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if has_password else ''}@{location}"

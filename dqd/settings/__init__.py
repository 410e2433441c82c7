"""The only place that reads configuration.

Precedence, lowest to highest: built-in defaults, a TOML file (``--config`` or
``DQD_CONFIG``), ``DQD_*`` environment variables (nested keys with ``__``, e.g.
``DQD_BENCHMARK__THREADS=2``), then command-line flags passed as overrides.
``schema`` says what can be set; ``loading`` reads it.
"""

from __future__ import annotations

from dqd.settings.loading import load
from dqd.settings.schema import (
    ACCURACY_OVERRIDE_KEYS,
    DEFAULT_DATABASE_URL,
    ENV_PREFIX,
    AccuracySettings,
    ApiSettings,
    BenchmarkSettings,
    LadderSettings,
    LimitSettings,
    ModelOverrides,
    NotificationSettings,
    RetentionSettings,
    ScheduleSettings,
    Settings,
    WatchSettings,
    WorkerSettings,
    redact_url,
)

__all__ = [
    "ACCURACY_OVERRIDE_KEYS",
    "DEFAULT_DATABASE_URL",
    "ENV_PREFIX",
    "AccuracySettings",
    "ApiSettings",
    "BenchmarkSettings",
    "LadderSettings",
    "LimitSettings",
    "ModelOverrides",
    "NotificationSettings",
    "RetentionSettings",
    "ScheduleSettings",
    "Settings",
    "WatchSettings",
    "WorkerSettings",
    "load",
    "redact_url",
]

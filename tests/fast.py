"""Fast benchmark settings for tests that run the real engine: they test the flow, not the statistics.

One definition for the integration tests (:func:`fast_settings`) and, as
``DQD_*`` variables (:func:`as_env`), for the ``dqd`` subprocesses of the
acceptance and CLI tests. A test that needs other numbers overrides them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dqd.settings import Settings, load

FAST_BENCHMARK: dict[str, Any] = {
    "benchmark.threads": 1,
    "benchmark.warmup_runs": 2,
    "benchmark.min_seconds": 0.3,
    "benchmark.max_seconds": 2.0,
    "benchmark.max_foreign_load": 1.0,  # the suite's own load must not trip the busy-host check
}


def fast_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings writing variants under ``tmp_path/out`` with :data:`FAST_BENCHMARK`, then ``overrides``
    (dotted keys, as ``dqd.settings.load`` takes them)."""
    return load(overrides={"output_dir": str(tmp_path / "out"), **FAST_BENCHMARK, **overrides})


def as_env(overrides: Mapping[str, Any]) -> dict[str, str]:
    """The same dotted overrides as ``DQD_*`` environment variables, for a ``dqd`` subprocess."""
    return {"DQD_" + key.upper().replace(".", "__"): str(value) for key, value in overrides.items()}

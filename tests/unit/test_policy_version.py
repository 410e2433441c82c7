"""One policy version per search mode: what the engine records is what staleness compares against."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dqd.daemon.scheduler import current_policy, staleness
from dqd.domain import DecisionRecord, EngineResult, Outcome, SearchMode
from dqd.pipeline.analyse import EngineRequest, analyse_model
from dqd.pipeline.isolate import ChildReporter
from dqd.pipeline.ladder_rules import RULES_REVISION, RULES_VERSION
from dqd.pipeline.policy import LADDER_POLICY_VERSION, policy_version_for
from dqd.settings import AccuracySettings, BenchmarkSettings

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
MAX_AGE = timedelta(days=30)


def recorded(mode: SearchMode, outcome: Outcome = Outcome.QUANTIZED) -> DecisionRecord:
    """A decision as the catalog stores it for an engine result made now in ``mode``."""
    return DecisionRecord(
        id=1,
        sha256="a" * 64,
        host_class="x86_64-avx2",
        host_id="h",
        ort_version="1.32.0",
        search_mode=mode.value,
        policy_version=policy_version_for(mode),
        outcome=outcome,
        variant_id=None,
        speedup=1.5,
        speedup_ci=None,
        reasons=(),
        details={},
        error=None,
        seconds=1.0,
        created_at=NOW - timedelta(days=1),
    )


@pytest.mark.parametrize("mode", list(SearchMode))
def test_a_decision_made_now_is_not_stale_for_a_host_in_the_same_mode(mode: SearchMode) -> None:
    current = current_policy("1.32.0", mode.value, MAX_AGE)
    assert staleness(recorded(mode), current, NOW) is None


def test_a_design_decision_is_stale_when_the_model_becomes_thorough() -> None:
    current = current_policy("1.32.0", "thorough", MAX_AGE)
    reason = staleness(recorded(SearchMode.DESIGN), current, NOW)
    assert reason is not None and "design search, now thorough" in reason


def test_the_current_policy_carries_the_modes_version() -> None:
    assert current_policy("1.32.0", "thorough", MAX_AGE).policy_version == "ladder/3"
    assert current_policy("1.32.0", "design", MAX_AGE).policy_version == "design-two-step/1"


def _request(path: Path, mode: SearchMode) -> EngineRequest:
    return EngineRequest(
        path=path,
        relative_path=Path(path.name),
        sha256="b" * 64,
        output_dir=path.parent / "out",
        search=mode,
        threads=1,
        accuracy=AccuracySettings(),
        benchmark=BenchmarkSettings(),
        ort_version="1.32.0",
        source_size=path.stat().st_size,
    )


@pytest.mark.parametrize("mode", list(SearchMode))
def test_a_preflight_outcome_records_its_modes_policy_version(tmp_path: Path, mode: SearchMode) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not an onnx model")
    result: EngineResult = analyse_model(ChildReporter(None), _request(model, mode))
    assert result.outcome is Outcome.ERROR
    assert result.policy_version == policy_version_for(mode)


def test_the_ladder_policy_version_follows_the_rules_revision_and_stays_ladder_3() -> None:
    # One derives from the other, so a rules bump re-decides every thorough model; the recorded
    # value itself must not change by accident (that too would requantize the whole catalog).
    assert LADDER_POLICY_VERSION == f"ladder/{RULES_REVISION}" == "ladder/3"
    assert RULES_VERSION == f"ladder-rules/{RULES_REVISION}" == "ladder-rules/3"
    assert policy_version_for(SearchMode.THOROUGH) == "ladder/3"

"""The nightly staleness rule and tick identity: pure functions, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dqd.daemon.scheduler import (
    CurrentPolicy,
    cron_trigger,
    latest_fire_time,
    policy_is_older,
    stale_models,
    staleness,
    tick_key,
)
from dqd.domain import DecisionRecord, Outcome
from dqd.errors import ConfigError
from dqd.pipeline.policy import PREFLIGHT_VERSION

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
CURRENT = CurrentPolicy("1.32.0", "design-two-step/2", "design", timedelta(days=30))


def decision(**changes: object) -> DecisionRecord:
    base: dict[str, object] = {
        "id": 1,
        "sha256": "a" * 64,
        "host_class": "x86_64-avx2",
        "host_id": "h",
        "ort_version": "1.32.0",
        "search_mode": "design",
        "policy_version": "design-two-step/2",
        "outcome": Outcome.QUANTIZED,
        "variant_id": None,
        "speedup": 1.5,
        "speedup_ci": None,
        "reasons": (),
        "details": {},
        "error": None,
        "seconds": 1.0,
        "created_at": NOW - timedelta(days=1),
        "preflight_version": PREFLIGHT_VERSION,
    }
    base.update(changes)
    return DecisionRecord(**base)  # type: ignore[arg-type]


def test_fresh_decision_is_not_stale() -> None:
    assert staleness(decision(), CURRENT, NOW) is None


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"ort_version": "1.31.0"}, "onnxruntime 1.31.0"),
        ({"policy_version": "design-two-step/1"}, "policy design-two-step/1"),
        ({"policy_version": "something-else/9"}, "policy something-else/9"),
        ({"search_mode": "thorough"}, "thorough search"),
        ({"created_at": NOW - timedelta(days=31)}, "31 days ago"),
    ],
)
def test_each_rule_makes_it_stale(changes: dict[str, object], words: str) -> None:
    reason = staleness(decision(**changes), CURRENT, NOW)
    assert reason is not None and words in reason


@pytest.mark.parametrize("outcome", [Outcome.SKIPPED, Outcome.ERROR])
def test_policy_version_does_not_matter_for_outcomes_the_policy_did_not_make(outcome: Outcome) -> None:
    assert staleness(decision(outcome=outcome, policy_version="design-two-step/1"), CURRENT, NOW) is None
    assert staleness(decision(outcome=outcome, ort_version="1.0"), CURRENT, NOW) is not None


@pytest.mark.parametrize("outcome", [Outcome.SKIPPED, Outcome.ERROR])
@pytest.mark.parametrize("recorded", [None, "preflight/1"])
def test_errors_and_skips_under_an_older_preflight_are_stale(outcome: Outcome, recorded: str | None) -> None:
    """Issue 11: models refused before pre-fixes existed get another chance once."""
    reason = staleness(decision(outcome=outcome, preflight_version=recorded), CURRENT, NOW)
    assert (
        reason == f"{outcome.value} under preflight {recorded or 'before pre-fixes'}, now {PREFLIGHT_VERSION}"
    )


@pytest.mark.parametrize("outcome", [Outcome.QUANTIZED, Outcome.KEPT_FP32])
def test_the_preflight_version_does_not_matter_for_policy_outcomes(outcome: Outcome) -> None:
    assert staleness(decision(outcome=outcome, preflight_version=None), CURRENT, NOW) is None


def test_a_newer_preflight_from_a_newer_daemon_is_not_stale() -> None:
    assert staleness(decision(outcome=Outcome.ERROR, preflight_version="preflight/99"), CURRENT, NOW) is None


def test_never_decided_is_stale() -> None:
    assert staleness(None, CURRENT, NOW) == "never decided for this host class"


def test_exactly_max_age_is_not_stale_yet() -> None:
    assert staleness(decision(created_at=NOW - timedelta(days=30)), CURRENT, NOW) is None


def test_a_newer_policy_from_a_newer_daemon_is_not_stale() -> None:
    assert staleness(decision(policy_version="design-two-step/3"), CURRENT, NOW) is None


@pytest.mark.parametrize(
    ("recorded", "current", "older"),
    [
        ("p/1", "p/2", True),
        ("p/2", "p/2", False),
        ("p/10", "p/9", False),
        ("q/1", "p/2", True),
        ("p", "p/1", True),
    ],
)
def test_policy_versions(recorded: str, current: str, older: bool) -> None:
    assert policy_is_older(recorded, current) is older


def test_stale_models_uses_each_paths_own_policy() -> None:
    contents = {"a" * 64: "a.onnx", "b" * 64: "b.onnx", "c" * 64: "c.onnx"}
    decisions = {"a" * 64: decision(), "b" * 64: decision(sha256="b" * 64)}
    thorough = CurrentPolicy("1.32.0", "design-two-step/2", "thorough", timedelta(days=30))
    result = stale_models(contents, decisions, lambda p: thorough if p == "b.onnx" else CURRENT, NOW)
    assert [(sha[0], path) for sha, path, _ in result] == [("b", "b.onnx"), ("c", "c.onnx")]


def test_tick_key_is_the_same_for_every_daemon_in_utc() -> None:
    from zoneinfo import ZoneInfo

    paris = datetime(2026, 6, 1, 4, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert tick_key(paris, "s", "c") == tick_key(NOW, "s", "c") == "requantize:20260601T020000Z:s:c"


def test_latest_fire_time_is_the_scheduled_time_not_the_late_start() -> None:
    trigger = cron_trigger("0 2 * * *", "UTC")
    assert latest_fire_time(trigger, NOW + timedelta(seconds=1.7)) == NOW
    assert latest_fire_time(trigger, NOW + timedelta(minutes=59)) == NOW
    seconds = cron_trigger("*/10 * * * * *", "UTC")
    assert latest_fire_time(seconds, NOW + timedelta(seconds=13.2)) == NOW + timedelta(seconds=10)


def test_timezone_is_honoured() -> None:
    trigger = cron_trigger("0 2 * * *", "Europe/Paris")
    fired = latest_fire_time(trigger, datetime(2026, 6, 1, 0, 0, 30, tzinfo=UTC))
    assert fired == datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # 02:00 in Paris (CEST)


@pytest.mark.parametrize("expression", ["not a cron", "99 * * * *", "* * *"])
def test_bad_cron_is_a_config_error(expression: str) -> None:
    with pytest.raises(ConfigError) as info:
        cron_trigger(expression, "UTC")
    assert info.value.key == "schedule.cron"


def test_a_changed_plan_is_stale_and_a_decision_from_before_fingerprints_is_not() -> None:
    from dataclasses import replace

    from dqd.daemon.scheduler import plan_changed

    current = replace(CURRENT, plan_fingerprint="plan-b")
    assert "per-model settings" in (staleness(decision(plan_fingerprint="plan-a"), current, NOW) or "")
    assert plan_changed(decision(plan_fingerprint="plan-b"), current) is None
    assert plan_changed(decision(plan_fingerprint=None), current) is None  # decided before migration 0009
    assert plan_changed(decision(plan_fingerprint="plan-a"), CURRENT) is None  # no current plan given

"""Nightly requantization: which model versions are stale for a host class, and the cron tick.

A version is stale for a class when that class never decided it, or its
latest decision there was made with another onnxruntime version, an older
policy version, another search mode, or longer ago than ``max_age_days``; an
``error`` or ``skipped`` one also when it was made under an older preflight.
:func:`staleness` is pure (time is an argument). Each tick enqueues with the
key ``requantize:<tick>:<sha256>:<class>``, so however many daemons of a
class fire the same tick, each model is queued once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from dqd.catalog import Catalog
from dqd.domain import DecisionRecord, Job, JobKind, Outcome, SearchMode
from dqd.errors import CatalogError, ConfigError
from dqd.pipeline.policy import PREFLIGHT_VERSION, policy_version_for

logger = logging.getLogger(__name__)

POLICY_OUTCOMES = frozenset({Outcome.QUANTIZED, Outcome.OPTIMIZED_FP32, Outcome.KEPT_FP32})
PREFLIGHT_OUTCOMES = frozenset({Outcome.ERROR, Outcome.SKIPPED})


@dataclass(frozen=True)
class CurrentPolicy:
    ort_version: str
    policy_version: str
    search_mode: SearchMode
    max_age: timedelta
    preflight_version: str = PREFLIGHT_VERSION
    plan_fingerprint: str | None = None  # the model's plan now (ModelPlan.fingerprint())


def current_policy(
    ort_version: str, search_mode: SearchMode | str, max_age: timedelta, plan_fingerprint: str | None = None
) -> CurrentPolicy:
    """What a decision made now in ``search_mode`` would record: the one place that builds it.

    ``search_mode`` may be the setting's string: converted here, where settings meet the policy.
    """
    mode = SearchMode(search_mode)
    return CurrentPolicy(
        ort_version, policy_version_for(mode), mode, max_age, plan_fingerprint=plan_fingerprint
    )


def plan_changed(decision: DecisionRecord | None, current: CurrentPolicy) -> str | None:
    """Why the model's plan (sidecar, ``[models]`` settings) no longer is the decision's, or None.

    Decisions recorded before plans were fingerprinted (migration 0009) have none: not stale for this.
    """
    if decision is None or decision.plan_fingerprint is None or current.plan_fingerprint is None:
        return None
    if decision.plan_fingerprint == current.plan_fingerprint:
        return None
    return "its per-model settings changed (sidecar or [models] section)"


def _policy_parts(version: str) -> tuple[str, int | None]:
    name, _, number = version.rpartition("/")
    return (name, int(number)) if number.isdigit() else (version, None)


def policy_is_older(recorded: str, current: str) -> bool:
    """``design-two-step/1`` is older than ``design-two-step/2``; another policy name counts as older."""
    if recorded == current:
        return False
    (r_name, r_num), (c_name, c_num) = _policy_parts(recorded), _policy_parts(current)
    if r_name == c_name and r_num is not None and c_num is not None:
        return r_num < c_num
    return True


def staleness(decision: DecisionRecord | None, current: CurrentPolicy, now: datetime) -> str | None:
    """Why this class should decide again, or None when its latest decision still stands."""
    if decision is None:
        return "never decided for this host class"
    if decision.ort_version != current.ort_version:
        return f"decided with onnxruntime {decision.ort_version}, now {current.ort_version}"
    # The mode first: each mode has its own policy, so across modes the versions are not
    # comparable and "another search mode" is the reason a person can act on.
    if decision.search_mode != current.search_mode:
        return f"decided in {decision.search_mode} search, now {current.search_mode}"
    replanned = plan_changed(decision, current)
    if replanned is not None:
        return replanned
    # Only outcomes the selection policy produced depend on its version: a preflight
    # ``skipped`` or an ``error`` is the same under any policy.
    if decision.outcome in POLICY_OUTCOMES and policy_is_older(
        decision.policy_version, current.policy_version
    ):
        return f"decided under policy {decision.policy_version}, now {current.policy_version}"
    # Errors and skips are preflight's word instead: a newer preflight may repair what it refused.
    if decision.outcome in PREFLIGHT_OUTCOMES and (
        decision.preflight_version is None
        or policy_is_older(decision.preflight_version, current.preflight_version)
    ):
        before = decision.preflight_version or "before pre-fixes"
        return f"{decision.outcome} under preflight {before}, now {current.preflight_version}"
    age = now - decision.created_at
    if age > current.max_age:
        return f"decided {age.days} days ago (max_age_days {current.max_age.days})"
    return None


def stale_models(
    contents: Mapping[str, str],
    decisions: Mapping[str, DecisionRecord],
    current_for: Callable[[str], CurrentPolicy],
    now: datetime,
    *,
    plan_only: bool = False,
) -> list[tuple[str, str, str]]:
    """(sha256, path, reason) for every content (sha256 → a path holding it) that is stale.

    ``plan_only``: only for a changed plan (the scans' and the watcher's check between nights).
    """
    stale = []
    for sha, path in sorted(contents.items()):
        current, decision = current_for(path), decisions.get(sha)
        reason = plan_changed(decision, current) if plan_only else staleness(decision, current, now)
        if reason is not None:
            stale.append((sha, path, reason))
    return stale


def tick_key(tick: datetime, sha256: str, host_class: str) -> str:
    return f"requantize:{tick.astimezone(UTC):%Y%m%dT%H%M%SZ}:{sha256}:{host_class}"


def enqueue_stale(
    catalog: Catalog,
    host_class: str,
    *,
    current_for: Callable[[str], CurrentPolicy],
    tick: datetime,
    now: datetime,
    max_attempts: int = 3,
    only: set[str] | None = None,
    plan_only: bool = False,
) -> list[Job]:
    """Queue requantization of this class's stale versions; ``only`` limits it to some contents.

    ``plan_only`` queues only those whose plan changed, once per new plan (its key names the
    fingerprint), whatever the tick: a scan repeats the check every few minutes.
    """
    contents, decisions = _contents_and_decisions(catalog, host_class, only)
    # One plan per path (a sidecar read): stale_models and the replan key both need it.
    current = {path: current_for(path) for path in contents.values()}
    queued = []
    for sha, path, reason in stale_models(contents, decisions, current.__getitem__, now, plan_only=plan_only):
        key = tick_key(tick, sha, host_class)
        if plan_only:
            key = f"replan:{current[path].plan_fingerprint}:{sha}:{host_class}"
        job = catalog.enqueue(
            sha,
            host_class,
            kind=JobKind.REQUANTIZE,
            source_path=path,
            idempotency_key=key,
            max_attempts=max_attempts,
        )
        if job is not None:
            queued.append(job)
            logger.info(
                "requantize %s: %s",
                path,
                reason,
                extra={"action": "requantize_queued", "job_id": job.id, "path": path, "reason": reason},
            )
    return queued


def _contents_and_decisions(
    catalog: Catalog, host_class: str, only: set[str] | None
) -> tuple[dict[str, str], dict[str, DecisionRecord]]:
    """(sha256 → the first live path holding it, sha256 → its latest decision on ``host_class``).

    With ``only`` (the watcher's check of one content, `dqd requantize MODEL`), just those
    contents are read, not every path and decision of the catalog.
    """
    if only is None:
        contents: dict[str, str] = {}
        for path, record in sorted(catalog.known_paths().items()):
            if record.sha256 and record.sha256 not in contents:
                contents[record.sha256] = path
        return contents, catalog.latest_decisions_for_class(host_class)
    contents = {sha: paths[0] for sha in sorted(only) if (paths := catalog.paths_for_content(sha))}
    decisions = {sha: d for sha in contents if (d := catalog.latest_decision(sha, host_class)) is not None}
    return contents, decisions


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """Five fields (minute hour day month weekday), or six with seconds first."""
    fields = expression.split()
    try:
        if len(fields) == 5:
            return CronTrigger.from_crontab(expression, timezone=timezone)
        if len(fields) == 6:
            second, minute, hour, day, month, weekday = fields
            return CronTrigger(
                second=second,
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=weekday,
                timezone=timezone,
            )
    except (ValueError, LookupError) as exc:
        raise ConfigError(
            "schedule.cron", expression, f"a valid cron expression in {timezone} ({exc})"
        ) from None
    raise ConfigError("schedule.cron", expression, "5 cron fields, or 6 with seconds first")


def latest_fire_time(
    trigger: CronTrigger, now: datetime, lookback: timedelta = timedelta(hours=2)
) -> datetime:
    """The scheduled time of the tick running now (late by scheduling delay), identical on every daemon."""
    fire = trigger.get_next_fire_time(None, now - lookback)
    latest = None
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return latest or now.replace(microsecond=0)


class NightlyScheduler:
    """APScheduler in the daemon: one cron job that queues this host class's stale versions."""

    def __init__(
        self,
        catalog: Catalog,
        host_class: str,
        *,
        cron: str,
        timezone: str,
        current_for: Callable[[str], CurrentPolicy],
        max_attempts: int,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.host_class = host_class
        self.trigger = cron_trigger(cron, timezone)
        self.current_for = current_for
        self.max_attempts = max_attempts
        self.on_queued = on_queued
        self.scheduler = BackgroundScheduler(timezone=timezone)
        self.ticks = 0

    def start(self) -> None:
        self.scheduler.add_job(
            self.tick,
            self.trigger,
            id="nightly-requantize",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )
        self.scheduler.start()
        job = self.scheduler.get_job("nightly-requantize")
        logger.info(
            "nightly requantization scheduled; next run %s",
            job.next_run_time if job else "?",
            extra={"action": "schedule_started"},
        )

    def tick(self, now: datetime | None = None) -> list[Job]:
        now = now or datetime.now(UTC)
        tick = latest_fire_time(self.trigger, now)
        self.ticks += 1
        try:
            queued = enqueue_stale(
                self.catalog,
                self.host_class,
                current_for=self.current_for,
                tick=tick,
                now=now,
                max_attempts=self.max_attempts,
            )
        except CatalogError as exc:
            logger.error("nightly requantization failed: %s", exc, extra={"action": "schedule_failed"})
            return []
        logger.info(
            "nightly tick %s queued %d stale models",
            tick.isoformat(),
            len(queued),
            extra={"action": "schedule_tick", "queued": len(queued)},
        )
        if queued and self.on_queued:
            self.on_queued()
        return queued

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

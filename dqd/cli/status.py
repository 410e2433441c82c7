"""``dqd status``: queue depth, running jobs with their stage, hosts, last decisions.

After a daemon is killed its host row and its ``running`` job stay in the
catalog: the job until its lease expires and a worker claims it again. So
each heartbeat and lease is judged here against the clock, and a stale one
says what will happen to the job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from dqd.catalog.views import RemovalBlock
from dqd.cli.app import app, state
from dqd.domain import DecisionRecord, HostInfo, Job, JobState
from dqd.settings import WorkerSettings

HEARTBEATS_BEFORE_STALE = 3  # missed heartbeats after which a host is taken to be gone


def _age(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else round((now - since).total_seconds(), 1)


def stale_after(worker: WorkerSettings) -> float:
    """Seconds without a heartbeat after which a host is reported stale."""
    return min(worker.host_ttl_seconds, HEARTBEATS_BEFORE_STALE * worker.heartbeat_seconds)


def running_view(job: Job, beats: dict[str, float | None], stale: float, now: datetime) -> dict[str, Any]:
    """One running job: its age, its stage, and whether its worker still looks alive."""
    hostname = (job.lease_owner or "").split(":", 1)[0]
    beat = beats.get(hostname)
    expires_in = _age(now, job.lease_expires_at) if job.lease_expires_at else None
    note = None
    if expires_in is not None and expires_in <= 0:
        note = (
            f"its lease expired {-expires_in:.0f} s ago: the worker is gone; the next {job.host_class} "
            f"worker to look for work takes it again (attempt {job.attempts + 1} of {job.max_attempts})"
        )
    elif beat is None or beat > stale:
        since = "no heartbeat from its host" if beat is None else f"its host's heartbeat is {beat:.0f} s old"
        when = f" in {expires_in:.0f} s" if expires_in is not None else ""
        note = f"{since}: if its daemon stopped, the job returns to the queue when its lease expires{when}"
    return {
        "id": job.id,
        "path": job.source_path,
        "host_class": job.host_class,
        "owner": job.lease_owner,
        "attempt": job.attempts,
        "age_seconds": _age(job.started_at, now),
        "stage": job.stage,
        "stage_seconds": _age(job.stage_started_at, now) if job.stage else None,
        "lease_expires_in_seconds": expires_in,
        "stale": note is not None,
        "note": note,
    }


def status_data(
    depth: dict[str, int],
    running: Sequence[Job],
    hosts: Sequence[tuple[HostInfo, datetime, datetime]],
    decisions: Sequence[tuple[DecisionRecord, str]],
    worker: WorkerSettings,
    now: datetime,
    blocks: Sequence[RemovalBlock] = (),
) -> dict[str, Any]:
    """What ``dqd status --json`` prints; hosts are those seen within ``worker.host_ttl_seconds``."""
    stale = stale_after(worker)
    shown = [
        (h, beat) for h, _first, beat in hosts if now - beat <= timedelta(seconds=worker.host_ttl_seconds)
    ]
    beats: dict[str, float | None] = {}
    for host, beat in shown:
        age = _age(beat, now)
        known = beats.get(host.hostname)
        beats[host.hostname] = age if known is None or (age is not None and age < known) else known
    return {
        "queue": depth,
        "removal_blocks": [{"root": b.root, "reason": b.reason, "missing": b.missing} for b in blocks],
        "running": [running_view(job, beats, stale, now) for job in running],
        "hosts": [
            {
                "hostname": h.hostname,
                "host_class": h.host_class,
                "last_heartbeat_seconds": _age(beat, now),
                "stale": (now - beat).total_seconds() > stale,
            }
            for h, beat in shown
        ],
        "stale_after_seconds": stale,
        "last_decisions": [
            {
                "path": path,
                "sha256": d.sha256,
                "host_class": d.host_class,
                "outcome": d.outcome.value,
                "speedup": d.speedup,
                "threads": d.threads,
                "at": d.created_at.isoformat(),
            }
            for d, path in decisions
        ],
    }


def status_lines(data: dict[str, Any]) -> list[str]:
    lines = ["queue: " + ", ".join(f"{k} {v}" for k, v in data["queue"].items())]
    lines += [f"removals blocked: {block['reason']}" for block in data["removal_blocks"]]
    for job in data["running"]:
        stage = f", stage {job['stage']} for {job['stage_seconds']} s" if job["stage"] else ""
        lines.append(
            f"running: job {job['id']} {job['path']} ({job['host_class']}) for {job['age_seconds']} s{stage}"
        )
        if job["note"]:
            lines.append(f"  STALE: {job['note']}")
    for host in data["hosts"]:
        age = host["last_heartbeat_seconds"]
        mark = f", STALE: no heartbeat for over {data['stale_after_seconds']:.0f} s" if host["stale"] else ""
        lines.append(f"host: {host['hostname']} {host['host_class']} (heartbeat {age} s ago{mark})")
    for item in data["last_decisions"]:
        speed = f" {item['speedup']:.2f}x" if item["speedup"] else ""
        lines.append(
            f"decision: {item['path']} {item['host_class']} {item['outcome']}{speed} at {item['at']}"
        )
    return lines


@app.command("status")
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
) -> None:
    """Queue depth by state, running jobs with their stage, hosts (stale ones marked), last decisions."""
    from dqd.cli.daemon import _catalog

    settings = state(ctx).settings()
    now = datetime.now(UTC)
    with _catalog(settings, create=False) as catalog:  # reading never creates a catalog
        depth = catalog.queue_depth()
        running = catalog.list_jobs(states=[JobState.RUNNING])
        hosts = catalog.list_hosts()
        recent = catalog.recent_decisions(10)
        blocks = catalog.removal_blocks()
        paths = {d.sha256: catalog.paths_for_content(d.sha256) for d in recent}
    decisions = [(d, (paths.get(d.sha256) or [str(d.path)])[0]) for d in recent]
    data = status_data(depth, running, hosts, decisions, settings.worker, now, blocks)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo("\n".join(status_lines(data)))

"""Hosts, model paths and model versions (content by sha256)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from dqd.catalog.db import Transactions, database_now, utcnow
from dqd.catalog.rows import host_from_row, path_from_row
from dqd.catalog.tables import DecisionRow, HostRow, ModelPathRow, ModelVersionRow, PathVersionRow
from dqd.domain import HostInfo, ModelPath


def in_watched_tree() -> Any:
    """Paths relative to the watched folder; `dqd process` records files outside it by absolute path,
    which the daemon must never queue, remove or publish (publishing one would overwrite the source)."""
    return ~ModelPathRow.path.startswith("/")


@dataclass(frozen=True)
class Observation:
    """What registering a file found."""

    path: ModelPath
    new_content: bool  # this sha256 was never seen at any path
    changed: (
        bool  # the path holds content it did not hold before (new path, new version, or back from removal)
    )


class PathStore:
    tx: Transactions

    # --- hosts ---

    def upsert_host(self, host: HostInfo, *, now: datetime | None = None) -> None:
        """Register this host or refresh its facts and heartbeat."""
        facts: dict[str, Any] = {
            "hostname": host.hostname,
            "host_class": host.host_class,
            "arch": host.arch,
            "cpu_model": host.cpu_model,
            "isa_flags": list(host.isa_flags),
            "usable_cores": host.usable_cores,
            "os": host.os,
            "ort_version": host.ort_version,
            "onnx_version": host.onnx_version,
            "dqd_version": host.dqd_version,
            "declared": host.declared,
        }
        with self.tx.write() as session:
            now = now or database_now(session)
            facts["last_heartbeat_at"] = now
            row = session.get(HostRow, host.host_id)
            if row is None:
                session.add(HostRow(id=host.host_id, first_seen_at=now, **facts))
            else:
                for key, value in facts.items():
                    setattr(row, key, value)

    def heartbeat(self, host_id: str, *, now: datetime | None = None) -> None:
        with self.tx.write() as session:
            row = session.get(HostRow, host_id)
            if row is not None:
                row.last_heartbeat_at = now or database_now(session)

    def live_host_classes(self, ttl_seconds: float, *, now: datetime | None = None) -> list[str]:
        with self.tx.read() as session:
            return live_classes(session, ttl_seconds, now=now)

    def list_hosts(self) -> list[tuple[HostInfo, datetime, datetime]]:
        """Every host with its first-seen and last-heartbeat times."""
        from dqd.catalog.db import as_utc

        with self.tx.read() as session:
            rows = session.scalars(select(HostRow).order_by(HostRow.host_class, HostRow.hostname))
            return [
                (host_from_row(r), as_utc(r.first_seen_at), as_utc(r.last_heartbeat_at))  # type: ignore[misc]
                for r in rows
            ]

    # --- paths and versions ---

    def observe_file(
        self,
        rel_path: str,
        sha256: str,
        size_bytes: int,
        mtime_ns: int | None = None,
        *,
        now: datetime | None = None,
    ) -> Observation:
        """Record that ``rel_path`` holds content ``sha256`` now; keeps the path's history."""
        now = now or utcnow()
        with self.tx.write() as session:
            new_content = session.get(ModelVersionRow, sha256) is None
            if new_content:
                session.add(ModelVersionRow(sha256=sha256, size_bytes=size_bytes, first_seen_at=now))
                session.flush()
            row = session.scalar(select(ModelPathRow).where(ModelPathRow.path == rel_path))
            if row is None:
                row = ModelPathRow(path=rel_path, first_seen_at=now, last_seen_at=now)
                session.add(row)
            changed = row.sha256 != sha256 or row.removed_at is not None
            previous = row.sha256 if row.sha256 != sha256 else None
            row.sha256 = sha256
            row.size_bytes = size_bytes
            row.mtime_ns = mtime_ns
            row.last_seen_at = now
            row.removed_at = None
            row.refused_reason = None
            session.flush()
            seen = session.scalar(
                select(PathVersionRow.id).where(
                    PathVersionRow.path_id == row.id, PathVersionRow.sha256 == sha256
                )
            )
            if seen is None:
                session.add(PathVersionRow(path_id=row.id, sha256=sha256, seen_at=now))
            else:  # back to content it held before: current again, whatever happened meanwhile
                session.get_one(PathVersionRow, seen).superseded_at = None
            if previous is not None:
                _supersede_if_undecided(session, row.id, previous, now)
            session.flush()
            return Observation(path=path_from_row(row), new_content=new_content, changed=changed)

    def is_superseded(self, sha256: str) -> bool:
        """This content was replaced at its path before it was decided, and no live path holds it."""
        with self.tx.read() as session:
            flagged = session.scalar(
                select(
                    exists().where(PathVersionRow.sha256 == sha256, PathVersionRow.superseded_at.is_not(None))
                )
            )
            return bool(flagged) and not _held_elsewhere(session, sha256, path_id=None)

    def mark_removed(self, rel_path: str, *, now: datetime | None = None) -> bool:
        now = now or utcnow()
        with self.tx.write() as session:
            row = session.scalar(select(ModelPathRow).where(ModelPathRow.path == rel_path))
            if row is None or row.removed_at is not None:
                return False
            row.removed_at = now
            return True

    def mark_refused(self, rel_path: str, reason: str, *, now: datetime | None = None) -> bool:
        """Record a path dqd will not process (e.g. a symlink leaving the watched root); whether
        this is news (the path was not refused for this very reason already, or was removed)."""
        now = now or utcnow()
        with self.tx.write() as session:
            row = session.scalar(select(ModelPathRow).where(ModelPathRow.path == rel_path))
            if row is None:
                row = ModelPathRow(path=rel_path, first_seen_at=now, last_seen_at=now)
                session.add(row)
            news = row.refused_reason != reason or row.removed_at is not None
            row.refused_reason = reason
            row.removed_at = None
            row.last_seen_at = now
            return news

    def known_paths(self, *, include_removed: bool = False) -> dict[str, ModelPath]:
        """The watched tree's paths (relative ones; `dqd process`'s absolute paths are not the daemon's)."""
        stmt = select(ModelPathRow).where(in_watched_tree())
        if not include_removed:
            stmt = stmt.where(ModelPathRow.removed_at.is_(None))
        with self.tx.read() as session:
            return {row.path: path_from_row(row) for row in session.scalars(stmt)}

    def paths_for_content(self, sha256: str) -> list[str]:
        with self.tx.read() as session:
            stmt = (
                select(ModelPathRow.path)
                .where(ModelPathRow.sha256 == sha256, ModelPathRow.removed_at.is_(None), in_watched_tree())
                .order_by(ModelPathRow.path)
            )
            return list(session.scalars(stmt))


def _held_elsewhere(session: Session, sha256: str, *, path_id: int | None) -> bool:
    stmt = select(ModelPathRow.id).where(ModelPathRow.sha256 == sha256, ModelPathRow.removed_at.is_(None))
    if path_id is not None:
        stmt = stmt.where(ModelPathRow.id != path_id)
    return session.scalar(stmt.limit(1)) is not None


def _supersede_if_undecided(session: Session, path_id: int, sha256: str, now: datetime) -> None:
    """The path moved on from ``sha256`` before any decision on it: a partial write seen as
    complete, or a copy replaced at once. Flag that version so history and the queue can drop it;
    content decided, or still held by another path, stays a real version."""
    decided = session.scalar(select(DecisionRow.id).where(DecisionRow.sha256 == sha256).limit(1))
    if decided is not None or _held_elsewhere(session, sha256, path_id=path_id):
        return
    version = session.scalar(
        select(PathVersionRow).where(PathVersionRow.path_id == path_id, PathVersionRow.sha256 == sha256)
    )
    if version is not None and version.superseded_at is None:
        version.superseded_at = now


def live_classes(session: Session, ttl_seconds: float, *, now: datetime | None = None) -> list[str]:
    """Host classes with a heartbeat within ``ttl_seconds``, in the caller's transaction."""
    cutoff = (now or database_now(session)) - timedelta(seconds=ttl_seconds)
    stmt = select(HostRow.host_class).where(HostRow.last_heartbeat_at >= cutoff).distinct()
    return sorted(session.scalars(stmt))

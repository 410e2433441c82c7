"""Read-side queries about one model (resolve, detail, best) and the decision history."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dqd.catalog.db import Transactions, as_utc
from dqd.catalog.rows import decision_from_row, path_from_row, speedup_interval, variant_from_row
from dqd.catalog.tables import (
    AccuracyRow,
    BenchmarkRow,
    DecisionRow,
    ModelPathRow,
    ModelVersionRow,
    PathVersionRow,
    VariantRow,
)
from dqd.catalog.views import (
    AccuracyView,
    BenchmarkView,
    BestChoice,
    DecisionPage,
    DecisionView,
    ModelDetail,
    PathVersion,
    decode_cursor,
    encode_cursor,
)
from dqd.domain import ModelPath, Outcome
from dqd.errors import DqdError, NotFound, UsageError

_HEX = re.compile(r"[0-9a-f]{6,64}")
_AMBIGUOUS_SHOWN = 10
_MODEL_SUFFIX = ".onnx"
# Preferred headline metrics, best first; all are "higher is better".
_HEADLINE = ("cosine_mean", "cosine_worst", "top1_agreement", "agreement")


class NoDecision(NotFound):
    """No decision yet for this model and host class."""


class ModelErrored(DqdError):
    """The latest decision for this model ended in ``error``: nothing to load."""

    exit_code = 1


def headline_accuracy(metrics: Mapping[str, Any] | None) -> tuple[str | None, float | None]:
    """The worst output's value of the most telling metric, e.g. ("cosine_mean", 0.991)."""
    if not metrics:
        return None, None
    per_output = [m for m in metrics.values() if isinstance(m, Mapping)]
    names = {name for m in per_output for name in m}
    for name in (*_HEADLINE, *sorted(n for n in names if "cos" in n)):
        values = [m[name] for m in per_output if isinstance(m.get(name), int | float)]
        if values:
            return name, float(min(values))
    return None, None


class DetailQueries:
    tx: Transactions

    def resolve_model(self, ref: str) -> tuple[ModelPath | None, str]:
        """A model by relative path, file name or sha256 prefix → (its path, its content).

        A file name or prefix matching several models is a usage error listing
        them; removed paths only match when nothing live does.
        """
        ref = ref.strip()
        if ref.startswith("./"):
            ref = ref[2:]
        if not ref:
            raise UsageError("empty model reference: give a path, a file name or a sha256 prefix")
        p = ModelPathRow
        # A stem names the model file it is the stem of: `minilm-l6` is `minilm-l6.onnx`.
        names = [ref] if ref.endswith(_MODEL_SUFFIX) else [ref, ref + _MODEL_SUFFIX]
        with self.tx.read() as session:
            for name in names:
                exact = session.scalar(select(p).where(p.path == name))
                if exact is not None:
                    return self._with_content(exact, ref)
                # The file name of a relative path or of an absolute one (`dqd process` outside the tree).
                by_name = list(
                    session.scalars(select(p).where(p.path.endswith("/" + name, autoescape=True)).limit(50))
                )
                if by_name:
                    return self._with_content(_one(by_name, ref, key=lambda r: r.path), ref)
            if _HEX.fullmatch(ref.lower()):
                prefix = ref.lower()
                by_sha = list(
                    session.scalars(select(p).where(p.sha256.startswith(prefix)).order_by(p.path).limit(50))
                )
                if by_sha:
                    return self._with_content(_one(by_sha, ref, key=lambda r: r.sha256 or ""), ref)
                shas = list(
                    session.scalars(
                        select(ModelVersionRow.sha256)
                        .where(ModelVersionRow.sha256.startswith(prefix))
                        .limit(_AMBIGUOUS_SHOWN + 1)
                    )
                )
                if len(shas) == 1:
                    return None, shas[0]
                if shas:
                    raise UsageError(f"{ref!r} matches several models: {', '.join(shas)}")
        raise NotFound(
            f"no model matches {ref!r} (give a path relative to the watched folder, an absolute path, "
            "a file name, its stem or a sha256 prefix of at least 6 hex digits; `dqd models` lists them)"
        )

    @staticmethod
    def _with_content(row: ModelPathRow, ref: str) -> tuple[ModelPath, str]:
        if row.sha256 is None:
            raise NotFound(f"{row.path} has no recorded content ({row.refused_reason or 'not hashed yet'})")
        return path_from_row(row), row.sha256

    def model_path(self, path_id: int) -> str:
        """The relative path of a model by its id (the report's page names)."""
        with self.tx.read() as session:
            path = session.scalar(select(ModelPathRow.path).where(ModelPathRow.id == path_id))
        if path is None:
            raise NotFound(f"no model with id {path_id}")
        return path

    def model_detail(self, ref: str, *, include_superseded: bool = False) -> ModelDetail:
        """One model; its history leaves out superseded versions (partial writes, replaced copies)
        unless ``include_superseded``."""
        path, sha = self.resolve_model(ref)
        with self.tx.read() as session:
            version = session.get(ModelVersionRow, sha)
            others = select(ModelPathRow.path).where(
                ModelPathRow.sha256 == sha, ModelPathRow.removed_at.is_(None)
            )
            if path is not None:
                others = others.where(ModelPathRow.id != path.id)
            history: list[PathVersion] = []
            if path is not None:
                hist = (
                    select(PathVersionRow)
                    .where(PathVersionRow.path_id == path.id)
                    .order_by(PathVersionRow.id)
                )
                if not include_superseded:
                    hist = hist.where(PathVersionRow.superseded_at.is_(None))
                history = [
                    PathVersion(r.sha256, as_utc(r.seen_at), as_utc(r.superseded_at))  # type: ignore[arg-type]
                    for r in session.scalars(hist)
                ]
            variant_rows = list(
                session.scalars(
                    select(VariantRow).where(VariantRow.source_sha256 == sha).order_by(VariantRow.id)
                )
            )
            names = {row.id: row.name for row in variant_rows}
            return ModelDetail(
                path=path,
                sha256=sha,
                size_bytes=version.size_bytes if version is not None else None,
                other_paths=list(session.scalars(others.order_by(ModelPathRow.path))),
                history=history,
                summary=dict(version.summary) if version is not None and version.summary else None,
                variants=[variant_from_row(row) for row in variant_rows],
                accuracy=self._accuracy(session, names),
                benchmarks=self._benchmarks(session, sha, names),
                decisions=self._decisions(
                    session,
                    select(DecisionRow).where(DecisionRow.sha256 == sha).order_by(DecisionRow.id.desc()),
                    names,
                ),
            )

    @staticmethod
    def _accuracy(session: Session, names: Mapping[int, str]) -> list[AccuracyView]:
        if not names:
            return []
        stmt = select(AccuracyRow).where(AccuracyRow.variant_id.in_(list(names))).order_by(AccuracyRow.id)
        return [
            AccuracyView(
                id=r.id,
                decision_id=r.decision_id,
                variant_id=r.variant_id,
                variant=names[r.variant_id],
                input_source=r.input_source,
                metrics=r.metrics,
                passed=r.passed,
                decisive=r.decisive,
                reason=r.reason,
                created_at=as_utc(r.created_at),  # type: ignore[arg-type]
            )
            for r in session.scalars(stmt)
        ]

    @staticmethod
    def _benchmarks(session: Session, sha: str, names: Mapping[int, str]) -> list[BenchmarkView]:
        stmt = select(BenchmarkRow).where(BenchmarkRow.sha256 == sha).order_by(BenchmarkRow.id)
        return [
            BenchmarkView(
                id=r.id,
                decision_id=r.decision_id,
                variant_id=r.variant_id,
                variant=names.get(r.variant_id, "?") if r.variant_id is not None else "fp32",
                host_class=r.host_class,
                host_id=r.host_id,
                ort_version=r.ort_version,
                step=r.step,
                threads=r.threads,
                rounds=r.rounds,
                median_ms=r.median_ms,
                p90_ms=r.p90_ms,
                p99_ms=r.p99_ms,
                speedup=r.speedup,
                speedup_ci=speedup_interval(r.speedup_ci_low, r.speedup_ci_high),
                peak_rss_bytes=r.peak_rss_bytes,
                samples_ms=[float(s) for s in r.samples_ms or []],
                created_at=as_utc(r.created_at),  # type: ignore[arg-type]
            )
            for r in session.scalars(stmt)
        ]

    @staticmethod
    def _decisions(session: Session, stmt: Any, names: Mapping[int, str] | None = None) -> list[DecisionView]:
        rows = list(session.scalars(stmt))
        missing = {
            r.variant_id for r in rows if r.variant_id is not None and r.variant_id not in (names or {})
        }
        lookup = dict(names or {})
        if missing:
            names_stmt = select(VariantRow.id, VariantRow.name).where(VariantRow.id.in_(missing))
            lookup.update({vid: name for vid, name in session.execute(names_stmt)})
        return [
            DecisionView(
                decision=decision_from_row(r),
                variant=lookup.get(r.variant_id) if r.variant_id is not None else None,
                path=r.path,
            )
            for r in rows
        ]

    def best_choice(
        self, ref: str, host_class: str, ort_version: str, *, threads: int | None = None
    ) -> BestChoice:
        """What to load for ``ref`` on ``host_class`` under ``ort_version``, per the latest decision.

        With ``threads`` (the configured ``benchmark.threads``): the latest decision timed at
        that count (or that timed nothing: a skip or a model error holds at any count), so a
        one-shot run at another count does not replace the daemon's; failing that, the latest
        at any count, with a ``note`` saying so.
        """
        path, sha = self.resolve_model(ref)
        latest = (
            select(DecisionRow)
            .where(
                DecisionRow.sha256 == sha,
                DecisionRow.host_class == host_class,
                DecisionRow.ort_version == ort_version,
            )
            .order_by(DecisionRow.id.desc())
            .limit(1)
        )
        with self.tx.read() as session:
            row = None
            if threads is not None:
                at_count = or_(DecisionRow.threads == threads, DecisionRow.threads.is_(None))
                row = session.scalars(latest.where(at_count)).first()
            at_configured = threads is None or row is not None
            if row is None:
                row = session.scalars(latest).first()
            name = path.path if path is not None else (row.details or {}).get("path", sha) if row else sha
            if row is None:
                raise NoDecision(
                    f"no decision yet for {name} on {host_class} under onnxruntime {ort_version}"
                )
            outcome = Outcome(row.outcome)
            if outcome is Outcome.ERROR:
                raise ModelErrored(f"{name} ended in error on {host_class}: {row.error or 'no message'}")
            variant = session.get(VariantRow, row.variant_id) if row.variant_id is not None else None
            if variant is not None and not variant.output_path:
                raise NotFound(f"{name}: the selected variant {variant.name} has no output file recorded")
            return BestChoice(
                model=name,
                sha256=sha,
                host_class=host_class,
                ort_version=ort_version,
                outcome=outcome,
                variant=variant.name if variant is not None else None,
                load_path=variant.output_path if variant is not None and variant.output_path else name,
                is_original=variant is None,
                decision_id=row.id,
                decided_at=as_utc(row.created_at),  # type: ignore[arg-type]
                threads=row.threads,
                at_configured_threads=at_configured,
                note=None
                if at_configured
                else f"no decision for {name} on {host_class} timed at {threads} threads "
                f"(benchmark.threads); this one was timed at {row.threads}",
            )

    def decisions_page(
        self,
        *,
        host_class: str | None = None,
        outcome: Outcome | None = None,
        sha256: str | None = None,
        ort_version: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> DecisionPage:
        """Decision history, newest first; keyset on the id."""
        d = DecisionRow
        stmt = select(d).order_by(d.id.desc())
        if host_class:
            stmt = stmt.where(d.host_class == host_class)
        if outcome is not None:
            stmt = stmt.where(d.outcome == Outcome(outcome).value)
        if sha256:
            stmt = stmt.where(d.sha256 == sha256)
        if ort_version:
            stmt = stmt.where(d.ort_version == ort_version)
        if cursor is not None:
            (last_id,) = decode_cursor(cursor, 1)
            if isinstance(last_id, bool) or not isinstance(last_id, int):
                raise UsageError("invalid cursor: pass back a next_cursor value unchanged")
            stmt = stmt.where(d.id < last_id)
        if limit is not None:
            stmt = stmt.limit(limit + 1)
        with self.tx.read() as session:
            items = self._decisions(session, stmt)
        more = limit is not None and len(items) > limit
        items = items[:limit] if limit is not None else items
        return DecisionPage(items=items, next_cursor=encode_cursor(items[-1].decision.id) if more else None)


def _one(rows: list[ModelPathRow], ref: str, *, key: Any) -> ModelPathRow:
    """The single model among ``rows`` (live ones first); ambiguity is a usage error."""
    live = [r for r in rows if r.removed_at is None] or rows
    if len({key(r) for r in live}) == 1:
        return sorted(live, key=lambda r: r.path)[0]
    shown = sorted(r.path for r in live)[:_AMBIGUOUS_SHOWN]
    raise UsageError(f"{ref!r} matches several models: {', '.join(shown)}; give more of the path")

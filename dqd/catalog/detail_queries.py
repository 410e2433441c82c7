"""Read-side queries about one model (resolve, detail, best) and the decision history."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqd.catalog.db import Transactions
from dqd.catalog.rows import (
    accuracy_from_row,
    benchmark_from_row,
    decision_view_from_row,
    path_from_row,
    path_version_from_row,
    recorded_decision_from_row,
    variant_from_row,
)
from dqd.catalog.tables import (
    AccuracyRow,
    BenchmarkRow,
    DecisionRow,
    FreezeRow,
    ModelPathRow,
    ModelVersionRow,
    PathVersionRow,
    VariantRow,
)
from dqd.catalog.views import (
    AccuracyView,
    BenchmarkView,
    DecisionPage,
    DecisionView,
    FreezeView,
    ModelDetail,
    PathVersion,
    decode_cursor,
    encode_cursor,
)
from dqd.choice import BestChoice, RecordedDecision, choose_best
from dqd.domain import ModelPath, Outcome
from dqd.errors import NotFound, UsageError
from dqd.pathtext import from_text

_HEX = re.compile(r"[0-9a-f]{6,64}")
_AMBIGUOUS_SHOWN = 10
_MODEL_SUFFIX = ".onnx"


class DetailQueries:
    tx: Transactions

    def resolve_model(self, ref: str) -> tuple[ModelPath | None, str]:
        """A model by relative path, file name or sha256 prefix → (its path, its content).

        A file name or prefix matching several models is a usage error listing
        them; removed paths only match when nothing live does. A name that is not
        UTF-8 may be given in its displayed form (``caf\\xe9.onnx``, dqd.pathtext).
        """
        ref = from_text(ref.strip())
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
                history = [path_version_from_row(r) for r in session.scalars(hist)]
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
                freezes=[
                    FreezeView(row.host_class, row.decision_id, row.reason, row.created_at)
                    for row in session.scalars(
                        select(FreezeRow).where(FreezeRow.sha256 == sha).order_by(FreezeRow.host_class)
                    )
                ],
            )

    @staticmethod
    def _accuracy(session: Session, names: Mapping[int, str]) -> list[AccuracyView]:
        if not names:
            return []
        stmt = select(AccuracyRow).where(AccuracyRow.variant_id.in_(list(names))).order_by(AccuracyRow.id)
        return [accuracy_from_row(r, names[r.variant_id]) for r in session.scalars(stmt)]

    @staticmethod
    def _benchmarks(session: Session, sha: str, names: Mapping[int, str]) -> list[BenchmarkView]:
        stmt = select(BenchmarkRow).where(BenchmarkRow.sha256 == sha).order_by(BenchmarkRow.id)
        return [benchmark_from_row(r, names) for r in session.scalars(stmt)]

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
            decision_view_from_row(r, lookup.get(r.variant_id) if r.variant_id is not None else None)
            for r in rows
        ]

    def best_choice(
        self, ref: str, host_class: str, ort_version: str, *, threads: int | None = None
    ) -> BestChoice:
        """What to load for ``ref`` on ``host_class`` under ``ort_version``: :func:`dqd.choice.choose_best`.

        The candidates are the latest decision at each thread count timed (one
        row per count, None included), all the pick needs.
        """
        path, sha = self.resolve_model(ref)
        d = DecisionRow
        latest_per_count = (
            select(func.max(d.id))
            .where(d.sha256 == sha, d.host_class == host_class, d.ort_version == ort_version)
            .group_by(d.threads)
        )
        with self.tx.read() as session:
            rows = list(session.scalars(select(d).where(d.id.in_(latest_per_count))))
            variant_ids = {r.variant_id for r in rows if r.variant_id is not None}
            variants = {
                v.id: v for v in session.scalars(select(VariantRow).where(VariantRow.id.in_(variant_ids)))
            }
            candidates = [
                recorded_decision_from_row(
                    r, variants.get(r.variant_id) if r.variant_id is not None else None
                )
                for r in rows
            ]
            frozen = self._frozen_choice(session, sha, host_class)
        return choose_best(
            candidates,
            model_path=path.path if path is not None else None,
            sha256=sha,
            host_class=host_class,
            ort_version=ort_version,
            threads=threads,
            frozen=frozen,
        )

    @staticmethod
    def _frozen_choice(session: Session, sha: str, host_class: str) -> RecordedDecision | None:
        freeze = session.get(FreezeRow, (sha, host_class))
        row = session.get(DecisionRow, freeze.decision_id) if freeze is not None else None
        if row is None:
            return None
        variant = session.get(VariantRow, row.variant_id) if row.variant_id is not None else None
        return recorded_decision_from_row(row, variant)

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

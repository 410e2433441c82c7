"""Publishing follows from the catalog: every live path of every decided content, for this host class.

:meth:`Publisher.publish_missing` compares the latest decision of this class
for each content with what ``publish_dir`` holds for each path that content
is at, and copies what is missing or stale. It runs after a decision commits,
after a path with already decided content is registered, after every
periodic scan and at start-up, so a path added later, a ``publish_dir`` set
after models were decided, and a kill between commit and copy all end
published. Paths outside the watched folder (``dqd process`` of a file
elsewhere) are never published.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from pathlib import Path

from dqd.catalog import Catalog
from dqd.daemon.provenance import provenance_matches, provenance_record, write_provenance
from dqd.daemon.publish import Copy, apply_plan, is_current, publish_plan
from dqd.domain import DecisionRecord, Outcome, VariantRecord
from dqd.errors import ModelError
from dqd.hostinfo import installed_version
from dqd.pathtext import is_inside_root

logger = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self, catalog: Catalog, *, root: Path, publish_dir: Path, host_class: str, include: list[str]
    ) -> None:
        self.catalog = catalog
        self.root = root
        self.publish_dir = publish_dir
        self.host_class = host_class
        self.include = include
        self._lock = threading.Lock()  # the worker and the scan may both publish: one at a time

    def publish_missing(self, contents: Collection[str] | None = None) -> int:
        """Publish what is missing (only ``contents``, sha256s, if given); files copied.

        Raises CatalogError; a path that cannot be published is logged and the others go on.
        """
        with self._lock:
            decisions = self.catalog.serving_decisions_for_class(self.host_class)
            paths = self.catalog.known_paths()
            copied = 0
            for rel, known in sorted(paths.items()):
                sha = known.sha256
                if sha is None or (contents is not None and sha not in contents):
                    continue
                serving = decisions.get(sha)
                if serving is None or not is_inside_root(rel):
                    continue
                copied += self._publish_path(rel, *serving)
            return copied

    def _publish_path(self, rel: str, decision: DecisionRecord, frozen: bool) -> int:
        source = self.root / rel
        variant = self.catalog.get_variant(decision.variant_id) if decision.variant_id is not None else None
        chosen = self._chosen(decision, source, variant)
        if chosen is None or not source.is_file():
            return 0
        target = self.publish_dir / self.host_class / rel
        if is_current(Copy(chosen, target)):
            # The model is copied last, so its being current means the rest is there; checking
            # first spares reading every model (data-file lookup) on every scan.
            # Absent: published before dqd wrote them; stale: a later decision (or a freeze) of the same file.
            if not provenance_matches(target, decision.id, frozen):
                self._write_provenance(rel, target, decision, variant, frozen)
            return 0
        try:
            plan = publish_plan(
                chosen,
                root=self.root,
                rel_path=rel,
                publish_dir=self.publish_dir,
                host_class=self.host_class,
                include=self.include,
            )
            copied = apply_plan(plan)
            self._write_provenance(rel, target, decision, variant, frozen)
        except (OSError, ModelError) as exc:  # a full publish volume must not stop the daemon
            logger.error(
                "could not publish %s: %s", rel, exc, extra={"action": "publish_failed", "path": rel}
            )
            return 0
        logger.info(
            "published %s for %s",
            rel,
            self.host_class,
            extra={
                "action": "published",
                "path": rel,
                "target": str(target),
                "outcome": decision.outcome.value,
                "files": copied,
            },
        )
        return copied

    def _write_provenance(
        self, rel: str, target: Path, decision: DecisionRecord, variant: VariantRecord | None, frozen: bool
    ) -> None:
        record = provenance_record(
            model=rel,
            file_name=target.name,
            decision=decision,
            summary=self.catalog.latest_summary(decision.sha256, decision.host_class),
            variant=variant,
            onnx_version=installed_version("onnx"),
            frozen=frozen,
        )
        write_provenance(target, record)

    def _chosen(self, decision: DecisionRecord, source: Path, variant: VariantRecord | None) -> Path | None:
        """The file to serve: the selected variant's, else the original; None for errors."""
        if decision.outcome is Outcome.ERROR:
            return None
        if decision.variant_id is None:
            return source
        if variant is None or not variant.output_path or not Path(variant.output_path).is_file():
            logger.warning(
                "the selected variant of %s has no file: nothing published",
                source,
                extra={"action": "publish_failed", "path": str(source)},
            )
            return None
        return Path(variant.output_path)

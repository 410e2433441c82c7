"""``<published file>.dqd.json``: what a serving team loads, auditable without catalog access.

Like Optimum's ``ort_config.json`` beside a quantized model: the variant's spec,
the versions that made and timed it, the host class, the source's identity, the
accuracy and speed the decision rests on, and the decision's id. Built by a pure
function; written atomically, readable as the umask allows (dqd.fileperms).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dqd import __version__
from dqd.catalog.views import LatestDecision
from dqd.domain import DecisionRecord, VariantRecord
from dqd.fileperms import write_text_shared
from dqd.scratch import publish_scratch_prefix

SUFFIX = ".dqd.json"
FORMAT_VERSION = 1


def provenance_path(published_model: Path) -> Path:
    return published_model.with_name(published_model.name + SUFFIX)


def provenance_record(
    *,
    model: str,
    file_name: str,
    decision: DecisionRecord,
    summary: LatestDecision | None,
    variant: VariantRecord | None,
    onnx_version: str,
    frozen: bool = False,
) -> dict[str, Any]:
    """The JSON object published beside ``file_name`` (the model's published copy)."""
    accuracy = summary.accuracy if summary is not None else None
    return {
        "format": FORMAT_VERSION,
        "model": model,
        "file": file_name,
        "source_sha256": decision.sha256,
        "host_class": decision.host_class,
        "decision_id": decision.id,
        "decided_at": decision.created_at.isoformat(),
        "outcome": decision.outcome.value,
        "is_original": variant is None,
        "variant": variant.spec.name if variant is not None else None,
        "spec": variant.spec.to_dict() if variant is not None else None,
        "variant_sha256": variant.output_sha256 if variant is not None else None,
        "onnxruntime_version": decision.ort_version,
        "onnx_version": onnx_version,
        "dqd_version": __version__,
        "search_mode": decision.search_mode.value,
        "policy_version": decision.policy_version,
        "speedup": decision.speedup,
        "speedup_ci": list(decision.speedup_ci) if decision.speedup_ci else None,
        "threads": decision.threads,
        "accuracy": (
            {
                "metric": accuracy.metric,
                "value": accuracy.value,
                "passed": accuracy.passed,
                "input_source": accuracy.input_source.value,
            }
            if accuracy is not None
            else None
        ),
        "frozen": frozen,
    }


def provenance_matches(published_model: Path, decision_id: int, frozen: bool) -> bool:
    """Whether the record beside ``published_model`` is this decision's, frozen or not as now."""
    try:
        record = json.loads(provenance_path(published_model).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("decision_id") == decision_id
        and record.get("frozen") == frozen
    )


def write_provenance(published_model: Path, record: dict[str, Any]) -> Path:
    """Write the record beside the published model, atomically; its path."""
    target = provenance_path(published_model)
    # The publish folder's scratch name: a kill mid-write leaves what the daemon's start-up sweep removes.
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    write_text_shared(target, text, prefix=publish_scratch_prefix(target.name))
    return target

"""The public JSON shapes of a decision: one function per shape, the only place that writes them.

- :func:`catalog_details_json`: the ``details`` column of a catalog decision,
  from an :class:`~dqd.records.DecisionDetails`; the HTTP API and ``dqd show
  --json`` serve it back as stored (``DecisionRecord.details``, older rows
  included), so it is their ``details`` too.
- :func:`graph_summary_json`: what preflight read, kept per model version
  (the API's and ``dqd show``'s ``summary``) and under ``details["preflight"]``.
- :func:`process_result_json`: one ``dqd process --json`` line (README, "--json").

Keys appear in the order written here; an unset optional record is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from dqd.domain import EngineResult
from dqd.records import (
    DecisionDetails,
    DesignRecord,
    GraphSummary,
    LadderRecord,
    RungRecord,
    SearchRecord,
    SkippedRungRecord,
    StatefulRecord,
    StepRecord,
)


def catalog_details_json(details: DecisionDetails) -> dict[str, Any]:
    """The catalog's ``details``: only the keys of the stages that ran (see DecisionDetails)."""
    out: dict[str, Any] = {}
    if details.checked:
        out["preflight"] = graph_summary_json(details.preflight) if details.preflight is not None else None
    if details.inputs is not None:
        out["inputs"] = [{"source": i.source.value, "description": i.description} for i in details.inputs]
    if details.prepare is not None:
        prepare = details.prepare
        out["prepare"] = {
            "path": prepare.path,
            "folded_constants": prepare.folded_constants,
            "notes": list(prepare.notes),
        }
    if details.nodes_to_exclude is not None:
        out["nodes_to_exclude"] = list(details.nodes_to_exclude)
    if details.decision is not None:
        out["decision"] = search_record_json(details.decision)
    if details.failure is not None:
        out["failure"] = details.failure
    if details.excluded:
        out["excluded"] = True
    if details.pinned is not None:
        out["pinned"] = details.pinned
    return plain_json(out)


def graph_summary_json(summary: GraphSummary) -> dict[str, Any]:
    """Every field of the summary, tensors as ``{"name", "dtype", "shape"}``."""
    return plain_json(asdict(summary))


def search_record_json(record: SearchRecord) -> dict[str, Any]:
    """``details["decision"]``: the numbers behind the two-step's, a pin's or the ladder's choice."""
    if isinstance(record, DesignRecord):
        return _design_json(record)
    return _ladder_json(record)


def _design_json(record: DesignRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"margin": record.margin}
    if record.pinned is not None:
        out["pinned"] = record.pinned.to_dict()
    out["steps"] = [_step_json(step) for step in record.steps]
    return out


def _step_json(step: StepRecord) -> dict[str, Any]:
    return {
        "variant": step.variant,
        "quantize_error": step.quantize_error,
        "gate_passed": step.gate_passed,
        "gate_source": step.gate_source.value if step.gate_source else None,
        "speedup": step.speedup,
        "speedup_ci": list(step.speedup_ci) if step.speedup_ci else None,
        "speed": step.speed,
        "benchmark_error": step.benchmark_error,
    }


def _ladder_json(record: LadderRecord) -> dict[str, Any]:
    rules, traits = record.rules, record.traits
    out: dict[str, Any] = {
        "policy_version": record.policy_version,
        "rules": {
            "name": rules.name,
            "version": rules.version,
            "host_classes": list(rules.host_classes),
            "u8s8_conv_needs_u8u8_win": rules.u8s8_conv_needs_u8u8_win,
            "evidence": rules.evidence,
            "pruning": dict(rules.pruning),
            "blockwise_max_rows": rules.blockwise_max_rows,
        },
        "traits": {
            "quantizable": dict(traits.quantizable),
            "in_subgraphs": dict(traits.in_subgraphs),
            "conv_heavy": traits.conv_heavy,
            "matmul_rows": traits.matmul_rows,
        },
        "order": list(record.order),
        "rungs": [_rung_json(rung) for rung in record.rungs],
        "stop_reason": record.stop_reason,
        "margin": record.margin,
        "noise": record.noise,
        "playoff": list(record.playoff) if record.playoff is not None else None,
    }
    if record.run is not None:
        out["host_class"] = record.run.host_class
        out["seconds"] = record.run.seconds
        out["stateful"] = _stateful_json(record.run.stateful) if record.run.stateful is not None else None
    return out


def _rung_json(rung: RungRecord | SkippedRungRecord) -> dict[str, Any]:
    if isinstance(rung, SkippedRungRecord):
        return {"variant": rung.variant, "status": rung.status, "rule": rung.rule, "reason": rung.reason}
    return {
        "rung": rung.rung,
        "variant": rung.variant,
        "spec": rung.spec.to_dict(),
        "reaches": list(rung.reaches),
        "status": rung.status,
        "identical_to": rung.identical_to,
        "quantize_error": rung.quantize_error,
        "gate_passed": rung.gate_passed,
        "gate_source": rung.gate_source.value if rung.gate_source else None,
        "gate_reason": rung.gate_reason,
        "speedup": rung.speedup,
        "speedup_ci": list(rung.speedup_ci) if rung.speedup_ci else None,
        "benchmark_error": rung.benchmark_error,
        "seconds": rung.seconds,
        "accuracy_metric": rung.accuracy_metric,
        "accuracy": rung.accuracy,
        "size_bytes": rung.size_bytes,
        "screened_out": rung.screened_out,
    }


def _stateful_json(stateful: StatefulRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"pairs": [list(pair) for pair in stateful.pairs]}
    if stateful.sequence_length is not None:
        out["sequence_length"] = stateful.sequence_length
    if stateful.error is not None:
        out["error"] = stateful.error
    return out


def process_result_json(result: EngineResult) -> dict[str, Any]:
    """One ``dqd process --json`` object: exactly these keys (README, "--json").

    ``variant``: the selected spec with its name, file and size (None: nothing
    selected); ``accuracy``: the selected variant's deciding evaluation, with
    the other input sources' metrics (None: no selected variant was checked).
    """
    variant = None
    if result.selected is not None:
        built = next((v for v in result.variants if v.spec == result.selected), None)
        variant = {
            **result.selected.to_dict(),
            "name": result.selected.name,
            "output_path": built.output_path if built else None,
            "size_bytes": built.size_bytes if built else None,
        }
    accuracy = None
    if result.selected is not None:
        deciding = next((a for a in result.accuracy if a.spec == result.selected and a.decisive), None)
        if deciding is not None:
            accuracy = {
                "input_source": deciding.input_source.value,
                "passed": deciding.passed,
                "metrics": {name: dict(values) for name, values in deciding.metrics.items()},
                "other_sources": {
                    a.input_source.value: {name: dict(values) for name, values in a.metrics.items()}
                    for a in result.accuracy
                    if a.spec == result.selected and not a.decisive
                },
            }
    return {
        "path": result.path,
        "sha256": result.sha256,
        "outcome": result.outcome.value,
        "source_precision": result.source_precision,
        "variant": variant,
        "speedup": result.speedup,
        "speedup_ci": list(result.speedup_ci) if result.speedup_ci else None,
        "accuracy": accuracy,
        "reasons": list(result.reasons),
        "error": result.error,
        "seconds": round(result.seconds, 3),
    }


def plain_json(value: Any) -> Any:
    """Plain JSON types only (numpy scalars and tuples come out of the pipeline; NaN becomes null)."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value

"""Accuracy of a variant against the shipped FP32, without calibration data.

Per output: max abs diff, relative L2, cosine similarity per sample along the
batch axis (mean and worst), and top-1 agreement for logits-like outputs.  The
gate compares them with configurable thresholds and says why it passed or failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dqd.settings import AccuracySettings

Metrics = dict[str, float]
_LOGITS_NAME = re.compile(r"logit|prob|score|class|label|softmax", re.IGNORECASE)
_TINY = 1e-12


@dataclass(frozen=True)
class GateThresholds:
    min_cosine_mean: float
    min_cosine_worst: float
    max_relative_l2: float
    min_top1_agreement: float

    @classmethod
    def from_settings(cls, settings: AccuracySettings) -> GateThresholds:
        return cls(
            settings.min_cosine_mean,
            settings.min_cosine_worst,
            settings.max_relative_l2,
            settings.min_top1_agreement,
        )


def is_logits_like(name: str, reference: np.ndarray) -> bool:
    """Class scores per sample: ``[batch, classes]``, or a name that says so with classes on the last axis."""
    if not np.issubdtype(reference.dtype, np.floating) or reference.ndim < 2 or reference.shape[-1] < 2:
        return False
    return reference.ndim == 2 or bool(_LOGITS_NAME.search(name))


def compare_outputs(
    names: Sequence[str], reference_runs: Sequence[Sequence[Any]], candidate_runs: Sequence[Sequence[Any]]
) -> dict[str, Metrics]:
    """Metrics per output over all runs (one run = the outputs of one feed)."""
    metrics: dict[str, Metrics] = {}
    for index, name in enumerate(names):
        refs = [np.asarray(run[index]) for run in reference_runs if _is_array(run[index])]
        cands = [np.asarray(run[index]) for run in candidate_runs if _is_array(run[index])]
        if refs and len(refs) == len(cands):
            metrics[name] = output_metrics(name, refs, cands)
    return metrics


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype != object


def output_metrics(name: str, references: Sequence[np.ndarray], candidates: Sequence[np.ndarray]) -> Metrics:
    """One output's metrics; each list holds that output from every feed."""
    for ref, cand in zip(references, candidates, strict=True):
        if ref.shape != cand.shape:
            return {"shape_mismatch": 1.0}
    if not np.issubdtype(references[0].dtype, np.floating):
        equal = np.concatenate([(r == c).reshape(-1) for r, c in zip(references, candidates, strict=True)])
        return {"agreement": float(equal.mean()) if equal.size else 1.0}
    ref64 = [r.astype(np.float64) for r in references]
    cand64 = [c.astype(np.float64) for c in candidates]
    finite = all(np.isfinite(c).all() or not np.isfinite(r).all() for r, c in zip(ref64, cand64, strict=True))
    if not finite:
        return {"non_finite": 1.0}
    diff_sq = sum(float(np.square(r - c).sum()) for r, c in zip(ref64, cand64, strict=True))
    ref_sq = sum(float(np.square(r).sum()) for r in ref64)
    cosines = np.concatenate([per_sample_cosine(r, c) for r, c in zip(ref64, cand64, strict=True)])
    result: Metrics = {
        "max_abs_diff": max(
            float(np.max(np.abs(r - c))) if r.size else 0.0 for r, c in zip(ref64, cand64, strict=True)
        ),
        "relative_l2": float(np.sqrt(diff_sq / ref_sq))
        if ref_sq > _TINY
        else (0.0 if diff_sq <= _TINY else 1.0),
        "cosine_mean": float(cosines.mean()) if cosines.size else 1.0,
        "cosine_worst": float(cosines.min()) if cosines.size else 1.0,
        "samples": float(cosines.size),
    }
    if is_logits_like(name, references[0]):
        result["top1_agreement"] = top1_agreement(ref64, cand64)
        result["top1_agreement_clear"], rows = top1_agreement_clear(ref64, cand64)
        result["top1_clear_rows"] = float(rows)
    return result


def per_sample_cosine(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample (axis 0) flattened; a lone vector or scalar is one sample."""
    if reference.ndim < 2:
        reference, candidate = reference.reshape(1, -1), candidate.reshape(1, -1)
    else:
        reference, candidate = (
            reference.reshape(reference.shape[0], -1),
            candidate.reshape(candidate.shape[0], -1),
        )
    dot = (reference * candidate).sum(axis=1)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    both_zero = (np.linalg.norm(reference, axis=1) <= _TINY) & (np.linalg.norm(candidate, axis=1) <= _TINY)
    cosine = np.where(norms > _TINY, dot / np.maximum(norms, _TINY), 0.0)
    return np.where(both_zero, 1.0, cosine)


def top1_agreement(references: Sequence[np.ndarray], candidates: Sequence[np.ndarray]) -> float:
    same = np.concatenate([_top1_same(r, c) for r, c in zip(references, candidates, strict=True)])
    return float(same.mean()) if same.size else 1.0


def top1_agreement_clear(
    references: Sequence[np.ndarray], candidates: Sequence[np.ndarray]
) -> tuple[float, int]:
    """Top-1 agreement over rows where FP32's lead beats twice the variant's typical (median) row error.

    A flip between classes FP32 separates by less than ordinary quantization
    noise says nothing cosine and relative L2 have not judged already, and
    random inputs produce many such near-ties; a flip on a clearly decided row
    is a real change of answer.  Returns the agreement and how many rows counted.
    """
    rows_ref = np.concatenate([r.reshape(-1, r.shape[-1]) for r in references])
    rows_cand = np.concatenate([c.reshape(-1, c.shape[-1]) for c in candidates])
    if rows_ref.size == 0:
        return 1.0, 0
    top2 = np.sort(rows_ref, axis=-1)[:, -2:]
    lead = top2[:, 1] - top2[:, 0]
    typical_error = float(np.median(np.abs(rows_ref - rows_cand).max(axis=-1)))
    clear = lead > 2.0 * typical_error
    same = rows_ref.argmax(axis=-1) == rows_cand.argmax(axis=-1)
    counted = same[clear]
    return (float(counted.mean()) if counted.size else 1.0), int(counted.size)


def _top1_same(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    return (reference.argmax(axis=-1) == candidate.argmax(axis=-1)).reshape(-1)


def gate(metrics: Mapping[str, Mapping[str, float]], thresholds: GateThresholds) -> tuple[bool, str]:
    """Pass only if every output clears every threshold that applies to it; the reason names the numbers."""
    if not metrics:
        return False, "no tensor output could be compared"
    failures: list[str] = []
    for name, values in metrics.items():
        failures.extend(f"{name}: {problem}" for problem in _output_failures(values, thresholds))
    if failures:
        return False, "; ".join(failures)
    return True, "all outputs within thresholds (" + "; ".join(
        f"{name}: {summarize_metrics(values)}" for name, values in metrics.items()
    ) + ")"


def _output_failures(values: Mapping[str, float], t: GateThresholds) -> list[str]:
    if "shape_mismatch" in values:
        return ["output shape differs from FP32"]
    if "non_finite" in values:
        return ["NaN or infinity where FP32 is finite"]
    problems = []
    if "agreement" in values and values["agreement"] < t.min_top1_agreement:
        problems.append(f"exact agreement {values['agreement']:.3f} < {t.min_top1_agreement}")
    if "cosine_mean" in values and values["cosine_mean"] < t.min_cosine_mean:
        problems.append(f"cosine mean {values['cosine_mean']:.4f} < {t.min_cosine_mean}")
    if "cosine_worst" in values and values["cosine_worst"] < t.min_cosine_worst:
        problems.append(f"worst-sample cosine {values['cosine_worst']:.4f} < {t.min_cosine_worst}")
    if "relative_l2" in values and values["relative_l2"] > t.max_relative_l2:
        problems.append(f"relative L2 {values['relative_l2']:.4f} > {t.max_relative_l2}")
    top1 = values.get("top1_agreement_clear", values.get("top1_agreement"))
    if top1 is not None and top1 < t.min_top1_agreement:
        problems.append(
            f"top-1 agreement {top1:.3f} < {t.min_top1_agreement} (rows where FP32's lead exceeds the error)"
        )
    return problems


def summarize_metrics(values: Mapping[str, float]) -> str:
    labels = (
        ("cosine_mean", "cosine mean {:.4f}"),
        ("cosine_worst", "worst {:.4f}"),
        ("relative_l2", "rel L2 {:.4f}"),
        ("top1_agreement", "top-1 {:.3f}"),
        ("agreement", "agreement {:.3f}"),
    )
    return ", ".join(fmt.format(values[key]) for key, fmt in labels if key in values)

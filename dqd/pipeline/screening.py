"""When to stop timing a ladder's rung or its playoff, and whether a rung is worth gating (pure).

With ``ladder.screen`` on (the default), each rung is first timed in a short
interleaved pilot beside the shipped FP32 and the *leader*: the fastest rung so
far that passed the gate and is significantly faster than FP32. The pilot ends
as soon as the rung's speed-up over FP32 is resolved either way or the leader
is clearly faster than it in the same rounds; a rung that cannot be faster (not
faster than FP32 by the margin, or clearly behind the leader) is then not gated
at all, since it could never be selected. The playoff of the finalists ends as
soon as every finalist is either clearly beaten by another or clearly not, which
is all :func:`dqd.pipeline.ladder_select.select_rung` reads from it.

Samples are latency lists in one interleaved run's contender order, FP32 first.
"""

from __future__ import annotations

from collections.abc import Sequence

from dqd.pipeline.benchmark import is_resolved, speedup_point
from dqd.pipeline.benchmark import speedup_ci as _speedup_ci
from dqd.pipeline.policy import Speed, classify_speed
from dqd.settings import BenchmarkSettings

# A pilot's interval needs some rounds before it means anything, however fast the model.
PILOT_MIN_ROUNDS = 8
# The playoff's too, before its soft time cap may end it: enough to tell 20 % apart at 5 % noise.
PLAYOFF_MIN_ROUNDS = 10
Pairs = tuple[Sequence[float], Sequence[float]]  # FP32's and a rung's latencies, paired round by round


def patience_seconds(settings: BenchmarkSettings) -> float:
    """How long a pilot or a playoff waits for a question that looks settled to be proven: a quarter
    of the benchmark's time budget; past it, only an answer whose point estimate clears the margin
    is worth the rest of the budget."""
    return max(settings.min_seconds, settings.max_seconds / 4)


def clearly_behind(
    rung_ms: Sequence[float], leader_ms: Sequence[float], margin: float, confidence: float
) -> bool:
    """In the same rounds, the leader's paired speed-up over the rung clears ``1 + margin`` at its low end."""
    low, _ = _speedup_ci(rung_ms, leader_ms, confidence=confidence)
    return low >= 1.0 + margin


def pilot_settled(
    samples: Sequence[Sequence[float]], margin: float, confidence: float, *, patience_spent: bool = False
) -> bool:
    """``samples`` are [FP32, leader, rung] or [FP32, rung]: the rung's speed over FP32 is resolved,
    or it is clearly behind the leader; once ``patience_spent`` (the pilot's soft time cap), also when
    its point estimate sits below ``1 + margin``: a rung about as fast as FP32 could only be shown
    marginally faster by many more rounds, and is not pursued."""
    fp32, rung = samples[0], samples[-1]
    if is_resolved(_speedup_ci(fp32, rung, confidence=confidence), margin):
        return True
    if patience_spent and speedup_point(fp32, rung) < 1.0 + margin:
        return True
    return len(samples) == 3 and clearly_behind(rung, samples[1], margin, confidence)


def not_worth_gating(
    speedup: float,
    speedup_ci: tuple[float, float],
    rung_ms: Sequence[float],
    leader: tuple[str, Sequence[float]] | None,
    margin: float,
    confidence: float,
) -> str | None:
    """Why a piloted rung will not be selected whatever its accuracy, or None when it may be.

    ``speedup`` and ``speedup_ci`` are its speed-up over FP32 from the pilot;
    ``leader`` the leader's name and latencies in the pilot's rounds, beside ``rung_ms``.
    """
    if leader is not None:
        name, leader_ms = leader
        if clearly_behind(rung_ms, leader_ms, margin, confidence):
            low, high = _speedup_ci(rung_ms, leader_ms, confidence=confidence)
            return f"clearly behind {name} in the same rounds ({name} {low:.2f}-{high:.2f}x as fast)"
    speed = classify_speed(speedup_ci, margin)
    if speed in (Speed.SLOWER, Speed.NOT_FASTER):
        return "a rung this fast cannot be selected"
    if speed is Speed.UNRESOLVED and speedup < 1.0 + margin:
        return "not shown faster than FP32 by the margin through the pilot, and its point estimate below it"
    return None


def pooled_speedup(runs: Sequence[Pairs], confidence: float) -> tuple[float, tuple[float, float]]:
    """A rung's speed-up over FP32 (point, interval) from several interleaved runs' pairs together.

    Each pair was timed in one round, so drift between runs hits both sides
    of a pair alike and pairs from a pilot and a playoff pool soundly.
    """
    fp32 = [ms for run in runs for ms in run[0]]
    rung = [ms for run in runs for ms in run[1]]
    return speedup_point(fp32, rung), _speedup_ci(fp32, rung, confidence=confidence)


def playoff_settled(
    samples: Sequence[Sequence[float]],
    margin: float,
    confidence: float,
    pilots: Sequence[Pairs | None] | None = None,
    *,
    patience_spent: bool = False,
) -> bool:
    """``samples`` are [FP32, finalist...]: every finalist's speed over FP32 is resolved (its pilot's
    pairs pooled in, when ``pilots`` gives them, in finalist order), and each one is either clearly
    beaten by another finalist or clearly beaten by none.

    Once ``patience_spent`` (the playoff's soft time cap), a question still open
    no longer holds the playoff when its point estimate sits below ``1 + margin``:
    more rounds would most likely confirm a tie. One whose point estimate says
    "faster" keeps it going, so that a real difference the rounds so far could
    not yet prove is not mistaken for a tie (and the more accurate but slower
    variant shipped).
    """

    def still_open(point: float, interval: tuple[float, float]) -> bool:
        if is_resolved(interval, margin):
            return False
        return not patience_spent or point >= 1.0 + margin

    finalists = samples[1:]
    for index, rung in enumerate(finalists):
        prior = pilots[index] if pilots is not None else None
        runs: list[Pairs] = [(samples[0], rung), *([prior] if prior is not None else [])]
        if still_open(*pooled_speedup(runs, confidence)):
            return False
    for index, rung in enumerate(finalists):
        open_question = False
        for other_index, other in enumerate(finalists):
            if other_index == index:
                continue
            interval = _speedup_ci(rung, other, confidence=confidence)  # the other's speed-up over this one
            if interval[0] >= 1.0 + margin:
                break  # beaten: nothing else about this finalist matters to the selection
            open_question = open_question or still_open(speedup_point(rung, other), interval)
        else:
            if open_question:
                return False
    return True

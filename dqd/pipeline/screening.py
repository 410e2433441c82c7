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
    samples: Sequence[Sequence[float]], margin: float, confidence: float, *, may_accept: bool = True
) -> bool:
    """``samples`` are [FP32, leader, rung] or [FP32, rung]: the rung's speed over FP32 is resolved,
    or it is clearly behind the leader.

    Until ``may_accept`` (``benchmark.min_seconds`` of rounds, what any benchmark
    measures before it may say "faster"), only a verdict that drops the rung
    settles it: the pilot looks early to stop losers, not to let winners in on
    less evidence than before (an early look at a rung about as fast as FP32
    can read "faster" by chance). From then on, a rung whose point estimate
    sits below ``1 + margin`` is not pursued either: about as fast as FP32, it
    could at best be shown marginally faster, by many more rounds.
    """
    fp32, rung = samples[0], samples[-1]
    low, high = _speedup_ci(fp32, rung, confidence=confidence)
    if high < 1.0 + margin or (may_accept and low >= 1.0 + margin):
        return True
    if may_accept and speedup_point(fp32, rung) < 1.0 + margin:
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
    preference: Sequence[int] | None = None,
    patience_spent: bool = False,
) -> bool:
    """``samples`` are [FP32, finalist...]: the selection the playoff feeds can no longer change.

    Every finalist's speed over FP32 is resolved (its pilot's pairs pooled in,
    when ``pilots`` gives them, in finalist order). Then, walking the finalists
    in ``preference`` order (indices into the finalists, most accurate first;
    default their order): each one clearly beaten by another is passed over,
    and the first that is not is the pick, settled once no other finalist may
    still prove clearly faster than it. How the other finalists compare with
    each other does not change the pick, so it does not hold the playoff.

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
    for index in preference if preference is not None else range(len(finalists)):
        rung = finalists[index]
        others = [other for other_index, other in enumerate(finalists) if other_index != index]
        faster = [(speedup_point(rung, o), _speedup_ci(rung, o, confidence=confidence)) for o in others]
        if any(interval[0] >= 1.0 + margin for _, interval in faster):
            continue  # clearly beaten: the pick is further down the preference
        return not any(still_open(point, interval) for point, interval in faster)
    return True

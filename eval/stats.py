"""Paired comparison of two runs on the same questions: a paired bootstrap of the mean difference, and per-question
win/loss rows for writing comparison files.

Both sides are keyed by question id and must cover the same ids (`align`), so a comparison never silently pairs
different questions or drops the ones one run skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from selfrag.io import InputError

# Resamples are drawn in blocks of at most this many indices, so 10,000 resamples of 11k TriviaQA questions stay
# within a few tens of MB instead of one 900 MB index matrix.
_BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """Result of `paired_bootstrap` (all on the metric's own scale).

    Attributes:
        n: questions compared.
        mean_a, mean_b: the two runs' means.
        difference: mean_a - mean_b.
        ci_low, ci_high: percentile confidence interval of the difference.
        p_value: fraction of resamples whose difference is <= 0 (small = "a beats b" is not resampling noise; near
            1 = b is at least as good). A one-sided bootstrap estimate, not an exact test.
        confidence, n_resamples, seed: the settings used.
    """

    n: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float
    n_resamples: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def align(scores_a: Mapping[str, Any], scores_b: Mapping[str, Any]) -> list[str]:
    """The question ids both sides share, in `scores_a`'s order.

    Raises:
        InputError: the id sets differ (listing up to 5 ids missing from each side).
    """
    only_a = [k for k in scores_a if k not in scores_b]
    only_b = [k for k in scores_b if k not in scores_a]
    if only_a or only_b:
        raise InputError(
            f"the two runs cover different questions: {len(only_a)} id(s) only in run a (e.g. {only_a[:5]}), "
            f"{len(only_b)} only in run b (e.g. {only_b[:5]}); evaluate both on the same input file and limit"
        )
    return list(scores_a)


def paired_bootstrap(
    scores_a: Mapping[str, float],
    scores_b: Mapping[str, float],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Paired bootstrap of the mean difference a - b over questions.

    Each resample draws n question ids with replacement (the same draw for both runs, which keeps the pairing) and
    records the mean of the per-question differences. The CI is the ((1 - confidence)/2, (1 + confidence)/2)
    percentile range of those means (numpy's linear interpolation); `p_value` is the fraction that are <= 0.
    Deterministic for a given seed.

    Args:
        scores_a, scores_b: question id -> score, with the same ids (e.g. one metric from two runs).

    Raises:
        InputError: different ids, no questions, a non-numeric score, or bad settings.
    """
    ids = align(scores_a, scores_b)
    if not ids:
        raise InputError("paired_bootstrap: no questions to compare")
    _check_settings("paired_bootstrap", n_resamples, confidence)
    a = _numbers(scores_a, ids, "run a: ")
    b = _numbers(scores_b, ids, "run b: ")
    diff = a - b
    means = _resampled_means(diff, n_resamples, seed)
    low, high = _percentile_interval(means, confidence)
    return BootstrapResult(
        n=len(ids),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        difference=float(diff.mean()),
        ci_low=low,
        ci_high=high,
        p_value=float(np.mean(means <= 0)),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def _numbers(scores: Mapping[str, Any], ids: Sequence[str], where: str) -> np.ndarray:
    """The scores of `ids` as an array; InputError (prefixed with `where`) naming the first non-numeric one."""
    bad = [k for k in ids if not _is_number(scores[k])]
    if bad:
        raise InputError(f"{where}question {bad[0]!r} has a non-numeric score {scores[bad[0]]!r} ({len(bad)} such); "
                         "use a metric that every question has a number for")
    return np.array([float(scores[k]) for k in ids])


def _check_settings(caller: str, n_resamples: int, confidence: float) -> None:
    if n_resamples < 1 or not 0 < confidence < 1:
        raise InputError(f"{caller}: need n_resamples >= 1 and 0 < confidence < 1, got {n_resamples} and {confidence}")


def _resampled_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of `n_resamples` bootstrap resamples of `values` (n draws with replacement each), seeded."""
    n = len(values)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def _percentile_interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean(
    scores: Mapping[str, float], *, n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high) of one run's per-question scores: the percentile bootstrap interval of the mean,
    resampled exactly as `paired_bootstrap` resamples differences (so the same seed draws the same questions).

    Raises:
        InputError: no questions, a non-numeric score, or bad settings.
    """
    if not scores:
        raise InputError("bootstrap_mean: no questions")
    _check_settings("bootstrap_mean", n_resamples, confidence)
    values = _numbers(scores, list(scores), "")
    low, high = _percentile_interval(_resampled_means(values, n_resamples, seed), confidence)
    return float(values.mean()), low, high


def metric_scores(per_question: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, float]:
    """One metric's per-question values (id -> number) from a task's per-question scores.

    Raises:
        InputError: a question lacks the metric or its value is not a number (e.g. `Unavailable`).
    """
    out: dict[str, float] = {}
    for question_id, scores in per_question.items():
        value = scores.get(metric)
        if not _is_number(value):
            raise InputError(f"question {question_id!r}: metric {metric!r} is {value!r}, not a number; "
                             f"choose one of {sorted(scores)} that was computed")
        out[question_id] = float(value)
    return out


def win_loss(
    per_q_a: Mapping[str, Mapping[str, Any]], per_q_b: Mapping[str, Mapping[str, Any]], metric: str
) -> list[dict[str, Any]]:
    """Per-question comparison rows `{id, a, b, outcome}` with outcome "win" (a > b), "loss" (a < b) or "tie",
    in run a's question order (for a win/loss jsonl file).

    Raises:
        InputError: different ids, or a missing / non-numeric metric value.
    """
    ids = align(per_q_a, per_q_b)
    a, b = metric_scores(per_q_a, metric), metric_scores(per_q_b, metric)
    rows = []
    for question_id in ids:
        outcome = "win" if a[question_id] > b[question_id] else "loss" if a[question_id] < b[question_id] else "tie"
        rows.append({"id": question_id, "a": a[question_id], "b": b[question_id], "outcome": outcome})
    return rows

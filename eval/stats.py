"""Paired comparison of two runs on the same questions: a paired bootstrap of the mean difference, the same for an
AUROC over items grouped by question (`paired_auroc_bootstrap`), and per-question win/loss rows for writing
comparison files.

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


#: Items of one question for an AUROC: (score, positive) pairs, e.g. the IsRel score of each passage a question's
#: candidates read and whether the passage holds a gold answer.
QuestionItems = Sequence[tuple[float, bool]]


class _ClusteredAUROC:
    """The AUROC of items grouped by question, for any multiset of questions given as per-question counts.

    A bootstrap resample of questions is a count per question (how often it was drawn); its AUROC is the
    Mann-Whitney statistic of the items with each weighted by its question's count, which equals the AUROC of the
    item list with each question's items repeated that often (ties count half, as `eval.reflection.auroc`). Items
    are ranked once, so one resample costs a few numpy passes instead of a sort.
    """

    def __init__(self, items: Mapping[str, QuestionItems], ids: Sequence[str]) -> None:
        flat = [(float(score), bool(label), q)
                for q, question_id in enumerate(ids) for score, label in items[question_id]]
        scores = np.array([f[0] for f in flat], dtype=float)
        self._positive = np.array([f[1] for f in flat], dtype=bool)
        self._question = np.array([f[2] for f in flat], dtype=np.int64)
        # tie groups in ascending score order: items of one group share a score
        self._tie_group = np.unique(scores, return_inverse=True)[1].reshape(-1) if flat else np.zeros(0, np.int64)
        self._n_groups = int(self._tie_group.max()) + 1 if flat else 0
        self.n_items = len(flat)

    def value(self, counts: np.ndarray) -> float:
        """The AUROC with question q counted `counts[q]` times; nan when one class is empty."""
        weight = counts[self._question].astype(float)
        pos = np.bincount(self._tie_group, weights=weight * self._positive, minlength=self._n_groups)
        neg = np.bincount(self._tie_group, weights=weight * ~self._positive, minlength=self._n_groups)
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            return math.nan
        negatives_below = np.cumsum(neg) - neg
        return float((pos * (negatives_below + 0.5 * neg)).sum() / (n_pos * n_neg))


def _defined_auroc(side: _ClusteredAUROC, n_questions: int, where: str) -> float:
    """The AUROC over all questions; InputError (prefixed with `where`) when one class is empty."""
    value = side.value(np.ones(n_questions, dtype=np.int64))
    if math.isnan(value):
        raise InputError(f"{where}the AUROC needs positive and negative items, and the {side.n_items} item(s) are "
                         "all of one class")
    return value


def _resampled_aurocs(sides: Sequence[_ClusteredAUROC], n_questions: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, len(sides)) AUROCs: each row one draw of `n_questions` questions with replacement, the same
    draw for every side (nan where a side's AUROC is undefined)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, len(sides)))
    for r in range(n_resamples):
        counts = np.bincount(rng.integers(0, n_questions, size=n_questions), minlength=n_questions)
        out[r] = [side.value(counts) for side in sides]
    return out


def paired_auroc_bootstrap(
    items_a: Mapping[str, QuestionItems],
    items_b: Mapping[str, QuestionItems],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Paired bootstrap of AUROC(a) - AUROC(b), resampling whole questions.

    A question's items stay together (its passages are not independent), and each resample draws the same
    questions for both runs, which keeps the pairing even where the runs scored different items of a question.
    `mean_a`/`mean_b` are the two AUROCs over all items; resamples where either AUROC is undefined (one class
    drawn empty) are left out of the interval and the p value. Deterministic for a given seed.

    Args:
        items_a, items_b: question id -> that question's (score, positive) items, with the same ids (a question
            may have no items).

    Raises:
        InputError: different ids, an AUROC undefined on all questions (one class empty), or bad settings.
    """
    ids = align(items_a, items_b)
    _check_settings("paired_auroc_bootstrap", n_resamples, confidence)
    a, b = _ClusteredAUROC(items_a, ids), _ClusteredAUROC(items_b, ids)
    value_a, value_b = _defined_auroc(a, len(ids), "run a: "), _defined_auroc(b, len(ids), "run b: ")
    resampled = _resampled_aurocs((a, b), len(ids), n_resamples, seed)
    differences = resampled[:, 0] - resampled[:, 1]
    differences = differences[~np.isnan(differences)]
    low, high = _percentile_interval(differences, confidence)
    return BootstrapResult(n=len(ids), mean_a=value_a, mean_b=value_b, difference=value_a - value_b, ci_low=low,
                           ci_high=high, p_value=float(np.mean(differences <= 0)), confidence=confidence,
                           n_resamples=n_resamples, seed=seed)


def bootstrap_auroc(
    items: Mapping[str, QuestionItems], *, n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(AUROC, ci_low, ci_high) of one run's items grouped by question: the percentile interval when whole
    questions are resampled (as `paired_auroc_bootstrap` resamples them; undefined resamples left out).

    Raises:
        InputError: no questions, one class only, or bad settings.
    """
    if not items:
        raise InputError("bootstrap_auroc: no questions")
    _check_settings("bootstrap_auroc", n_resamples, confidence)
    clustered = _ClusteredAUROC(items, list(items))
    value = _defined_auroc(clustered, len(items), "bootstrap_auroc: ")
    values = _resampled_aurocs((clustered,), len(items), n_resamples, seed)[:, 0]
    low, high = _percentile_interval(values[~np.isnan(values)], confidence)
    return value, low, high


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

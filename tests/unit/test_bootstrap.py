"""eval.stats: the paired bootstrap on cases whose answer is known, id alignment, and win/loss rows."""

from __future__ import annotations

import numpy as np
import pytest

from eval.components import Unavailable
from eval.reflection import auroc
from eval.stats import (
    BootstrapResult,
    _ClusteredAUROC,
    align,
    bootstrap_auroc,
    bootstrap_mean,
    metric_scores,
    paired_auroc_bootstrap,
    paired_bootstrap,
    win_loss,
)
from selfrag.io import InputError


def _ids(values):
    return {f"q{i}": v for i, v in enumerate(values)}


def test_identical_runs_differ_by_exactly_zero():
    scores = _ids([1.0, 0.0, 1.0, 1.0, 0.0])
    result = paired_bootstrap(scores, dict(scores), n_resamples=500)
    assert (result.difference, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.p_value == 1.0  # every resampled difference is <= 0
    assert (result.n, result.mean_a, result.mean_b) == (5, 0.6, 0.6)


def test_a_constant_shift_gives_exactly_that_interval():
    b = _ids([0.0, 0.25, 0.5, 0.75, 1.0, 0.5])
    a = {k: v + 0.25 for k, v in b.items()}
    result = paired_bootstrap(a, b, n_resamples=1000)
    assert (result.difference, result.ci_low, result.ci_high) == (0.25, 0.25, 0.25)
    assert result.p_value == 0.0


def test_two_questions_interval_by_reasoning():
    # Differences (1, 0). A resample of 2 draws has mean 0 (both draws the tie: 1/4), 1/2 (1/2) or 1 (1/4), so the
    # 2.5th and 97.5th percentiles sit inside the 25% masses at 0 and 1, and P(mean <= 0) = 1/4.
    result = paired_bootstrap({"x": 1.0, "y": 0.0}, {"x": 0.0, "y": 0.0}, n_resamples=20_000, seed=3)
    assert result.difference == 0.5
    assert (result.ci_low, result.ci_high) == (0.0, 1.0)
    assert result.p_value == pytest.approx(0.25, abs=0.015)
    # At 40% confidence the interval is the 30th..70th percentiles, which both fall in the 50% mass at 1/2.
    narrow = paired_bootstrap({"x": 1.0, "y": 0.0}, {"x": 0.0, "y": 0.0}, n_resamples=20_000, confidence=0.4)
    assert (narrow.ci_low, narrow.ci_high) == (0.5, 0.5)


def test_one_run_mean_interval_by_reasoning():
    # Scores (1, 0): as above, the resampled means are 0, 1/2, 1 with masses 1/4, 1/2, 1/4.
    assert bootstrap_mean({"x": 1.0, "y": 0.0}, n_resamples=20_000, seed=3) == (0.5, 0.0, 1.0)
    assert bootstrap_mean({"x": 1.0, "y": 0.0}, n_resamples=20_000, confidence=0.4) == (0.5, 0.5, 0.5)
    assert bootstrap_mean(_ids([0.3] * 7), n_resamples=100) == pytest.approx((0.3, 0.3, 0.3))
    # the same seed draws the same questions as the paired bootstrap of the run against zeros
    scores = _ids([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.5])
    paired = paired_bootstrap(scores, dict.fromkeys(scores, 0.0), n_resamples=999, seed=5)
    assert bootstrap_mean(scores, n_resamples=999, seed=5) == (paired.mean_a, paired.ci_low, paired.ci_high)
    with pytest.raises(InputError, match="no questions"):
        bootstrap_mean({})
    with pytest.raises(InputError, match="question 'q' has a non-numeric score"):
        bootstrap_mean({"q": Unavailable("no model")})


def test_pairing_removes_shared_question_difficulty():
    # Per-question scores vary a lot, but a beats b by 0.1 on every question: the paired CI is exactly 0.1,
    # where an unpaired comparison of the two means would be very wide.
    b = _ids([0.0, 0.9, 0.2, 0.8, 0.4, 0.5, 0.1, 0.7])
    a = {k: v + 0.1 for k, v in b.items()}
    result = paired_bootstrap(a, b, n_resamples=2000)
    assert result.ci_low == pytest.approx(0.1) and result.ci_high == pytest.approx(0.1)


def test_deterministic_by_seed_whatever_the_order_of_run_b():
    a = _ids([1, 0, 1, 1, 0, 1, 0, 0, 1, 1])
    b = _ids([0, 0, 1, 0, 1, 1, 0, 1, 0, 1])
    first = paired_bootstrap(a, b, n_resamples=3000, seed=7)
    # Pairing is by id, in run a's order, so reordering run b changes nothing.
    assert first == paired_bootstrap(a, dict(reversed(list(b.items()))), n_resamples=3000, seed=7)
    other = paired_bootstrap(a, b, n_resamples=3000, seed=8)
    assert other.difference == first.difference
    assert other.p_value != first.p_value  # another seed, other resamples
    assert first.difference == pytest.approx(0.1)
    assert first.ci_low < first.difference < first.ci_high
    assert isinstance(first, BootstrapResult) and first.as_dict()["seed"] == 7


def test_many_questions_are_resampled_in_blocks(monkeypatch):
    import eval.stats as stats

    a = _ids([i % 3 / 2 for i in range(50)])
    b = _ids([i % 2 for i in range(50)])
    whole = paired_bootstrap(a, b, n_resamples=400, seed=1)
    monkeypatch.setattr(stats, "_BLOCK_ELEMENTS", 50 * 7)  # 7 resamples per block, a ragged last block
    assert paired_bootstrap(a, b, n_resamples=400, seed=1) == whole


def test_mismatched_ids_are_listed():
    with pytest.raises(InputError, match=r"1 id\(s\) only in run a \(e\.g\. \['q2'\]\), 1 only in run b .*'z'"):
        paired_bootstrap({"q1": 1.0, "q2": 0.0}, {"q1": 1.0, "z": 0.0})
    assert align({"b": 1, "a": 2}, {"a": 0, "b": 0}) == ["b", "a"]


def test_bad_inputs():
    with pytest.raises(InputError, match="no questions"):
        paired_bootstrap({}, {})
    with pytest.raises(InputError, match="non-numeric score"):
        paired_bootstrap({"q": Unavailable("no model")}, {"q": 1.0})
    with pytest.raises(InputError, match="confidence"):
        paired_bootstrap({"q": 1.0}, {"q": 1.0}, confidence=1.0)


def test_win_loss_rows():
    per_a = {"q1": {"match": 1.0}, "q2": {"match": 0.0}, "q3": {"match": 1.0}}
    per_b = {"q3": {"match": 1.0}, "q1": {"match": 0.0}, "q2": {"match": 1.0}}
    assert win_loss(per_a, per_b, "match") == [
        {"id": "q1", "a": 1.0, "b": 0.0, "outcome": "win"},
        {"id": "q2", "a": 0.0, "b": 1.0, "outcome": "loss"},
        {"id": "q3", "a": 1.0, "b": 1.0, "outcome": "tie"},
    ]
    with pytest.raises(InputError, match="metric 'f1' is None"):
        win_loss(per_a, per_b, "f1")
    assert metric_scores(per_a, "match") == {"q1": 1.0, "q2": 0.0, "q3": 1.0}


# --- AUROC over items grouped by question (questions resampled whole) ---

def test_the_weighted_auroc_equals_the_auroc_of_the_repeated_items():
    rng = np.random.default_rng(3)
    items = {f"q{i}": [(float(rng.integers(0, 4)) / 4, bool(rng.random() < 0.4)) for _ in range(rng.integers(0, 4))]
             for i in range(12)}  # scores on a coarse grid: many ties; some questions without items
    ids = list(items)
    clustered = _ClusteredAUROC(items, ids)
    for _ in range(20):
        counts = rng.integers(0, 3, size=len(ids))
        repeated = [pair for q, c in zip(ids, counts) for _ in range(c) for pair in items[q]]
        expected = auroc([s for s, _ in repeated], [y for _, y in repeated])
        value = clustered.value(counts)
        assert (expected is None and np.isnan(value)) or value == pytest.approx(expected)


def test_paired_auroc_by_hand():
    # a: q1 ranks its positive first, q2 its negative -> 3 of 4 pairs; b ranks both right -> 1.0.
    a = {"q1": [(0.9, True), (0.2, False)], "q2": [(0.4, True), (0.6, False)]}
    b = {"q1": [(0.9, True), (0.2, False)], "q2": [(0.6, True), (0.4, False)]}
    result = paired_auroc_bootstrap(a, b, n_resamples=2000)
    assert (result.n, result.mean_a, result.mean_b, result.difference) == (2, 0.75, 1.0, -0.25)
    # resamples: {q1, q1} -> 1 - 1 = 0 (p 1/4), {q2, q2} -> 0 - 1 = -1 (1/4), {q1, q2} -> -0.25 (1/2)
    assert (result.ci_low, result.ci_high, result.p_value) == (-1.0, 0.0, 1.0)
    value, low, high = bootstrap_auroc(a, n_resamples=2000)
    assert (value, low, high) == (0.75, 0.0, 1.0)


def test_paired_auroc_of_identical_runs_and_bad_input():
    items = {"q1": [(0.9, True), (0.2, False)], "q2": [(0.4, True), (0.6, False)], "q3": []}
    result = paired_auroc_bootstrap(items, dict(items), n_resamples=300)
    assert (result.difference, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(InputError, match="different questions"):
        paired_auroc_bootstrap(items, {"q1": items["q1"]}, n_resamples=10)
    one_class = {k: [(s, True) for s, _ in v] for k, v in items.items()}
    with pytest.raises(InputError, match="run b: the AUROC needs positive and negative items, and the 4 item"):
        paired_auroc_bootstrap(items, one_class, n_resamples=10)
    with pytest.raises(InputError, match="no questions"):
        bootstrap_auroc({})

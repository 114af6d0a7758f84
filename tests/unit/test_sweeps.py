"""Threshold sweep and reward-weight grid over hand-made saved predictions, with every value worked out by hand.

Three PopQA-style questions, every candidate with sequence score 0.5 (so with use_seqscore it adds the same 0.5 to
all of them and never decides):

| id | gold  | p_ret | no retrieval | passage candidate 1               | passage candidate 2            |
|----|-------|-------|--------------|-----------------------------------|--------------------------------|
| 1  | paris | 0.9   | london       | paris: rel 0.9, fully supported   | rome: rel 0.2                  |
| 2  | blue  | 0.3   | blue         | red: rel 0.9                      | blue: rel 0.2, partially (0.5) |
| 3  | seven | 0.6   | six          | seven: rel 0.5, utility 5 (use 1) | eight: rel 0.7                 |

With retrieval: q1 always picks paris (0.9 w_rel + w_sup beats 0.2 w_rel); q2 picks blue iff 0.5 w_sup > 0.7 w_rel;
q3 picks seven iff w_use > 0.2 w_rel.
"""

import pytest

from eval.sweeps import (
    RerankScorer,
    check_sweepable,
    ndocs_sweep,
    ndocs_table,
    plot_threshold_sweep,
    plot_weight_grid,
    threshold_range,
    threshold_sweep,
    threshold_table,
    weight_grid,
    weight_table,
)
from eval.tasks import get_task
from selfrag import tokens as T
from selfrag.decoding.critique import RewardWeights
from selfrag.io import InputError

FULL = {T.FULLY_SUPPORTED: 1.0, T.PARTIALLY_SUPPORTED: 0.0, T.NO_SUPPORT: 0.0}
PARTIAL = {T.FULLY_SUPPORTED: 0.0, T.PARTIALLY_SUPPORTED: 1.0, T.NO_SUPPORT: 0.0}
USE_5 = {token: float(token == "[Utility:5]") for token in T.UTILITY}


def cand(answer, passage=None, rel=None, sup=None, use=None):
    return {
        "passage_id": passage, "passage_title": passage, "passage_text": f"about {passage}" if passage else None,
        "text": answer, "answer": answer, "finished": True,
        "scores": {"rel": None, "sup": None, "use": None, "seq": 0.5, "final": 0.0},
        "probs": {"rel": {T.RELEVANT: rel, T.IRRELEVANT: round(1 - rel, 10)} if rel is not None else None,
                  "sup": sup, "use": use},
    }


def row(qid, p_retrieve, candidates, retrieved=True):
    return {"id": qid, "question": f"q{qid}", "answer": "", "output": "", "retrieved": retrieved,
            "p_retrieve": p_retrieve, "options": None, "candidates": candidates, "segments": [], "docs": []}


ROWS = [
    row("1", 0.9, [cand("london"), cand("paris", "p1", rel=0.9, sup=FULL), cand("rome", "p2", rel=0.2)]),
    row("2", 0.3, [cand("blue"), cand("red", "p3", rel=0.9), cand("blue", "p4", rel=0.2, sup=PARTIAL)]),
    row("3", 0.6, [cand("six"), cand("seven", "p5", rel=0.5, use=USE_5), cand("eight", "p6", rel=0.7)]),
]


@pytest.fixture()
def scorer():
    task = get_task("popqa")
    golds = {qid: task.gold({"answers": [answer]}) for qid, answer in (("1", "paris"), ("2", "blue"), ("3", "seven"))}
    return RerankScorer(ROWS, task, golds)


def test_threshold_sweep_retrieval_rates_and_accuracy(scorer):
    points = threshold_sweep(scorer, [0.0, 0.5, 0.7, 0.95], RewardWeights(1.0, 1.0, 0.5, use_seqscore=True))
    # t=0: all retrieve (q2 picks red); t=0.5: q1, q3 retrieve; t=0.7: q1 only; t=0.95: none (0.9 is not > 0.95).
    assert [p.retrieval_rate for p in points] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert [p.value("match") for p in points] == pytest.approx([2 / 3, 1.0, 2 / 3, 1 / 3])
    assert all(p.metrics["n"] == 3 for p in points)
    table = threshold_table(points, "match")
    assert "Best match: 1.0000 at threshold 0.50 (retrieval rate 0.6667)" in table
    assert points[1].as_json()["threshold"] == 0.5 and points[1].as_json()["match"] == 1.0


def test_weight_grid_keeps_saved_decisions(scorer):
    points = weight_grid(scorer, [0.5, 1.0], [0.0, 1.0], [0.0, 0.5], use_seqscore=True)
    got = {(p.weights.w_rel, p.weights.w_sup, p.weights.w_use): p.value("match") for p in points}
    expected = {
        (0.5, 0.0, 0.0): 1 / 3, (0.5, 0.0, 0.5): 2 / 3, (0.5, 1.0, 0.0): 2 / 3, (0.5, 1.0, 0.5): 1.0,
        (1.0, 0.0, 0.0): 1 / 3, (1.0, 0.0, 0.5): 2 / 3, (1.0, 1.0, 0.0): 1 / 3, (1.0, 1.0, 0.5): 2 / 3,
    }
    assert got == pytest.approx(expected)
    assert [(p.weights.w_rel, p.weights.w_sup, p.weights.w_use) for p in points] == list(expected)  # nesting order
    assert all(p.retrieval_rate == 1.0 and p.threshold is None for p in points)
    table = weight_table(points, "match")
    assert "### w_use = 0.5" in table and "| 0.5 | 0.6667 | 1.0000 |" in table
    assert "Best match: 1.0000 at w_rel=0.5 w_sup=1 w_use=0.5" in table


def test_weight_grid_with_a_threshold_re_decides_retrieval(scorer):
    # At 0.5, q2 (p 0.3) answers without retrieval (blue, right); q1 and q3 retrieve.
    points = weight_grid(scorer, [1.0], [0.0], [0.0, 0.5], threshold=0.5)
    assert [p.value("match") for p in points] == pytest.approx([2 / 3, 1.0])
    assert [p.retrieval_rate for p in points] == pytest.approx([2 / 3, 2 / 3])


def test_ndocs_sweep_lets_only_the_first_passages_compete(scorer):
    # IsRel alone decides. ndocs=1: each question's first passage (paris right, red wrong, seven right);
    # ndocs=2: q3's eight (rel 0.7) beats seven (0.5), q1 and q2 keep their first passage.
    points = ndocs_sweep(scorer, [1, 2, 5], RewardWeights(1.0, 0.0, 0.0, use_seqscore=False))
    assert [p.value("match") for p in points] == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert [p.ndocs for p in points] == [1, 2, 5] and all(p.retrieval_rate == 1.0 for p in points)
    assert points[0].as_json()["ndocs"] == 1
    assert "Best match: 0.6667 with the first 1 passage(s) competing." in ndocs_table(points, "match")
    # The no-retrieval candidate is kept: re-thresholding still works on a cut run.
    assert scorer.point(RewardWeights(), threshold=0.95, ndocs=1).value("match") == pytest.approx(1 / 3)
    with pytest.raises(InputError, match="at least 1"):
        ndocs_sweep(scorer, [0, 1], RewardWeights())


def test_threshold_range_includes_both_ends():
    values = threshold_range(0.0, 1.0, 0.05)
    assert len(values) == 21 and values[0] == 0.0 and values[-1] == 1.0 and values[7] == 0.35
    with pytest.raises(InputError, match="step > 0"):
        threshold_range(0.0, 1.0, 0.0)


def test_runs_that_cannot_be_swept_are_refused_with_the_fix():
    one_path = [row("1", 0.9, [cand("paris", "p1", rel=0.9)])]
    with pytest.raises(InputError, match="decoding.score_all_paths=true"):
        check_sweepable(one_path, rethreshold=True)
    check_sweepable(one_path, rethreshold=False)  # the saved decision can still be re-weighted
    baseline = [row("1", None, [])]
    with pytest.raises(InputError, match="method=selfrag"):
        check_sweepable(baseline, rethreshold=False)
    long_form = [{**row("1", 0.9, []), "beams": [{"score": 1.0, "segments": []}]}]
    with pytest.raises(InputError, match="long-form"):
        check_sweepable(long_form, rethreshold=True)


def test_unavailable_or_unknown_metric_is_a_clear_error(scorer):
    point = scorer.point(RewardWeights())
    with pytest.raises(InputError, match="not one of this task's metrics"):
        point.value("accuracy")


def test_rows_without_gold_are_refused():
    with pytest.raises(InputError, match="no gold"):
        RerankScorer(ROWS, get_task("popqa"), {"1": ("paris",)})


def test_plots_are_written(scorer, tmp_path):
    points = threshold_sweep(scorer, threshold_range(0.0, 1.0, 0.25), RewardWeights())
    assert plot_threshold_sweep(points, "match", tmp_path / "t.png").stat().st_size > 1000
    grid = weight_grid(scorer, [0.5, 1.0], [0.0, 1.0], [0.0, 0.5])
    assert plot_weight_grid(grid, "f1", tmp_path / "w.png").stat().st_size > 1000

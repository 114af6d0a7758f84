"""eval.tables: the README results table from saved runs, on a two-question case worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.runs import SavedRun
from eval.tables import results_markdown, results_rows, run_name
from selfrag.io import InputError


def _run(name, method, scores, **metrics):
    return SavedRun(Path(name), {"task": "popqa", "method": method, "model": name, "primary_metric": "match",
                                 "retrieval_rate": 0.5, **metrics},
                    {q: {"match": v} for q, v in scores.items()})


def test_rows_and_table_by_hand():
    selfrag = _run("gen", "selfrag", {"q1": 1.0, "q2": 0.0}, well_formed={"chosen": 0.75},
                   decoding={"mode": "adaptive", "threshold": 0.2})
    rag = _run("base", "standard_rag", {"q1": 1.0, "q2": 1.0}, retrieval_rate=1.0, decoding={"ndocs": 5})
    rows = results_rows([selfrag, rag], n_resamples=20_000, seed=3)
    # the reference's resampled means are 0, 1/2, 1 (masses 1/4, 1/2, 1/4) -> CI [0, 1]; rag is 1 on every question;
    # rag - selfrag per question is (0, 1): the same three-point distribution
    assert [(r["name"], r["n"], r["mean"], r["ci"]) for r in rows] == [
        ("selfrag · gen · adaptive (threshold 0.2)", 2, 0.5, [0.0, 1.0]),
        ("standard_rag · base · 5 passages", 2, 1.0, [1.0, 1.0]),
    ]
    assert rows[0]["vs_reference"] is None and rows[0]["well_formed"] == 0.75 and rows[1]["well_formed"] is None
    versus = rows[1]["vs_reference"]
    assert (versus["difference"], versus["ci_low"], versus["ci_high"], versus["wins"]) == (0.5, 0.0, 1.0, 1)
    assert results_markdown(rows).splitlines() == [
        "| run | n | match [95% CI] | retrieval rate | well-formed | vs. first row [95% CI] |",
        "|---|---:|---:|---:|---:|---:|",
        "| selfrag · gen · adaptive (threshold 0.2) | 2 | 50.0% [0.0%, 100.0%] | 50.0% | 75.0% | (reference) |",
        "| standard_rag · base · 5 passages | 2 | 100.0% [100.0%, 100.0%] | 100.0% | – | +50.0% [+0.0%, +100.0%] |",
    ]


def test_never_mode_has_no_threshold_and_mismatched_runs_are_refused():
    assert run_name(_run("gen", "selfrag", {}, decoding={"mode": "never", "threshold": 0.2, "ndocs": 2})) == \
        "selfrag · gen · never"  # reads no passage
    judge = _run("judge", "selfrag", {}, decoding={"mode": "always", "threshold": 0.2, "reader": "base", "ndocs": 5})
    assert run_name(judge) == "selfrag · judge · always · base reader · 5 passages"
    assert run_name(_run("base", "standard_rag", {}, decoding={"ndocs": 1})) == "standard_rag · base · 1 passage"
    assert run_name(_run("base", "no_retrieval", {}, decoding={"ndocs": 2})) == "no_retrieval · base"
    with pytest.raises(InputError, match="different questions"):
        results_rows([_run("a", "selfrag", {"q1": 1.0}), _run("b", "no_retrieval", {"q2": 1.0})])
    with pytest.raises(InputError, match="runs is empty"):
        results_rows([])

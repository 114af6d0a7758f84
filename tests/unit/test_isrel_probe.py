"""benchmarks/isrel_probe.py: the saved scores' names and shape (what reading_ceiling.py reads back)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfrag.types import Passage
from tests.helpers import load_module

probe = load_module("isrel_probe")
ceiling = load_module("reading_ceiling")


def test_model_name_names_the_run_and_the_adapter():
    assert probe.model_name(Path("outputs/train_generator/run1/final")) == "run1-final"
    assert probe.model_name(Path("outputs/train_generator/run1/checkpoints/step-50")) == "run1-step-50"


def test_saved_scores_read_back_as_a_chooser(tmp_path):
    rows = [{"id": 3, "answers": ["x"]}]
    passages = [(Passage("a", "A", "text a"), Passage("b", "B", "text b"))]
    saved = probe.score_rows(rows, passages, [[0.25, 0.75]])
    assert saved == [{"id": "3", "candidates": [{"passage_id": "a", "scores": {"rel": 0.25}},
                                                {"passage_id": "b", "scores": {"rel": 0.75}}]}]
    probe.write_jsonl_atomic(tmp_path / "r-final.jsonl", saved)
    run = ceiling._load_run(tmp_path / "r-final.jsonl", {"3": ["x"]})
    # the base was right from passage b only: the saved IsRel picks b
    (_, second) = ceiling.ceiling_table({"3#p1": ("a", 0.0), "3#p2": ("b", 1.0)}, ["3"], 2, {"r": run})
    assert second["r: IsRel pick"] == 1.0 and second["r: own oracle"] is None


def test_saved_scores_are_read_back_on_fewer_passages(tmp_path):
    """`--saved`: a file saved at k=3 gives the scores of its first two passages at k=2; a question or passage it
    lacks is refused by name."""
    rows = [{"id": 1, "answers": ["x"]}, {"id": 2, "answers": ["y"]}]
    passages = [tuple(Passage(f"{q}{c}", c, c) for c in "abc") for q in (1, 2)]
    path = tmp_path / "run-final.jsonl"
    probe.write_jsonl_atomic(path, probe.score_rows(rows, passages, [[0.1, 0.9, 0.5], [0.7, 0.2, 0.4]]))
    assert probe.saved_scores(path, rows, [ps[:2] for ps in passages]) == [[0.1, 0.9], [0.7, 0.2]]
    with pytest.raises(probe.InputError, match=r"run-final.jsonl: no score for passage 3d of question 3"):
        probe.saved_scores(path, [{"id": 3}], [(Passage("3d", "d", "d"),)])

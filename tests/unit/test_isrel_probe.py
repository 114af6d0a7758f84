"""benchmarks/isrel_probe.py: the saved scores' names and shape (what reading_ceiling.py reads back)."""

from __future__ import annotations

from pathlib import Path

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

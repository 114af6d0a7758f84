"""benchmarks/reading_ceiling.py: per-passage rows and the ceiling table, on hand-worked values."""

from __future__ import annotations

import json

from selfrag.per_passage import question_and_rank, split_rows
from tests.helpers import load_module

ceiling = load_module("reading_ceiling")


def _rel(isrel: float) -> dict:
    return {"rel": isrel}


def test_split_rows_keeps_the_first_k_passages_one_per_row():
    rows = [{"id": 7, "question": "q", "ctxs": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}]
    out = split_rows(rows, 2)
    assert [(r["id"], r["ctxs"]) for r in out] == [("7#p1", [{"id": "a"}]), ("7#p2", [{"id": "b"}])]
    assert rows[0]["id"] == 7  # the input is not modified
    assert question_and_rank(out[1]["id"]) == ("7", 2)


def test_ceiling_table_first_oracle_and_isrel_pick():
    # q1: the base is right from passage 2 only; the run scores passage 2 more relevant and its own answers are wrong.
    # q2: the base is right from passage 1 only; the run ties (0.5, 0.5): the earlier passage wins the tie.
    per_passage = {"1#p1": ("a", 0.0), "1#p2": ("b", 1.0), "2#p1": ("c", 1.0), "2#p2": ("d", 0.0)}
    run = {"1": [{"passage_id": "a", "scores": _rel(0.2), "match": 0.0},
                 {"passage_id": "b", "scores": _rel(0.9), "match": 0.0}],
           "2": [{"passage_id": "c", "scores": _rel(0.5), "match": 1.0},
                 {"passage_id": "d", "scores": _rel(0.5), "match": 0.0}]}
    table = ceiling.ceiling_table(per_passage, ["1", "2"], 2, {"r": run})
    assert table[0] == {"k": 1, "first": 0.5, "oracle": 0.5, "r: IsRel pick": 0.5, "r: own oracle": 0.5, "r: n": 2}
    assert table[1] == {"k": 2, "first": 0.5, "oracle": 1.0, "r: IsRel pick": 1.0, "r: own oracle": 0.5, "r: n": 2}


def test_ceiling_table_leaves_out_questions_whose_passages_differ():
    per_passage = {"1#p1": ("a", 1.0), "2#p1": ("b", 0.0)}
    run = {"1": [{"passage_id": "z", "scores": _rel(0.5), "match": 1.0}],
           "2": [{"passage_id": "b", "scores": _rel(0.5), "match": 1.0}]}
    (row,) = ceiling.ceiling_table(per_passage, ["1", "2"], 1, {"r": run})
    assert row == {"k": 1, "first": 0.5, "oracle": 0.5, "r: IsRel pick": 0.0, "r: own oracle": 1.0, "r: n": 1}


def test_ceiling_table_leaves_depths_a_run_did_not_decode_empty():
    per_passage = {"1#p1": ("a", 0.0), "1#p2": ("b", 1.0)}
    run = {"1": [{"passage_id": "a", "scores": _rel(0.5), "match": 1.0}]}
    table = ceiling.ceiling_table(per_passage, ["1"], 2, {"r": run})
    assert table[0]["r: own oracle"] == 1.0 and table[1]["oracle"] == 1.0
    assert table[1]["r: IsRel pick"] is None and table[1]["r: own oracle"] is None and table[1]["r: n"] is None


def test_ceiling_table_scores_without_answers_pick_but_have_no_own_oracle():
    # An isrel_probe file: IsRel per passage, no answers (match None). It picks passage 2 (0.7 > 0.6).
    per_passage = {"1#p1": ("a", 0.0), "1#p2": ("b", 1.0)}
    probe = {"1": [{"passage_id": "a", "scores": _rel(0.6), "match": None},
                   {"passage_id": "b", "scores": _rel(0.7), "match": None}]}
    table = ceiling.ceiling_table(per_passage, ["1"], 2, {"p": probe})
    assert table[1] == {"k": 2, "first": 0.0, "oracle": 1.0, "p: IsRel pick": 1.0, "p: own oracle": None, "p: n": 1}


def test_load_run_reads_a_probe_file_and_a_run_directory(tmp_path):
    gold = {"1": ["Paris"]}
    candidates = [{"passage_id": "a", "scores": _rel(0.6)}, {"passage_id": None, "scores": {}}]
    (tmp_path / "probe.jsonl").write_text(json.dumps({"id": 1, "candidates": candidates}) + "\n")
    assert ceiling._load_run(tmp_path / "probe.jsonl", gold) == {
        "1": [{"passage_id": "a", "scores": _rel(0.6), "match": None}]}
    run = tmp_path / "run"
    run.mkdir()
    answered = [{**candidates[0], "answer": "It is Paris."}]
    (run / "predictions.jsonl").write_text(json.dumps({"id": "1", "candidates": answered}) + "\n")
    assert ceiling._load_run(run, gold)["1"][0]["match"] == 1.0


def test_perfect_isrel_picks_the_first_answer_bearing_passage():
    """The reference run: IsRel 1 where a passage holds a gold answer (title or text, any case), else 0, in rank
    order whatever the rows' order; its pick is the first such passage, the first passage where none holds one."""
    def row(rank, passage_id, text, qid="1"):
        return {"id": f"{qid}#p{rank}", "docs": [{"id": passage_id, "title": "T", "text": text}]}

    rows = [row(2, "b", "born in PARIS"), row(1, "a", "no answer"), row(3, "c", "Paris again"),
            row(1, "d", "nothing", "2"), row(2, "e", "nothing either", "2")]
    run = ceiling.perfect_isrel_run(rows, {"1": ["Paris"], "2": ["Rome"]})
    assert [(c["passage_id"], c["scores"]["rel"]) for c in run["1"]] == [("a", 0.0), ("b", 1.0), ("c", 1.0)]
    assert [c["scores"]["rel"] for c in run["2"]] == [0.0, 0.0]
    # the base is right from c only on q1 and from d on q2: the perfect IsRel picks b (wrong) and d (right)
    per_passage = {"1#p1": ("a", 0.0), "1#p2": ("b", 0.0), "1#p3": ("c", 1.0), "2#p1": ("d", 1.0),
                   "2#p2": ("e", 0.0)}
    table = ceiling.ceiling_table(per_passage, ["1", "2"], 2, {ceiling.PERFECT_ISREL: run})
    assert table[1]["perfect IsRel: IsRel pick"] == 0.5 and table[1]["oracle"] == 0.5


def test_pick_against_first_pairs_the_questions_the_run_read():
    # q1: the run picks passage 2 (right; the first is wrong); q2: its passages differ from the file's: left out.
    per_passage = {"1#p1": ("a", 0.0), "1#p2": ("b", 1.0), "2#p1": ("c", 1.0), "2#p2": ("d", 0.0)}
    run = {"1": [{"passage_id": "a", "scores": _rel(0.1)}, {"passage_id": "b", "scores": _rel(0.8)}],
           "2": [{"passage_id": "c", "scores": _rel(0.1)}, {"passage_id": "z", "scores": _rel(0.8)}]}
    assert ceiling.pick_against_first(per_passage, ["1", "2"], 2, run) == ({"1": 1.0}, {"1": 0.0})
    assert ceiling.isrel_pick([("a", 0.0), ("b", 1.0)], run["1"][:1]) is None  # fewer passages than read

"""scripts/split_passages.py: one row per (question, passage), on hand-worked rows."""

from __future__ import annotations

import json

import pytest

from selfrag.io import read_jsonl
from tests.helpers import run_script, write_jsonl

ROWS = [{"id": 7, "question": "Capital of France?", "answers": ["Paris"],
         "ctxs": [{"id": "a", "text": "Paris is..."}, {"id": "b", "text": "Lyon is..."}, {"id": "c", "text": "x"}]},
        {"id": 8, "question": "Capital of Peru?", "answers": ["Lima"], "ctxs": [{"id": "d", "text": "Lima"}]}]


def test_the_script_writes_the_first_k_passages_one_per_row_with_rank_ids(tmp_path):
    retrieved = write_jsonl(tmp_path / "retrieved.jsonl", ROWS)
    run_script("split_passages", f"retrieved={retrieved}", "k=2", f"output_dir={tmp_path / 'o'}")
    rows = read_jsonl(tmp_path / "o" / "rows.jsonl")
    assert [(r["id"], [c["id"] for c in r["ctxs"]]) for r in rows] == [("7#p1", ["a"]), ("7#p2", ["b"]),
                                                                         ("8#p1", ["d"])]
    assert rows[2]["question"] == "Capital of Peru?" and rows[2]["answers"] == ["Lima"]
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert (stats["questions"], stats["rows"], stats["questions_with_fewer_than_k_passages"]) == (2, 3, 1)


@pytest.mark.parametrize(("bad", "message"), [
    ({"id": 9, "question": "q", "ctxs": []}, "expected a row with an `id` and ranked passages in `ctxs`"),
    ({"id": 9, "question": "q", "ctxs": [{"id": "x", "title": "t", "text": "fine"}, {"id": "y", "title": "t"}]},
     "ctxs[1] must be an object with at least a `text` field"),
], ids=["no-passages", "passage-without-text"])
def test_the_script_refuses_a_bad_row_naming_its_line(tmp_path, bad, message):
    retrieved = write_jsonl(tmp_path / "retrieved.jsonl", [ROWS[0], bad])
    proc = run_script("split_passages", f"retrieved={retrieved}", f"output_dir={tmp_path / 'o'}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{retrieved}:2: {message}" in proc.stderr
    assert not (tmp_path / "o" / "rows.jsonl").exists()

"""critic.judgements and scripts/judgement_rows.py: one truthful IsRel judgement per retrieved passage."""

from __future__ import annotations

import json

import pytest

from critic.judgements import isrel_judgement_rows
from selfrag.io import InputError, read_jsonl
from tests.helpers import run_script, write_jsonl

ROWS = [
    {"id": 7, "question": "What is the capital of France?", "answers": ["Paris"], "ctxs": [
        {"id": "a", "title": "France", "text": "Its capital is Paris."},
        {"id": "b", "title": "Lyon", "text": "Lyon is a city."},
        {"id": "c", "title": "Paris", "text": "A city."}]},    # third passage: beyond k=2
    {"id": 8, "question": "Is it raining?", "answers": ["yes"], "ctxs": [{"title": "Rain", "text": "Rain falls."}]},
]


def test_rows_by_hand():
    rows, counts = isrel_judgement_rows(((f"f:{n}", r) for n, r in enumerate(ROWS, 1)), k=2, dataset_name="pq")
    assert rows == [
        {"instruction": "What is the capital of France?", "input": "",
         "output": "[Retrieval]<paragraph>France\nIts capital is Paris.</paragraph>[Relevant]", "supervise": ["isrel"],
         "id": "pq-7/isrel0", "dataset_name": "pq"},
        {"instruction": "What is the capital of France?", "input": "",
         "output": "[Retrieval]<paragraph>Lyon\nLyon is a city.</paragraph>[Irrelevant]", "supervise": ["isrel"],
         "id": "pq-7/isrel1", "dataset_name": "pq"},
    ]
    # the yes/no question has no answer a passage can contain, and no subject: skipped, not guessed
    assert counts == {"questions": 2, "skipped_no_answers": 1, "[Relevant]": 1, "[Irrelevant]": 1}
    with pytest.raises(InputError, match="f:1: missing key 'question'"):
        isrel_judgement_rows([("f:1", {"id": 1, "ctxs": []})], k=2, dataset_name="pq")


def test_the_script_writes_rows_and_stats_and_refuses_a_file_without_answers(tmp_path):
    retrieved = write_jsonl(tmp_path / "retrieved.jsonl", ROWS)
    run_script("judgement_rows", f"retrieved={retrieved}", "k=10", "dataset_name=pq", f"output_dir={tmp_path / 'o'}")
    assert [r["id"] for r in read_jsonl(tmp_path / "o" / "train.jsonl")] == ["pq-7/isrel0", "pq-7/isrel1",
                                                                             "pq-7/isrel2"]
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert (stats["rows"], stats["[Relevant]"], stats["[Irrelevant]"]) == (3, 2, 1)  # "Paris" title holds it too
    bare = write_jsonl(tmp_path / "bare.jsonl", [{**ROWS[0], "answers": []}])
    proc = run_script("judgement_rows", f"retrieved={bare}", "dataset_name=pq", f"output_dir={tmp_path / 'b'}",
                      check=False)
    assert proc.returncode == 2 and "error:" in proc.stderr and "no judgement rows" in proc.stderr
    assert "Traceback" not in proc.stderr

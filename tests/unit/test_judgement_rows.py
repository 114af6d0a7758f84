"""critic.judgements and scripts/judgement_rows.py: one truthful IsRel judgement per retrieved passage, and with a
reader's answers an IsSup judgement of each answer."""

from __future__ import annotations

import json

import pytest

from critic.judgements import ReaderAnswer, judgement_rows
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
    rows, counts = judgement_rows(((f"f:{n}", r) for n, r in enumerate(ROWS, 1)), k=2, dataset_name="pq")
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
        judgement_rows([("f:1", {"id": 1, "ctxs": []})], k=2, dataset_name="pq")


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


READINGS = {"7#p1": ReaderAnswer("a", "It is Paris.", True), "7#p2": ReaderAnswer("b", "Lyon", False)}


def test_answer_rows_by_hand():
    rows, counts = judgement_rows(((f"f:{n}", r) for n, r in enumerate(ROWS, 1)), k=2, dataset_name="pq",
                                  readings=READINGS)
    # the layout SelfRAG.critique scores: passage block, IsRel, the reader's answer, IsSup; both tokens trained
    assert [(r["output"], r["supervise"], r["id"]) for r in rows] == [
        ("[Retrieval]<paragraph>France\nIts capital is Paris.</paragraph>[Relevant]It is Paris.[Fully supported]",
         ["isrel", "issup"], "pq-7/answer0"),
        ("[Retrieval]<paragraph>Lyon\nLyon is a city.</paragraph>[Irrelevant]Lyon[No support / Contradictory]",
         ["isrel", "issup"], "pq-7/answer1"),
    ]
    assert counts["[Fully supported]"] == 1 and counts["[No support / Contradictory]"] == 1
    # a right answer from a passage without the gold (the reader knew it) is still [Fully supported]: IsSup judges
    # the answer, IsRel the passage
    rows, _ = judgement_rows([("f:1", ROWS[0])], k=2, dataset_name="pq",
                             readings={**READINGS, "7#p2": ReaderAnswer("b", "Paris", True)})
    assert rows[1]["output"].endswith("[Irrelevant]Paris[Fully supported]")


def test_answer_rows_refuse_missing_or_mismatched_readings():
    missing = r"f:1: no reader answer for passage 2 \('7#p2'\).*split_passages.py.*k at least this k"
    with pytest.raises(InputError, match=missing):
        judgement_rows([("f:1", ROWS[0])], k=2, dataset_name="pq", readings={"7#p1": READINGS["7#p1"]})
    with pytest.raises(InputError, match="f:1: the reader's answer '7#p1' is from passage 'z', not 'a'"):
        judgement_rows([("f:1", ROWS[0])], k=1, dataset_name="pq", readings={"7#p1": ReaderAnswer("z", "x", True)})


def _reader_run(path, rows):
    """A scripts/evaluate.py output directory of a one-passage reader, as judgement_rows.py reads it."""
    path.mkdir()
    (path / "metrics.json").write_text(json.dumps({"primary_metric": "match"}))
    write_jsonl(path / "per_question.jsonl", [{"id": i, "match": m} for i, _, _, m in rows])
    write_jsonl(path / "predictions.jsonl", [{"id": i, "answer": a, "docs": [{"id": d}]} for i, d, a, _ in rows])
    return path


def test_the_script_writes_answer_rows_from_a_reader_run_and_refuses_a_run_of_several_passages(tmp_path):
    retrieved = write_jsonl(tmp_path / "retrieved.jsonl", ROWS)
    reader = _reader_run(tmp_path / "reader", [("7#p1", "a", "Paris", 1.0), ("7#p2", "b", "Lyon", 0.0)])
    run_script("judgement_rows", f"retrieved={retrieved}", "k=2", f"reader_run={reader}", "dataset_name=pq",
               f"output_dir={tmp_path / 'o'}")
    outputs = [r["output"] for r in read_jsonl(tmp_path / "o" / "train.jsonl")]
    assert outputs[0].endswith("[Relevant]Paris[Fully supported]")
    assert outputs[1].endswith("[Irrelevant]Lyon[No support / Contradictory]")
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert (stats["rows"], stats["[Fully supported]"], stats["reader_run"]) == (2, 1, str(reader))
    (reader / "predictions.jsonl").write_text(json.dumps({"id": "7#p1", "answer": "x", "docs": [{}, {}]}) + "\n")
    proc = run_script("judgement_rows", f"retrieved={retrieved}", "k=2", f"reader_run={reader}", "dataset_name=pq",
                      f"output_dir={tmp_path / 'b'}", check=False)
    assert proc.returncode == 2 and "predictions.jsonl:1: expected a scored row read from exactly one passage" \
        in proc.stderr
    assert "Traceback" not in proc.stderr

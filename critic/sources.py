"""Seed examples for labelling and annotation, read from the shared data formats.

One `SeedExample` per row: the instruction, the output a generator should learn to write, gold answers where the
data has them (for the answer-grounded teacher), the question's subject where known, and passages given with the row.
Formats are recognised by their fields:

- `question, answers[, s_wiki_title, ctxs]` (PopQA, TriviaQA, HotpotQA): instruction = the question, output =
  `answers[0]`, answers = `answers`, subject = `s_wiki_title`, passages = `ctxs`;
- `question, golden_answers` (FlashRAG NQ): the same with `golden_answers`;
- `question, choices, answerKey` (ARC): instruction = the ARC task instruction with its options, output =
  `"{letter}: {option text}"`, answers = (option text,);
- `instruction, output[, input]` (released Self-RAG rows, any instruction data): output with reflection tokens and
  passages stripped; no answers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfrag.inputs import NUMERIC_LABELS, gold_strings, passages_from_row
from selfrag.inputs import row_id as read_row_id
from selfrag.io import InputError, iter_jsonl
from selfrag.prompts import format_instruction
from selfrag.splits import question_key
from selfrag.tokens import strip_reflection
from selfrag.types import Passage


@dataclass(frozen=True)
class SeedExample:
    """One instruction/output pair to label or annotate.

    Attributes:
        id: `{dataset}-{row id}` (row id = the row's `id`, else its line number), unique across sources.
        dataset: the source's name (the `dataset_name` written to generator data).
        instruction: the instruction slot of the prompt.
        output: the target response, plain text (no reflection tokens).
        answers: gold answers (empty when the source has none).
        subject: the entity asked about, when the source names it (PopQA `s_wiki_title`).
        passages: passages that came with the row (`ctxs`), best first.
    """

    id: str
    dataset: str
    instruction: str
    output: str
    answers: tuple[str, ...] = ()
    subject: str = ""
    passages: tuple[Passage, ...] = ()


def _answers(row: dict[str, Any], where: str) -> tuple[str, ...]:
    """The row's gold answers (`selfrag.inputs.gold_strings`), stripped, blank ones dropped."""
    answers = tuple(a.strip() for a in gold_strings(row, ("answers", "golden_answers"), where=where) if a.strip())
    if not answers:
        raise InputError(f"{where}: the answer list is empty; drop the row or give at least one answer")
    return answers


def seed_from_row(row: dict[str, Any], dataset: str, *, where: str, default_id: str) -> SeedExample:
    """Turn one row of a supported format into a SeedExample (see the module table)."""
    row_id = f"{dataset}-{read_row_id(row, where, default_id, keys=('id',))}"
    if "instruction" in row and "output" in row:
        instruction = str(row["instruction"])
        if row.get("input"):
            instruction = f"{instruction}\n\n{row['input']}"
        return SeedExample(row_id, dataset, instruction, strip_reflection(str(row["output"])))
    if "question" not in row:
        raise InputError(f"{where}: unknown row format; expected `question` (QA/ARC) or `instruction` and `output`")
    question = str(row["question"]).strip()
    if "choices" in row and "answerKey" in row:
        choices = row["choices"]
        try:
            labels = [NUMERIC_LABELS.get(str(lab), str(lab)) for lab in choices["label"]]
            options = list(zip(labels, [str(t) for t in choices["text"]], strict=True))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{where}: `choices` must be {{text: [...], label: [...]}} of equal length") from None
        key = NUMERIC_LABELS.get(str(row["answerKey"]), str(row["answerKey"]))
        text = dict(options).get(key)
        if text is None:
            raise InputError(f"{where}: answerKey {row['answerKey']!r} is not one of the labels {labels}")
        instruction = format_instruction("arc_challenge", question, options)
        # The answer is checked by its text (a bare letter would "occur" in any passage with a "c" in it); the output
        # gives both, as the ARC scorer accepts "C: text".
        return SeedExample(row_id, dataset, instruction, f"{key}: {text}", answers=(text,))
    if "answers" not in row and "golden_answers" not in row:
        raise InputError(f"{where}: a question row needs `answers` or `golden_answers`")
    answers = _answers(row, where)
    passages = passages_from_row(row, where, row_id)
    return SeedExample(
        row_id, dataset, question, answers[0], answers=answers, subject=str(row.get("s_wiki_title") or ""),
        passages=passages,
    )


def read_seeds(path: str | os.PathLike[str], dataset: str | None = None, *, limit: int | None = None,
               offset: int = 0) -> Iterator[SeedExample]:
    """Yield the SeedExamples of a jsonl file (`dataset` defaults to the file's stem): rows `offset` onwards, at most
    `limit` of them (so two jobs can take disjoint slices of one file)."""
    dataset = dataset or Path(path).stem
    for count, (line_no, row) in enumerate(iter_jsonl(path)):
        if count < offset:
            continue
        if limit is not None and count >= offset + limit:
            return
        yield seed_from_row(row, dataset, where=f"{path}:{line_no}", default_id=str(line_no))


def sample_in_order(items: Sequence[SeedExample], size: int, seed: int) -> list[SeedExample]:
    """A seeded random sample of `size` items (all of them when there are fewer), kept in their original order."""
    if size >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), size))
    return [items[i] for i in chosen]


def _question_keys(paths: Sequence[str], where: str) -> set[str]:
    """The question keys (selfrag.splits.question_key) of the `question` fields of jsonl files."""
    keys: set[str] = set()
    for path in paths:
        for line_no, row in iter_jsonl(path):
            if not isinstance(row.get("question"), str):
                raise InputError(f"{path}:{line_no}: {where} needs a `question` on every row")
            keys.add(question_key(row["question"]))
    return keys


def seed_sources(config_path: str | os.PathLike[str], data_root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The `sources` list of a seed config (conf/seeds/*.yaml) read outside Hydra (benchmarks, tests), with
    `${data_root}` resolved to `data_root`; pass it to `read_source_list`."""
    from omegaconf import OmegaConf

    config = OmegaConf.load(config_path)
    config.data_root = str(data_root)
    return OmegaConf.to_container(config, resolve=True)["sources"]


def read_source_list(sources: Sequence[dict[str, Any]]) -> list[SeedExample]:
    """All seeds of a list of `{path, dataset, limit, offset, sample, seed, skip_yes_no, exclude_questions}` entries
    (the `sources` key).

    `offset`/`limit` take a slice of the file's rows; `skip_yes_no: true` drops rows whose gold answers are all
    yes/no (HotpotQA's comparison questions: no passage "contains" yes, so neither a teacher nor a reader can ground
    them in a passage); `sample` then keeps a random `sample` rows of what is left (seeded by `seed`, default 0; file
    order kept) — for files sorted by some key, such as PopQA by relation, where a leading slice would cover one
    relation only. `exclude_questions: [FILE, ...]` finally drops seeds whose instruction is the text of a question in
    those files (held-out splits: PopQA repeats texts such as "Who was the screenwriter for Pilot?" across
    entities). Ids are checked unique across sources.
    """
    seeds: list[SeedExample] = []
    for j, source in enumerate(sources):
        if "path" not in source:
            raise InputError(f"sources[{j}] needs a `path` (and optionally dataset, limit, offset, sample, seed)")
        rows = list(read_seeds(source["path"], source.get("dataset"), limit=source.get("limit"),
                               offset=source.get("offset") or 0))
        if source.get("skip_yes_no"):
            rows = [s for s in rows if not s.answers or any(a.strip().lower() not in ("yes", "no") for a in s.answers)]
        if source.get("sample") is not None:
            if int(source["sample"]) < 1:
                raise InputError(f"sources[{j}].sample must be a positive row count, got {source['sample']!r}")
            rows = sample_in_order(rows, int(source["sample"]), int(source.get("seed") or 0))
        if source.get("exclude_questions"):
            held_out = _question_keys(list(source["exclude_questions"]), f"sources[{j}].exclude_questions")
            rows = [s for s in rows if question_key(s.instruction) not in held_out]
        seeds += rows
    seen: set[str] = set()
    for seed in seeds:
        if seed.id in seen:
            raise InputError(f"seed id {seed.id!r} occurs twice; give each source a distinct `dataset` name")
        seen.add(seed.id)
    return seeds

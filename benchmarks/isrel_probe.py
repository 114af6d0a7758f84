"""How well a generator's IsRel token separates passages that hold the answer, over many passages (diagnosis only).

The reflection block of an evaluation measures IsRel AUROC only on the passages the decoder read (2 per PopQA
question by default: 200 on the dev split, a wide interval). This reads, for every question of a
`scripts/retrieve.py` output and each of its first `--k` passages, the score the decoder uses —
p(`[Relevant]`) renormalised against `[Irrelevant]`, read exactly from the full distribution right after the
passage block (`Backend.score`, transformers backend, fp32) — and prints per model:

- its AUROC against "the passage holds a gold answer" (the reflection block's label, `contains_answer`), with a
  95% bootstrap interval over questions (each resample draws whole questions, so a question's passages stay
  together);
- over the questions where some passage of the `--k` holds an answer, how often the passage IsRel ranks first holds
  one, against the retriever's first passage (the within-question choice the decoder makes).

The same two numbers are printed first for two references that need no model, on the same passages: the retriever's
own score, and (PopQA rows) "the passage's title is the question's subject" (`s_wiki_title`), the retriever's order
breaking ties. They say what a passage-judging signal reaches here without reading.

A model is an adapter directory (`final/` of a training run) or a training checkpoint (`checkpoints/step-N/` of a
LoRA run, given with `--template` = that run's `final/` or any adapter of the same configuration, whose config and
tokenizer it borrows; `selfrag.training.checkpoints.adapter_from_checkpoint`): so IsRel can be followed along one
run's checkpoints, a learning curve without re-decoding.

With `--save-dir DIR` each model's scores are also written to `DIR/<name>.jsonl`, one row per question in the shape of
a Self-RAG run's `predictions.jsonl` (`id`, and `candidates` with `passage_id` and `scores.rel`, in retrieval order,
no answers), so `benchmarks/reading_ceiling.py --selfrag` can ask what this IsRel would pick among the base's
per-passage answers. `--saved FILE` reads such a file back instead of probing a model: its numbers on the first `--k`
passages (each passage is scored alone, so a file saved at k=5 holds the scores of a k=2 probe too).
Used for docs/results/dev-retrain/README.md; never run it on a test split.

    python scripts/retrieve.py index_dir=INDEX retriever=bm25 data.path=data/splits/popqa_longtail/dev.jsonl \\
        retriever.k=10 output_dir=outputs/dev/popqa/retrieved_bm25_k10
    python benchmarks/isrel_probe.py --retrieved outputs/dev/popqa/retrieved_bm25_k10/retrieved.jsonl \\
        --model artifacts/selfrag-smollm2-135m --model outputs/train_generator/RUN/checkpoints/step-50 \\
        --template outputs/train_generator/RUN/final
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.stats import bootstrap_auroc
from selfrag import tokens as T
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.critique import isrel_score
from selfrag.decoding.factory import build_selfrag
from selfrag.inputs import passages_from_row, query_from_row
from selfrag.io import InputError, read_jsonl, write_jsonl_atomic
from selfrag.models.loading import ModelSpec, resolve_checkpoint
from selfrag.prompts import passage_block
from selfrag.retrieval.evaluation import contains_answer
from selfrag.training.checkpoints import adapter_from_checkpoint
from selfrag.types import Passage, ScoreRequest


def probe(adapter: Path, rows: list[dict], passages: list[tuple[Passage, ...]], *,
          temporary: bool) -> tuple[list[list[float]], float]:
    """IsRel scores [question][passage] of one adapter, and the seconds they took. For a `temporary` adapter (a
    converted checkpoint) the merged model built for it is removed from the cache afterwards (it is never reused)."""
    spec = ModelSpec(name="generator", packaged="smollm2_135m_instruct", add_reflection_tokens=True,
                     adapter=str(adapter.resolve()), prompt="chat")
    decoder = build_selfrag(spec, backend="hf", backend_options={"batch_size": 25, "dtype": "float32"},
                            prompt_style="chat", decoding=DecodingConfig(ndocs=max(map(len, passages))))
    group = decoder.codec.group(T.ISREL_GROUP)
    requests = []
    for n, (row, question_passages) in enumerate(zip(rows, passages, strict=True)):
        prompt = decoder.prompt_ids(query_from_row(row, "popqa", where=f"line {n + 1}", default_id=str(n)))
        for passage in question_passages:
            sequence = tuple(prompt) + tuple(decoder.codec.encode(passage_block(passage)))
            requests.append(ScoreRequest(sequence, ((len(sequence), group),)))
    start = time.perf_counter()
    answers = decoder.backend.score(requests)
    seconds = time.perf_counter() - start
    decoder.backend.close()
    if temporary:
        shutil.rmtree(resolve_checkpoint(spec))
    flat = [isrel_score(dict(zip(T.ISREL_GROUP, map(math.exp, a[0]), strict=True))) for a in answers]
    scores, at = [], 0
    for question_passages in passages:
        scores.append(flat[at:at + len(question_passages)])
        at += len(question_passages)
    return scores, seconds


def model_name(path: Path) -> str:
    """A file name for a model's saved scores: the run and the adapter (`RUN-final`, `RUN-step-50`)."""
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return f"{run.name}-{path.name}"


def score_rows(rows: list[dict], passages: list[tuple[Passage, ...]], scores: list[list[float]]) -> list[dict]:
    """One adapter's IsRel scores as predictions-shaped rows (see the module docstring)."""
    return [{"id": str(row["id"]),
             "candidates": [{"passage_id": p.id, "scores": {"rel": s}} for p, s in zip(ps, ss, strict=True)]}
            for row, ps, ss in zip(rows, passages, scores, strict=True)]


def saved_scores(path: Path, rows: list[dict], passages: list[tuple[Passage, ...]]) -> list[list[float]]:
    """The IsRel scores [question][passage] a `--save-dir` file holds for these questions and passages.

    Raises:
        InputError: the file lacks a question or one of its passages (saved from other retrieval or a smaller k).
    """
    saved = {str(row["id"]): {c["passage_id"]: c["scores"]["rel"] for c in row["candidates"]}
             for row in read_jsonl(path)}
    scores = []
    for row, question_passages in zip(rows, passages, strict=True):
        held = saved.get(str(row["id"]), {})
        missing = [p.id for p in question_passages if p.id not in held]
        if missing:
            raise InputError(f"{path}: no score for passage {missing[0]} of question {row['id']}; it was saved from "
                             "other retrieval or fewer passages: pass the --retrieved file and a --k it was saved at "
                             "or below")
        scores.append([held[p.id] for p in question_passages])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--retrieved", type=Path, required=True, help="scripts/retrieve.py output (rows with ctxs)")
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="an adapter directory or a LoRA checkpoint directory (repeatable; none: only the "
                             "references are printed)")
    parser.add_argument("--template", type=Path, help="adapter whose config and tokenizer checkpoints borrow")
    parser.add_argument("--k", type=int, default=10, help="passages per question (the first k retrieved)")
    parser.add_argument("--save-dir", type=Path, help="also write each model's scores to DIR/<run>-<adapter>.jsonl")
    parser.add_argument("--saved", type=Path, action="append", default=[],
                        help="a file --save-dir wrote: report its scores on the first --k passages (repeatable)")
    args = parser.parse_args()
    # Every path checked before anything is read or loaded: a typo costs one line, not a traceback minutes in.
    if not args.retrieved.is_file():
        parser.error(f"--retrieved {args.retrieved}: no such file; pass the retrieved.jsonl of scripts/retrieve.py")
    for path in args.saved:
        if not path.is_file():
            parser.error(f"--saved {path}: no such file; pass a file --save-dir wrote")
    for path in [*args.model, *([args.template] if args.template else [])]:
        if not path.is_dir():
            parser.error(f"{path}: no such directory; --model and --template take an adapter directory (final/ of "
                         "a training run) or a LoRA checkpoint (checkpoints/step-N/), by path")

    rows = list(read_jsonl(args.retrieved))
    passages = [passages_from_row(row, f"{args.retrieved}:{n + 1}", str(n))[:args.k] for n, row in enumerate(rows)]
    labels = [[contains_answer(p, row["answers"]) for p in ps] for row, ps in zip(rows, passages, strict=True)]
    holds = [i for i, ys in enumerate(labels) if any(ys)]
    n_pairs = sum(map(len, labels))
    print(f"questions: {len(rows)}, passages: {n_pairs}, holding a gold answer: {sum(map(sum, labels))}; "
          f"questions with one among the first {args.k}: {len(holds)}; "
          f"retriever's first passage holds one: {sum(labels[i][0] for i in holds)}")

    def report(name: str, scores: list[list[float]], seconds: float | None = None) -> None:
        value, low, high = bootstrap_auroc({str(i): list(zip(s, y, strict=True))
                                            for i, (s, y) in enumerate(zip(scores, labels, strict=True))})
        picked = sum(labels[i][int(np.argmax(scores[i]))] for i in holds)
        line = (f"{name}: AUROC {value:.3f} [{low:.3f}, {high:.3f}]; its top passage holds an answer "
                f"{picked}/{len(holds)}")
        print(line if seconds is None else f"{line}; p>0.5 for {sum(s > 0.5 for q in scores for s in q)}/{n_pairs} "
                                            f"passages ({seconds:.0f} s)")

    # references: what signals without a model reach on the same passages
    if all(p.score is not None for ps in passages for p in ps):
        report("reference, the retriever's score", [[p.score for p in ps] for ps in passages])
    if all(row.get("s_wiki_title") for row in rows):
        report("reference, the passage's title is the question's subject (PopQA s_wiki_title; retriever order "
               "breaks ties)", [[float(p.title.strip().lower() == row["s_wiki_title"].strip().lower()) - j * 1e-3
                                  for j, p in enumerate(ps)] for row, ps in zip(rows, passages, strict=True)])
    for path in args.saved:
        report(f"{path.stem} (saved): IsRel", saved_scores(path, rows, passages))
    with tempfile.TemporaryDirectory(prefix="isrel_probe-") as tmp:
        for model in args.model:
            adapter = model
            if (model / "model.safetensors").is_file():
                if args.template is None:
                    parser.error(f"{model} is a training checkpoint: pass --template ADAPTER_DIR")
                adapter = adapter_from_checkpoint(model, args.template,
                                                  Path(tmp) / model_name(model))
            scores, seconds = probe(adapter, rows, passages, temporary=adapter != model)
            report(f"{model}: IsRel", scores, seconds)
            if args.save_dir:
                write_jsonl_atomic(args.save_dir / f"{model_name(model)}.jsonl", score_rows(rows, passages, scores))


if __name__ == "__main__":
    main()

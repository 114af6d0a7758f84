"""Judgement-only training rows from retrieved passages (critic/judgements.py), to add to a generator's data.

IsRel rows (one passage, its truthful IsRel token):

    python scripts/retrieve.py index_dir=INDEX retriever=bm25 data.path=data/splits/popqa_longtail/train.jsonl \\
        retriever.k=10 output_dir=outputs/retrieved_train
    python scripts/judgement_rows.py retrieved=outputs/retrieved_train/retrieved.jsonl k=10 \\
        dataset_name=popqa_longtail_train output_dir=outputs/judgements
    python scripts/train_generator.py \\
        'data.train=[artifacts/generator-data-distilled/train.jsonl,outputs/judgements/train.jsonl]' ...

IsRel + IsSup rows on a reader's answers (`reader_run=`: a `method=standard_rag decoding.ndocs=1` run over the
split rows of the same retrieved file, e.g. the base model's, the reader of `decoding.reader=base`):

    python scripts/split_passages.py retrieved=outputs/retrieved_train/retrieved.jsonl k=5 \\
        output_dir=outputs/train_per_passage/split_k5
    python scripts/evaluate.py task=popqa data.path=outputs/train_per_passage/split_k5/rows.jsonl retriever=none \\
        backend=vllm batch_size=64 method=standard_rag model=smollm2_135m_instruct decoding.ndocs=1 \\
        output_dir=outputs/train_per_passage/base_k5
    python scripts/judgement_rows.py retrieved=outputs/retrieved_train/retrieved.jsonl k=5 \\
        reader_run=outputs/train_per_passage/base_k5 dataset_name=popqa_longtail_train \\
        output_dir=outputs/answer_judgements

Only training questions belong here: the rows carry the questions' passages and gold-derived labels.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from critic.judgements import ReaderAnswer, judgement_rows
from eval.runs import METRICS, load_run
from eval.stats import metric_scores
from selfrag.cli import run_or_exit
from selfrag.decoding.run import PREDICTIONS
from selfrag.io import InputError, iter_jsonl, write_jsonl_atomic, write_text_atomic
from selfrag.overrides import hydra_app
from selfrag.rundir import claim_output_dir
from selfrag.values import as_int, as_str


def reader_answers(run_dir: str) -> dict[str, ReaderAnswer]:
    """A reader run's answers by row id, each with its passage and whether it is right by the run's primary metric
    (`metrics.json` `primary_metric`, read from `per_question.jsonl` by `eval.runs.load_run`).

    Raises:
        InputError: not a scored evaluate run, a row without exactly one passage, or a row without its score (naming
            file and line).
    """
    run = load_run(run_dir)
    metric = run.metrics.get("primary_metric")
    if not isinstance(metric, str):
        raise InputError(f"{run.directory / METRICS}: no `primary_metric`; pass a scripts/evaluate.py output directory")
    scores = metric_scores(run.per_question, metric)
    answers = {}
    for n, row in iter_jsonl(run.directory / PREDICTIONS):
        docs = row.get("docs")
        if not isinstance(docs, list) or len(docs) != 1 or str(row.get("id")) not in scores:
            raise InputError(f"{run.directory / PREDICTIONS}:{n}: expected a scored row read from exactly one "
                             "passage (`docs`); run the reader with method=standard_rag decoding.ndocs=1 over split "
                             "rows")
        answers[str(row["id"])] = ReaderAnswer(str(docs[0].get("id")), str(row.get("answer") or ""),
                                               scores[str(row["id"])] >= 0.5)
    return answers


def run(cfg: DictConfig) -> Path:
    """Write `output_dir/train.jsonl` (the rows) and `output_dir/stats.json`; return the rows' path."""
    retrieved = as_str(cfg.retrieved, "retrieved")
    k = as_int(cfg.k, "k", minimum=1)
    dataset_name = as_str(cfg.dataset_name, "dataset_name")
    reader_run = as_str(cfg.get("reader_run"), "reader_run", allow_none=True)
    readings = reader_answers(reader_run) if reader_run else None
    rows, counts = judgement_rows(((f"{retrieved}:{n}", row) for n, row in iter_jsonl(retrieved)), k=k,
                                  dataset_name=dataset_name, readings=readings)
    if not rows:
        raise InputError(f"{retrieved}: no judgement rows ({counts['questions']} questions, "
                         f"{counts['skipped_no_answers']} without gold answers); pass a scripts/retrieve.py output "
                         "of a question file with `answers`")
    output_dir = claim_output_dir(cfg.output_dir)  # released when the process ends
    path = output_dir / "train.jsonl"
    write_jsonl_atomic(path, rows)
    stats = {"retrieved": retrieved, "k": k, "dataset_name": dataset_name, "reader_run": reader_run,
             "rows": len(rows), **counts}
    write_text_atomic(output_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    labels = ", ".join(f"{counts[label]} {label}" for label in counts if label.startswith("["))
    print(f"{len(rows)} judgement rows from {counts['questions']} questions ({labels}; "
          f"{counts['skipped_no_answers']} questions skipped: no gold answers)")
    print(f"rows: {path}")
    return path


@hydra_app("judgement_rows")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

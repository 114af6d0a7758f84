"""Judgement-only IsRel training rows from retrieved passages (critic/judgements.py), to add to a generator's data.

    python scripts/retrieve.py index_dir=INDEX retriever=bm25 data.path=data/splits/popqa_longtail/train.jsonl \\
        retriever.k=10 output_dir=outputs/retrieved_train
    python scripts/judgement_rows.py retrieved=outputs/retrieved_train/retrieved.jsonl k=10 \\
        dataset_name=popqa_longtail_train output_dir=outputs/judgements
    python scripts/train_generator.py \\
        'data.train=[artifacts/generator-data-distilled/train.jsonl,outputs/judgements/train.jsonl]' ...

Only training questions belong here: the rows carry the questions' passages and gold-derived labels.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from critic.judgements import isrel_judgement_rows
from selfrag.cli import run_or_exit
from selfrag.io import InputError, iter_jsonl, write_jsonl_atomic, write_text_atomic
from selfrag.overrides import hydra_app
from selfrag.rundir import claim_output_dir
from selfrag.values import as_int, as_str


def run(cfg: DictConfig) -> Path:
    """Write `output_dir/train.jsonl` (the rows) and `output_dir/stats.json`; return the rows' path."""
    retrieved = as_str(cfg.retrieved, "retrieved")
    k = as_int(cfg.k, "k", minimum=1)
    dataset_name = as_str(cfg.dataset_name, "dataset_name")
    rows, counts = isrel_judgement_rows(((f"{retrieved}:{n}", row) for n, row in iter_jsonl(retrieved)), k=k,
                                        dataset_name=dataset_name)
    if not rows:
        raise InputError(f"{retrieved}: no judgement rows ({counts['questions']} questions, "
                         f"{counts['skipped_no_answers']} without gold answers); pass a scripts/retrieve.py output "
                         "of a question file with `answers`")
    output_dir = claim_output_dir(cfg.output_dir)  # released when the process ends
    path = output_dir / "train.jsonl"
    write_jsonl_atomic(path, rows)
    stats = {"retrieved": retrieved, "k": k, "dataset_name": dataset_name, "rows": len(rows), **counts}
    write_text_atomic(output_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    print(f"{len(rows)} judgement rows from {counts['questions']} questions ({counts['[Relevant]']} [Relevant], "
          f"{counts['[Irrelevant]']} [Irrelevant]; {counts['skipped_no_answers']} questions skipped: no gold answers)")
    print(f"rows: {path}")
    return path


@hydra_app("judgement_rows")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

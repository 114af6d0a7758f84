"""One row per (question, passage) from a retrieved file, so that a reader answers from each passage alone.

    python scripts/split_passages.py retrieved=outputs/retrieved_train/retrieved.jsonl k=5 \\
        output_dir=outputs/train_per_passage/split_k5
    python scripts/evaluate.py task=popqa data.path=outputs/train_per_passage/split_k5/rows.jsonl retriever=none \\
        backend=vllm batch_size=64 method=standard_rag model=smollm2_135m_instruct decoding.ndocs=1 \\
        output_dir=outputs/train_per_passage/base_k5

Each row keeps its question's fields with one of its first k passages in `ctxs` and the id `{question id}#p{rank}`
(`selfrag.per_passage`). The reader run over these rows is what `scripts/judgement_rows.py reader_run=` turns into
answer judgements and what `benchmarks/reading_ceiling.py` measures; it gives the answers
`decoding.reader=base` writes from each passage.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from selfrag.cli import run_or_exit
from selfrag.inputs import passages_from_row
from selfrag.io import InputError, iter_jsonl, write_jsonl_atomic, write_text_atomic
from selfrag.overrides import hydra_app
from selfrag.per_passage import split_rows
from selfrag.rundir import claim_output_dir
from selfrag.values import as_int, as_str


def run(cfg: DictConfig) -> Path:
    """Write `output_dir/rows.jsonl` (the split rows) and `output_dir/stats.json`; return the rows' path.

    Raises:
        InputError: a row without an `id` or without a non-empty `ctxs` list, or a passage in it that is not an
            object with a `text` field (naming file and line).
    """
    retrieved = as_str(cfg.retrieved, "retrieved")
    k = as_int(cfg.k, "k", minimum=1)
    questions = []
    for n, row in iter_jsonl(retrieved):
        if row.get("id") is None or not isinstance(row.get("ctxs"), list) or not row["ctxs"]:
            raise InputError(f"{retrieved}:{n}: expected a row with an `id` and ranked passages in `ctxs`; pass a "
                             "scripts/retrieve.py output")
        passages_from_row(row, f"{retrieved}:{n}", str(row["id"]))  # each passage an object with `text`: refused now
        questions.append(row)
    rows = split_rows(questions, k)
    output_dir = claim_output_dir(cfg.output_dir)  # released when the process ends
    path = output_dir / "rows.jsonl"
    write_jsonl_atomic(path, rows)
    short = sum(len(row["ctxs"]) < k for row in questions)
    stats = {"retrieved": retrieved, "k": k, "questions": len(questions), "rows": len(rows),
             "questions_with_fewer_than_k_passages": short}
    write_text_atomic(output_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    print(f"{len(rows)} rows from {len(questions)} questions ({short} with fewer than {k} passages)")
    print(f"rows: {path}")
    return path


@hydra_app("split_passages")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

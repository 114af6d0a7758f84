"""Retrieve passages for every row of a question file; write the rows back with an official-format `ctxs` list.

    python scripts/retrieve.py index_dir=indexes/bm25 retriever=bm25 data.path=questions.jsonl retriever.k=10 \\
        output_dir=outputs/retrieved

`output_dir/retrieved.jsonl` feeds `scripts/infer.py data.path=...` (and any Self-RAG tool) unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import critic.relevance  # noqa: F401  (registers retriever.rerank=critic)
from selfrag.cli import run_or_exit
from selfrag.decoding.frontend_models import open_front_end
from selfrag.inputs import query_from_row
from selfrag.io import InputError, iter_jsonl, write_jsonl_atomic
from selfrag.overrides import hydra_app
from selfrag.prompts import TASKS
from selfrag.retrieval.factory import RETRIEVERS, front_end_config, open_retriever
from selfrag.rundir import claim_output_dir
from selfrag.values import as_choice, as_int, as_str


def run(cfg: DictConfig) -> Path:
    """Write `output_dir/retrieved.jsonl`; return its path."""
    options, front = front_end_config(OmegaConf.to_container(cfg.retriever, resolve=True))
    kind = as_choice(options.pop("name"), "retriever", RETRIEVERS)
    options.pop("index_dir", None)
    k = as_int(options.get("k"), "retriever.k", minimum=1)
    batch_size = as_int(cfg.batch_size, "batch_size", minimum=1)
    limit = as_int(cfg.data.limit, "data.limit", minimum=1, allow_none=True)
    task = as_choice(cfg.task, "task", TASKS)
    index_dir = as_str(cfg.index_dir, "index_dir")
    data_path = as_str(cfg.data.path, "data.path")
    rows = []
    for line_no, row in iter_jsonl(data_path):
        if limit is not None and len(rows) >= limit:
            break
        query = query_from_row(row, task, where=f"{data_path}:{line_no}", default_id=str(line_no))
        rows.append((row, query.question))
    if not rows:
        raise InputError(f"{data_path}: no input rows (the file is empty or blank); check data.path")
    retriever = open_retriever(kind, index_dir=index_dir, corpus_path=None, options=options)
    retriever = open_front_end(retriever, front)
    started = time.perf_counter()
    out_rows = []
    for start in tqdm(range(0, len(rows), batch_size), desc="retrieving", unit="batch"):
        batch = rows[start : start + batch_size]
        for (row, query), passages in zip(batch, retriever.batch_search([q for _, q in batch], k)):
            ctxs = [{"id": p.id, "title": p.title, "text": p.text, "score": p.score} for p in passages]
            searched = getattr(retriever, "queries_for", lambda _: None)(query)
            out_rows.append({**row, "ctxs": ctxs, **({"queries": searched} if searched is not None else {})})
    seconds = time.perf_counter() - started
    out = claim_output_dir(cfg.output_dir) / "retrieved.jsonl"  # released when the process ends
    write_jsonl_atomic(out, out_rows)
    print(f"{len(out_rows)} rows, {k} passages each, in {seconds:.1f}s ({len(out_rows) / max(seconds, 1e-9):.0f} q/s)")
    print(f"retrieved: {out}")
    return out


@hydra_app("retrieve")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

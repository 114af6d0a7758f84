"""Retrieve passages for every row of a question file; write the rows back with an official-format `ctxs` list.

    python scripts/retrieve.py index_dir=indexes/bm25 retriever=bm25 data.path=questions.jsonl retriever.k=10 \\
        output_dir=outputs/retrieved

`output_dir/retrieved.jsonl` feeds `scripts/infer.py data.path=...` (and any Self-RAG tool) unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from selfrag.cli import run_or_exit
from selfrag.inputs import query_from_row
from selfrag.io import InputError, iter_jsonl, write_jsonl_atomic
from selfrag.retrieval.factory import open_retriever


def run(cfg: DictConfig) -> Path:
    """Write `output_dir/retrieved.jsonl`; return its path."""
    options = OmegaConf.to_container(cfg.retriever, resolve=True)
    kind = options.pop("name")
    options.pop("index_dir", None)
    k = int(options.get("k") or 0)
    if k < 1:
        raise InputError(f"retriever.k must be >= 1, got {cfg.retriever.k}")
    rows = []
    for line_no, row in iter_jsonl(cfg.data.path):
        if cfg.data.limit is not None and len(rows) >= cfg.data.limit:
            break
        query = query_from_row(row, cfg.task, where=f"{cfg.data.path}:{line_no}", default_id=str(line_no))
        rows.append((row, query.question))
    retriever = open_retriever(kind, index_dir=cfg.index_dir, corpus_path=None, options=options)
    started = time.perf_counter()
    out_rows = []
    for start in tqdm(range(0, len(rows), cfg.batch_size), desc="retrieving", unit="batch"):
        batch = rows[start : start + cfg.batch_size]
        for (row, _), passages in zip(batch, retriever.batch_search([q for _, q in batch], k)):
            ctxs = [{"id": p.id, "title": p.title, "text": p.text, "score": p.score} for p in passages]
            out_rows.append({**row, "ctxs": ctxs})
    seconds = time.perf_counter() - started
    out = Path(cfg.output_dir) / "retrieved.jsonl"
    write_jsonl_atomic(out, out_rows)
    print(f"{len(out_rows)} rows, {k} passages each, in {seconds:.1f}s ({len(out_rows) / max(seconds, 1e-9):.0f} q/s)")
    print(f"retrieved: {out}")
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="retrieve")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

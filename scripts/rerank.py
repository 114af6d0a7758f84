"""Re-rank a saved predictions.jsonl under new reward weights / retrieval threshold without running the model.

    python scripts/rerank.py predictions=DIR/predictions.jsonl decoding.w_use=1.0 decoding.threshold=0.4 output_dir=OUT
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

from selfrag.cli import run_or_exit
from selfrag.decoding.critique import RewardWeights
from selfrag.decoding.records import rerank
from selfrag.io import InputError, iter_jsonl, write_jsonl_atomic


def run(cfg: DictConfig) -> Path:
    """Write `output_dir/predictions.jsonl` re-ranked from `cfg.predictions`; return its path."""
    d = cfg.decoding
    try:
        weights = RewardWeights(w_rel=d.w_rel, w_sup=d.w_sup, w_use=d.w_use, use_seqscore=d.use_seqscore)
    except ValueError as err:
        raise InputError(str(err)) from None
    rows = [rerank(row, weights, mode=d.mode, threshold=d.threshold)
            for _, row in tqdm(iter_jsonl(cfg.predictions), desc="re-ranking", unit="q")]
    out = Path(cfg.output_dir) / "predictions.jsonl"
    if out.resolve() == Path(cfg.predictions).resolve():
        raise InputError("output_dir must differ from the directory of the input predictions")
    write_jsonl_atomic(out, rows)
    old_answers = {row["id"]: row["answer"] for _, row in iter_jsonl(cfg.predictions)}
    changed = sum(row["answer"] != old_answers[row["id"]] for row in rows)
    retrieved = sum(row["retrieved"] for row in rows)
    print(f"{len(rows)} predictions re-ranked: {changed} answers changed, retrieval rate {retrieved}/{len(rows)}")
    print(f"predictions: {out}")
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="rerank")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

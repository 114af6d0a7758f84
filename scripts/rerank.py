"""Re-rank a saved predictions.jsonl under new reward weights / retrieval threshold without running the model.

    python scripts/rerank.py predictions=DIR/predictions.jsonl decoding.w_use=1.0 decoding.threshold=0.4 output_dir=OUT

The weights, mode and threshold are checked by the same functions as `infer`'s (`selfrag.decoding.config`), so both
accept and refuse the same values. `output_dir` may not be the input's directory (checked before Hydra writes there).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from selfrag.cli import run_or_exit
from selfrag.decoding.config import parse_mode, parse_threshold, parse_weights
from selfrag.decoding.records import rerank
from selfrag.io import InputError, iter_jsonl, write_jsonl_atomic
from selfrag.overrides import hydra_app
from selfrag.rundir import claimed_output_dir, refuse_input_dir
from selfrag.values import as_str


def run(cfg: DictConfig) -> Path:
    """Write `output_dir/predictions.jsonl` re-ranked from `cfg.predictions`; return its path."""
    d = OmegaConf.to_container(cfg.decoding, resolve=True)
    weights = parse_weights(d["w_rel"], d["w_sup"], d["w_use"], d["use_seqscore"])
    mode = parse_mode(d["mode"], allow_none=True)
    threshold = parse_threshold(d["threshold"], allow_none=True)
    source = Path(str(as_str(cfg.predictions, "predictions")))
    refuse_input_dir(cfg.output_dir, {"predictions": source})
    rows, changed = [], 0
    for line_no, row in tqdm(iter_jsonl(source), desc="re-ranking", unit="q"):
        try:
            new = rerank(row, weights, mode=mode, threshold=threshold)
        except InputError as err:
            raise InputError(f"{source}:{line_no}: {err}") from None
        changed += new["answer"] != row.get("answer")
        rows.append(new)
    if not rows:
        raise InputError(f"{source}: no predictions (the file is empty); pass the predictions.jsonl of an infer run")
    with claimed_output_dir(cfg.output_dir) as output_dir:
        out = output_dir / "predictions.jsonl"
        write_jsonl_atomic(out, rows)
    retrieved = sum(row["retrieved"] for row in rows)
    print(f"{len(rows)} predictions re-ranked: {changed} answers changed, retrieval rate {retrieved}/{len(rows)}")
    print(f"predictions: {out}")
    return out


@hydra_app("rerank")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

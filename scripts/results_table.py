"""A results table over saved evaluate runs: per-run mean with a bootstrap CI, retrieval and well-formed rates, and
the paired difference from the first run with its CI.

    python scripts/results_table.py 'runs=[outputs/evaluate/A,outputs/evaluate/B]' [metric=match] output_dir=DIR

Runs over different question sets (or tasks) are refused with one `error:` line (exit status 2).
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from eval.runs import load_run
from eval.tables import results_markdown, results_rows
from selfrag.cli import run_or_exit
from selfrag.io import InputError, write_text_atomic
from selfrag.overrides import hydra_app


def run(cfg: DictConfig) -> Path:
    """Write results.md and results.json for the runs `cfg.runs`; return the results.md path."""
    if isinstance(cfg.runs, str):
        raise InputError("runs must be a list of evaluate output_dirs, e.g. 'runs=[outputs/a,outputs/b]'")
    rows = results_rows([load_run(r) for r in cfg.runs], metric=cfg.metric, n_resamples=cfg.n_resamples,
                        confidence=cfg.confidence, seed=cfg.seed)
    table = results_markdown(rows, confidence=cfg.confidence)
    output_dir = Path(cfg.output_dir)
    write_text_atomic(output_dir / "results.json", json.dumps(rows, indent=2) + "\n")
    path = output_dir / "results.md"
    write_text_atomic(path, table)
    print(table)
    print(f"table: {path}")
    return path


@hydra_app("results_table")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

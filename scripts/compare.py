"""Paired comparison of two evaluate runs: bootstrap CI of the metric difference and per-question win/loss; for two
short-form Self-RAG runs also of each reflection AUROC (IsRel, IsSup, final score; whole questions resampled).

    python scripts/compare.py a=outputs/evaluate/RUN_A b=outputs/evaluate/RUN_B [metric=match] output_dir=DIR

Runs over different question sets (or tasks) are refused with one `error:` line (exit status 2).
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from eval.runs import compare_reflection, compare_runs, comparison_line, load_run, reflection_comparison_lines
from eval.tasks import get_task, read_golds
from selfrag.cli import run_or_exit
from selfrag.io import write_jsonl_atomic, write_text_atomic
from selfrag.overrides import hydra_app
from selfrag.rundir import claim_output_dir
from selfrag.values import as_float, as_int, as_str


def run(cfg: DictConfig) -> Path:
    """Write comparison.json (with a `reflection` block where both runs have one) and win_loss.jsonl for runs
    `cfg.a` and `cfg.b`; return the comparison path."""
    n_resamples = as_int(cfg.n_resamples, "n_resamples", minimum=1)
    confidence = as_float(cfg.confidence, "confidence", minimum=0.01, maximum=0.999, what="a probability")
    seed = as_int(cfg.seed, "seed")
    metric = as_str(cfg.metric, "metric", allow_none=True)
    a, b = load_run(as_str(cfg.a, "a")), load_run(as_str(cfg.b, "b"))
    comparison, rows = compare_runs(a, b, metric=metric, n_resamples=n_resamples, confidence=confidence, seed=seed)
    if "reflection" in a.metrics and "reflection" in b.metrics:  # both short-form Self-RAG runs
        task = get_task(comparison["task"])
        golds = read_golds(task, as_str(cfg.gold, "gold", allow_none=True) or a.metrics["data"]["gold"])
        comparison["reflection"] = compare_reflection(a, b, task, golds, n_resamples=n_resamples,
                                                      confidence=confidence, seed=seed)
    output_dir = claim_output_dir(cfg.output_dir)  # released when the process ends
    path = output_dir / "comparison.json"
    write_text_atomic(path, json.dumps(comparison, indent=2) + "\n")
    write_jsonl_atomic(output_dir / "win_loss.jsonl", rows)
    print(f"a: {a.label}\nb: {b.label}")
    print(comparison_line(comparison))
    for line in reflection_comparison_lines(comparison.get("reflection", {})):
        print(line)
    print(f"comparison: {path}")
    return path


@hydra_app("compare")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

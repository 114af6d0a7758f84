"""Threshold sweep and reward-weight grid over a saved evaluate run, without the model (`eval.sweeps`).

    python scripts/sweep.py run=outputs/evaluate/RUN output_dir=DIR [metric=match] [grid.w_rel=[0,1,2]] ...

Writes threshold_sweep.{json,md,png}, weight_grid.{json,md,png} and, for a short-form run, reflection.{json,md},
reliability.png (the reflection diagnostics of `eval.reflection` under the run's weights) and ndocs_sweep.{json,md}
(the metric when only the first 1..ndocs passages' candidates compete, under the threshold sweep's weights; skipped
for a corrective run). The threshold sweep needs a short-form run made with decoding.score_all_paths=true; for a
long-form run only the weight grid is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from eval.reflection import reflection_diagnostics, reflection_markdown
from eval.runs import load_run
from eval.sweeps import (
    RerankScorer,
    best_point,
    ndocs_sweep,
    ndocs_table,
    plot_reliability,
    plot_threshold_sweep,
    plot_weight_grid,
    threshold_range,
    threshold_sweep,
    threshold_table,
    weight_grid,
    weight_table,
)
from eval.tasks import get_task, read_golds
from selfrag.cli import run_or_exit
from selfrag.decoding.config import parse_threshold, parse_weights
from selfrag.decoding.critique import RewardWeights
from selfrag.io import InputError, write_text_atomic
from selfrag.overrides import hydra_app
from selfrag.rundir import claim_output_dir
from selfrag.values import as_bool, as_float, as_float_list, as_str


def _write(output_dir: Path, stem: str, record: dict, table: str) -> None:
    write_text_atomic(output_dir / f"{stem}.json", json.dumps(record, indent=2) + "\n")
    write_text_atomic(output_dir / f"{stem}.md", table)


def run(cfg: DictConfig) -> Path:
    """Write the sweeps of `cfg.run` into `cfg.output_dir`; return that directory."""
    # The sweep settings are checked before the run is read; the weights that default to the run's own after.
    g = OmegaConf.to_container(cfg.grid, resolve=True)
    grid = {name: as_float_list(g[name], f"grid.{name}", minimum=0.0) for name in ("w_rel", "w_sup", "w_use")}
    grid_threshold = parse_threshold(g["threshold"], "grid.threshold", allow_none=True)
    t = OmegaConf.to_container(cfg.thresholds, resolve=True)
    start, stop, step = (as_float(t[k], f"thresholds.{k}") for k in ("start", "stop", "step"))
    thresholds = threshold_range(start, stop, step)
    saved = load_run(as_str(cfg.run, "run"))
    info = saved.metrics
    if info.get("method", "selfrag") != "selfrag":
        raise InputError(f"{saved.directory} is a method={info['method']} run; sweeps re-rank the saved candidates "
                         "of a method=selfrag run")
    task = get_task(info["task"])
    metric = cfg.metric or info.get("primary_metric") or task.metrics[0]
    gold_path = cfg.gold or info["data"]["gold"]
    golds = read_golds(task, gold_path)
    scorer = RerankScorer(saved.predictions(), task, golds)
    decoding = info["decoding"]
    output_dir = claim_output_dir(cfg.output_dir)  # released when the process ends
    header = {"run": str(saved.directory), "task": task.name, "metric": metric, "gold": str(gold_path)}
    title = f"{task.name}, {info.get('model')}: {metric}"

    def pick(override, key):
        return decoding[key] if override is None else override

    w = OmegaConf.to_container(cfg.weights, resolve=True)
    weights = parse_weights(pick(w["w_rel"], "w_rel"), pick(w["w_sup"], "w_sup"), pick(w["w_use"], "w_use"),
                            pick(w["use_seqscore"], "use_seqscore"), prefix="weights")
    grid_seqscore = as_bool(pick(g["use_seqscore"], "use_seqscore"), "grid.use_seqscore")
    if any("beams" in row for row in scorer.rows):
        print("long-form run: skipping the threshold sweep (the beam search is not repeated); weight grid only")
    else:
        run_weights = RewardWeights(decoding["w_rel"], decoding["w_sup"], decoding["w_use"], decoding["use_seqscore"])
        block = reflection_diagnostics(task, scorer.rows, golds, saved.per_question, run_weights)
        _write(output_dir, "reflection", {**header, **block}, f"# {title}\n\n{reflection_markdown(block)}\n")
        plot_reliability(block, output_dir / "reliability.png", title=title)
        points = threshold_sweep(scorer, thresholds, weights)
        table = threshold_table(points, metric)
        best = best_point(points, metric)
        _write(output_dir, "threshold_sweep", {**header, "weights": points[0].as_json() | {"threshold": None},
                                               "best": best.as_json(), "points": [p.as_json() for p in points]},
               f"# Threshold sweep: {title}\n\n{table}")
        plot_threshold_sweep(points, metric, output_dir / "threshold_sweep.png", title=title)
        print(table)
        if decoding.get("corrective"):
            print("corrective run: skipping the ndocs sweep (retried candidates are not in retrieval order)")
        else:
            points = ndocs_sweep(scorer, range(1, int(decoding["ndocs"]) + 1), weights)
            table = ndocs_table(points, metric)
            _write(output_dir, "ndocs_sweep", {**header, "weights": points[0].as_json() | {"ndocs": None},
                                               "best": best_point(points, metric).as_json(),
                                               "points": [p.as_json() for p in points]},
                   f"# Passages competing (ndocs): {title}\n\nRetrieval decisions as saved.\n\n{table}")
            print(table)
    points = weight_grid(scorer, grid["w_rel"], grid["w_sup"], grid["w_use"], use_seqscore=grid_seqscore,
                         threshold=grid_threshold)
    table = weight_table(points, metric)
    best = best_point(points, metric)
    _write(output_dir, "weight_grid", {**header, "threshold": grid_threshold, "best": best.as_json(),
                                       "points": [p.as_json() for p in points]},
           f"# Reward-weight grid: {title}\n\nRetrieval decisions: "
           + ("as saved" if grid_threshold is None else f"re-decided at threshold {grid_threshold}")
           + f"\n\n{table}")
    plot_weight_grid(points, metric, output_dir / "weight_grid.png", title=title)
    print(table)
    print(f"sweeps: {output_dir}")
    return output_dir


@hydra_app("sweep")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

"""The critic's learning curve: Cohen's kappa against the teacher, per aspect, after N training examples.

Evaluates every `snapshots/step-N` of one `scripts/train_critic.py` run (written with `finetune.snapshot_steps=[...]`
and, for a fair curve, `finetune.lr_scheduler=constant_with_warmup`: each snapshot is then what a run of N steps would
have produced) and its `final/` on a dev file of critic rows, fits kappa against log2(examples) per aspect, and says
how many examples that line puts at the target kappa. Writes `curve.json`, `curve.md` and `curve.png` to --out.

    python benchmarks/critic_learning_curve.py outputs/train_critic/RUN --dev DEV.jsonl --out docs/results/critic-curve

The extrapolation is a straight line in log(examples) through measured points: a rough guide to the data (and CPU
time, from the run's own seconds per step) a target would take, not a promise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from critic.critic_model import open_critic
from critic.evaluation import evaluate_critic
from selfrag.artifacts import display_path
from selfrag.io import read_jsonl, write_text_atomic
from selfrag.models.loading import ModelSpec

TARGET = 0.8


def _models(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, model dir) for each snapshot and the final model, by step."""
    found = [(int(p.name.removeprefix("step-")), p) for p in (run_dir / "snapshots").glob("step-*") if p.is_dir()]
    summary = run_dir / "train_summary.json"
    if summary.is_file() and (run_dir / "final").is_dir():  # a run stopped early has only its snapshots
        found.append((int(json.loads(summary.read_text())["steps"]), run_dir / "final"))
    return sorted(found)


def seconds_per_step(run_dir: Path) -> float:
    """Training seconds per optimizer step, from the run's own log (tokens / tokens_per_s of each logged window)."""
    rows = [r for r in read_jsonl(run_dir / "train_log.jsonl") if "tokens_per_s" in r]
    return sum(r["tokens"] / r["tokens_per_s"] for r in rows) / max(rows[-1]["step"], 1)


def fit(points: list[tuple[int, float]], target: float = TARGET) -> dict[str, Any]:
    """Least-squares kappa = a + b * log2(examples) over `points`; the examples where the line reaches `target`
    (None when the slope is not positive, or fewer than two points)."""
    if len(points) < 2:
        return {"intercept": None, "slope_per_doubling": None, "examples_for_target": None}
    x = np.log2([n for n, _ in points])
    y = np.array([k for _, k in points])
    slope, intercept = np.polyfit(x, y, 1)
    needed = None if slope <= 0 else float(2 ** ((target - intercept) / slope))
    return {"intercept": float(intercept), "slope_per_doubling": float(slope), "examples_for_target": needed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a train_critic output_dir with snapshots/")
    parser.add_argument("--dev", type=Path, required=True, help="critic rows to measure on (label.py's critic_dev)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="smollm2_135m_instruct", help="the packaged base the run trained")
    args = parser.parse_args()

    run_json = json.loads((args.run / "train_run.json").read_text())
    config = run_json.get("config", run_json)
    rows_per_step = int(config["batch_size"]) * int(config["grad_accum"])
    step_seconds = seconds_per_step(args.run)
    dev_rows = read_jsonl(args.dev)
    measured: list[dict[str, Any]] = []
    for step, model_dir in _models(args.run):
        spec = ModelSpec(name=f"critic-step-{step}", packaged=args.model, add_reflection_tokens=True,
                         adapter=str(model_dir))
        critic = open_critic(spec, "hf")
        report = evaluate_critic(critic, dev_rows, progress=False)
        critic.backend.close()
        measured.append({"step": step, "examples": step * rows_per_step,
                         "kappa": {a: r.cohen_kappa for a, r in report.items()},
                         "accuracy": {a: r.agreement for a, r in report.items()},
                         "n": {a: r.n for a, r in report.items()}})
        print(f"step {step}: " + ", ".join(f"{a} kappa {r.cohen_kappa:.3f}" for a, r in report.items()), flush=True)

    aspects = sorted({a for m in measured for a in m["kappa"]})
    fits = {a: fit([(m["examples"], m["kappa"][a]) for m in measured if m["kappa"].get(a) is not None])
            for a in aspects}
    for block in fits.values():
        needed = block["examples_for_target"]
        block["cpu_hours_for_target"] = None if needed is None else needed / rows_per_step * step_seconds / 3600
    result = {"run": display_path(args.run), "dev": display_path(args.dev), "rows_per_step": rows_per_step,
              "seconds_per_step": step_seconds, "target_kappa": TARGET, "points": measured, "fits": fits}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "curve.json", json.dumps(result, indent=2) + "\n")

    lines = ["| step | training examples | " + " | ".join(f"{a} kappa" for a in aspects) + " |",
             "|---:|---:|" + "---:|" * len(aspects)]
    for m in measured:
        cells = ["n/a" if m["kappa"].get(a) is None else f"{m['kappa'][a]:.3f}" for a in aspects]
        lines.append(f"| {m['step']} | {m['examples']:,} | " + " | ".join(cells) + " |")
    lines += ["", f"| aspect | kappa gained per doubling | examples for kappa {TARGET} (extrapolated) | CPU hours "
              "at this run's speed |", "|---|---:|---:|---:|"]
    for a in aspects:
        f = fits[a]
        slope = "n/a" if f["slope_per_doubling"] is None else f"{f['slope_per_doubling']:+.3f}"
        needed = "not reached (flat)" if f["examples_for_target"] is None else f"{f['examples_for_target']:,.0f}"
        hours = "n/a" if f["cpu_hours_for_target"] is None else f"{f['cpu_hours_for_target']:.1f}"
        lines.append(f"| {a} | {slope} | {needed} | {hours} |")
    write_text_atomic(args.out / "curve.md", "\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for a in aspects:
        pts = [(m["examples"], m["kappa"][a]) for m in measured if m["kappa"].get(a) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=a)
    ax.axhline(TARGET, color="grey", linestyle="--", linewidth=1, label=f"target {TARGET}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("Cohen's kappa vs teacher (dev)")
    ax.set_ylim(min(0.0, *(m["kappa"][a] or 0 for m in measured for a in aspects)) - 0.05, 1.0)
    ax.legend()
    ax.set_title(f"Critic learning curve ({len(measured)} points)")
    fig.tight_layout()
    fig.savefig(args.out / "curve.png", dpi=120)


if __name__ == "__main__":
    main()

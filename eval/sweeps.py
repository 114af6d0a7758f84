"""Sweeps over a saved Self-RAG run without the model: the task metric and retrieval rate over adaptive-retrieval
thresholds, over the number of passages whose candidates compete (`ndocs`), and over a grid of reward weights, as
data, markdown tables and PNG plots.

Each setting re-decides every saved prediction with `selfrag.decoding.records.rerank` (retrieval re-decided from the
saved p_retrieve, the answer re-picked among the saved candidates from their raw group probabilities) and scores the
result with the task (`eval.tasks`). Re-thresholding needs both paths of every question (the no-retrieval answer
and the passage candidates): a run made with `decoding.score_all_paths=true`. Long-form runs re-rank their saved
final beams, so only the weight grid applies to them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.components import Unavailable
from eval.tasks import Scores, Task, jsonable, require_golds
from selfrag.decoding.critique import RewardWeights
from selfrag.decoding.records import rerank
from selfrag.io import InputError


@dataclass(frozen=True)
class SweepPoint:
    """The outcome of one setting.

    Attributes:
        threshold: the adaptive-retrieval threshold applied (None: each saved retrieval decision kept).
        weights: the reward weights applied.
        retrieval_rate: fraction of questions answered with retrieval under this setting.
        metrics: the task's metric means (`Unavailable` where they are), with `n`.
        ndocs: the number of passages whose candidates competed (None: all that were saved).
    """

    threshold: float | None
    weights: RewardWeights
    retrieval_rate: float
    metrics: dict[str, Any]
    ndocs: int | None = None

    def value(self, metric: str) -> float:
        """The mean of `metric` (InputError when the task has no such metric or it was not computed)."""
        if metric not in self.metrics:
            names = [k for k in self.metrics if k != "n"]
            raise InputError(f"metric {metric!r} is not one of this task's metrics {names}; set metric=NAME")
        value = self.metrics[metric]
        if isinstance(value, Unavailable):
            raise InputError(f"metric {metric!r} is unavailable ({value.reason}); sweep another metric (metric=NAME)")
        return float(value)

    def as_json(self) -> dict[str, Any]:
        """A plain JSON object: threshold, weights, retrieval_rate, n and every metric."""
        w = self.weights
        return {"threshold": self.threshold, "ndocs": self.ndocs, "w_rel": w.w_rel, "w_sup": w.w_sup,
                "w_use": w.w_use, "use_seqscore": w.use_seqscore, "retrieval_rate": self.retrieval_rate,
                **jsonable(self.metrics)}


def threshold_range(start: float, stop: float, step: float) -> list[float]:
    """`start`, `start + step`, ... up to and including `stop` (rounded to 10 places, so 0.05 steps land on 0.35).

    Raises:
        InputError: step <= 0, start > stop, or values outside [0, 1].
    """
    if step <= 0 or start > stop or start < 0 or stop > 1:
        raise InputError(f"thresholds need 0 <= start <= stop <= 1 and step > 0, got start={start} stop={stop} "
                         f"step={step}")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 10) for i in range(count)]


def check_sweepable(rows: Sequence[Mapping[str, Any]], *, rethreshold: bool) -> None:
    """Check that saved predictions can be re-decided: Self-RAG rows with candidates and, to re-threshold, short form
    with both paths decoded for every question that had passages.

    Raises:
        InputError: no rows, baseline rows, long form (when re-thresholding), or a missing path (naming the fix).
    """
    if not rows:
        raise InputError("the run has no predictions to sweep")
    if any(not r.get("candidates") and "beams" not in r for r in rows):
        raise InputError("these predictions have no saved candidates (a no_retrieval / standard_rag baseline?); "
                         "sweeps re-rank the candidates of a method=selfrag run")
    if not rethreshold:
        return
    if any("beams" in r for r in rows):
        raise InputError("long-form predictions cannot be re-thresholded (the beam search is not repeated); "
                         "only the weight grid applies to them")
    one_path = [r["id"] for r in rows if r.get("p_retrieve") is None
                or (any(c["passage_id"] is not None for c in r["candidates"])
                    and not any(c["passage_id"] is None for c in r["candidates"]))]
    if one_path:
        raise InputError(f"{len(one_path)} of {len(rows)} questions were decoded on the retrieval path only "
                         f"(e.g. id {one_path[0]!r}), so other thresholds cannot be applied; re-run evaluate with "
                         "decoding.score_all_paths=true")


class RerankScorer:
    """Re-decides saved predictions under a setting and scores them, remembering each question's scores per answer
    (a sweep re-picks among a few candidates, so most settings re-use scores already computed).

    Args:
        rows: the saved `predictions.jsonl` rows of a Self-RAG run.
        task: the task that scores them.
        golds: question id -> gold (`eval.tasks.read_golds`); every row needs one.

    Raises:
        InputError: a row without a gold.
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]], task: Task, golds: Mapping[str, Any]) -> None:
        require_golds(rows, golds)
        self.rows = list(rows)
        self.task = task
        self.golds = golds
        self._cache: dict[tuple[str, str, tuple[Any, ...]], Scores] = {}

    def point(self, weights: RewardWeights, *, threshold: float | None = None, ndocs: int | None = None) -> SweepPoint:
        """Re-decide every row under `weights` (and, if given, the adaptive `threshold`, and only the first `ndocs`
        passages' candidates) and score the result."""
        per_question: dict[str, Scores] = {}
        retrieved = 0
        for row in self.rows:
            new = rerank(row, weights, mode="adaptive" if threshold is not None else None, threshold=threshold,
                         ndocs=ndocs)
            row_id = str(new["id"])
            # Scores depend on the answer and, for citation metrics, on the cited passages.
            key = (row_id, new["answer"], tuple(d.get("id") for d in new.get("docs") or ()))
            if key not in self._cache:
                self._cache[key] = self.task.score(new, self.golds[row_id])
            per_question[row_id] = self._cache[key]
            retrieved += bool(new["retrieved"])
        return SweepPoint(threshold, weights, retrieved / len(self.rows), self.task.aggregate(per_question), ndocs)


def threshold_sweep(scorer: RerankScorer, thresholds: Iterable[float], weights: RewardWeights) -> list[SweepPoint]:
    """One point per threshold (retrieve iff p_retrieve > threshold), all under `weights`.

    Raises:
        InputError: the rows cannot be re-thresholded (see `check_sweepable`).
    """
    check_sweepable(scorer.rows, rethreshold=True)
    return [scorer.point(weights, threshold=t) for t in thresholds]


def ndocs_sweep(scorer: RerankScorer, ndocs: Iterable[int], weights: RewardWeights) -> list[SweepPoint]:
    """One point per `ndocs`: the answer re-picked among the candidates of the first `ndocs` retrieved passages
    only, retrieval decisions as saved. `ndocs=1` is the retriever's choice (its top passage's candidate); the
    largest is the run's own choice. Where the metric falls as `ndocs` grows, the reflection tokens pick worse than
    the retriever's order.

    Raises:
        InputError: an `ndocs` below 1, or long-form rows (beams are not per passage). A run made with the corrective
            retry is not for this sweep (its retried candidates come after the first passages); scripts/sweep.py
            skips it.
    """
    check_sweepable(scorer.rows, rethreshold=False)
    if any("beams" in r for r in scorer.rows):
        raise InputError("long-form predictions have no per-passage candidates to cut; the ndocs sweep is short form")
    counts = list(ndocs)
    if any(k < 1 for k in counts):
        raise InputError(f"ndocs values must be at least 1, got {counts}")
    return [scorer.point(weights, ndocs=k) for k in counts]


def weight_grid(
    scorer: RerankScorer,
    w_rel: Sequence[float],
    w_sup: Sequence[float],
    w_use: Sequence[float],
    *,
    use_seqscore: bool = True,
    threshold: float | None = None,
) -> list[SweepPoint]:
    """One point per (w_rel, w_sup, w_use), in that nesting order; retrieval decisions are the saved ones, or
    re-decided with `threshold` when given.

    Raises:
        InputError: a negative weight, or rows that cannot be re-decided (see `check_sweepable`).
    """
    check_sweepable(scorer.rows, rethreshold=threshold is not None)
    points = []
    for rel in w_rel:
        for sup in w_sup:
            for use in w_use:
                try:
                    weights = RewardWeights(w_rel=rel, w_sup=sup, w_use=use, use_seqscore=use_seqscore)
                except ValueError as err:
                    raise InputError(str(err)) from None
                points.append(scorer.point(weights, threshold=threshold))
    return points


def best_point(points: Sequence[SweepPoint], metric: str) -> SweepPoint:
    """The point with the highest `metric` (the first of equals)."""
    return max(points, key=lambda p: p.value(metric))


def _number(value: Any) -> str:
    if isinstance(value, Unavailable):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def threshold_table(points: Sequence[SweepPoint], metric: str) -> str:
    """Markdown: threshold, retrieval rate and every metric per point, and the best threshold for `metric`."""
    names = [k for k in points[0].metrics if k != "n"]
    lines = ["| threshold | retrieval rate | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for p in points:
        lines.append(f"| {p.threshold:.2f} | {p.retrieval_rate:.4f} | "
                     + " | ".join(_number(p.metrics[n]) for n in names) + " |")
    best = best_point(points, metric)
    lines += ["", f"Best {metric}: {best.value(metric):.4f} at threshold {best.threshold:.2f} "
                  f"(retrieval rate {best.retrieval_rate:.4f})."]
    return "\n".join(lines) + "\n"


def ndocs_table(points: Sequence[SweepPoint], metric: str) -> str:
    """Markdown: ndocs, retrieval rate and every metric per point, and the best ndocs for `metric`."""
    names = [k for k in points[0].metrics if k != "n"]
    lines = ["| ndocs | retrieval rate | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for p in points:
        lines.append(f"| {p.ndocs} | {p.retrieval_rate:.4f} | " + " | ".join(_number(p.metrics[n]) for n in names)
                     + " |")
    best = best_point(points, metric)
    lines += ["", f"Best {metric}: {best.value(metric):.4f} with the first {best.ndocs} passage(s) competing."]
    return "\n".join(lines) + "\n"


def weight_table(points: Sequence[SweepPoint], metric: str) -> str:
    """Markdown: one w_rel x w_sup table of `metric` per w_use value, then the best weights."""
    uses = list(dict.fromkeys(p.weights.w_use for p in points))
    rels = list(dict.fromkeys(p.weights.w_rel for p in points))
    sups = list(dict.fromkeys(p.weights.w_sup for p in points))
    by_key = {(p.weights.w_rel, p.weights.w_sup, p.weights.w_use): p for p in points}
    lines: list[str] = []
    for use in uses:
        lines += [f"### w_use = {use:g}", "", "| w_rel \\ w_sup | " + " | ".join(f"{s:g}" for s in sups) + " |",
                  "|---" * (len(sups) + 1) + "|"]
        for rel in rels:
            lines.append(f"| {rel:g} | " + " | ".join(f"{by_key[(rel, sup, use)].value(metric):.4f}"
                                                     for sup in sups) + " |")
        lines.append("")
    best = best_point(points, metric)
    w = best.weights
    lines.append(f"Best {metric}: {best.value(metric):.4f} at w_rel={w.w_rel:g} w_sup={w.w_sup:g} w_use={w.w_use:g} "
                 f"(retrieval rate {best.retrieval_rate:.4f}).")
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def plot_threshold_sweep(points: Sequence[SweepPoint], metric: str, path: str | Path, *, title: str = "") -> Path:
    """Two panels to `path` (PNG): `metric` and retrieval rate against the threshold, and `metric` against the
    retrieval rate (each point labelled with its threshold), which is the trade-off a threshold buys."""
    plt = _pyplot()
    thresholds = [p.threshold for p in points]
    values = [p.value(metric) for p in points]
    rates = [p.retrieval_rate for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(thresholds, values, marker="o", label=metric)
    left.plot(thresholds, rates, marker="s", linestyle="--", label="retrieval rate")
    left.set_xlabel("retrieval threshold")
    left.set_ylim(-0.02, 1.02)
    left.legend()
    left.grid(alpha=0.3)
    right.plot(rates, values, marker="o")
    # Neighbouring thresholds often land on the same point: label each distinct point once, with its threshold range.
    runs: list[tuple[float, float, float, float]] = []
    for t, x, y in zip(thresholds, rates, values):
        if runs and (runs[-1][2], runs[-1][3]) == (x, y):
            runs[-1] = (runs[-1][0], t, x, y)
        else:
            runs.append((t, t, x, y))
    step = max(1, len(runs) // 10)  # at most about ten labels
    for first, last, x, y in runs[::step]:
        label = f"{first:.2f}" if first == last else f"{first:.2f}-{last:.2f}"
        right.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    right.set_xlabel("retrieval rate")
    right.set_ylabel(metric)
    right.grid(alpha=0.3)
    fig.suptitle(title or f"{metric} vs retrieval threshold")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_weight_grid(points: Sequence[SweepPoint], metric: str, path: str | Path, *, title: str = "") -> Path:
    """Heatmaps to `path` (PNG): `metric` over w_rel (rows) x w_sup (columns), one panel per w_use, one colour scale."""
    plt = _pyplot()
    uses = list(dict.fromkeys(p.weights.w_use for p in points))
    rels = list(dict.fromkeys(p.weights.w_rel for p in points))
    sups = list(dict.fromkeys(p.weights.w_sup for p in points))
    by_key = {(p.weights.w_rel, p.weights.w_sup, p.weights.w_use): p.value(metric) for p in points}
    low, high = min(by_key.values()), max(by_key.values())
    if high - low < 1e-9:  # a flat grid still needs a colour range
        low, high = low - 0.05, high + 0.05
    fig, axes = plt.subplots(1, len(uses), figsize=(3.4 * len(uses) + 1.4, 3.8), squeeze=False,
                             layout="constrained")
    image = None
    for k, (ax, use) in enumerate(zip(axes[0], uses)):
        grid = [[by_key[(rel, sup, use)] for sup in sups] for rel in rels]
        image = ax.imshow(grid, vmin=low, vmax=high, cmap="viridis", origin="lower")
        middle = (low + high) / 2
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                        color="black" if value > middle else "white")
        ax.set_xticks(range(len(sups)), [f"{s:g}" for s in sups])
        ax.set_yticks(range(len(rels)), [f"{r:g}" for r in rels])
        ax.set_xlabel("w_sup")
        if k == 0:
            ax.set_ylabel("w_rel")
        ax.set_title(f"w_use = {use:g}")
    fig.colorbar(image, ax=axes[0].tolist(), label=metric)
    fig.suptitle(title or f"{metric} over reward weights")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_reliability(block: Mapping[str, Any], path: str | Path, *, title: str = "") -> Path:
    """Reliability of the reflection tokens to `path` (PNG), from a `reflection` block (eval.reflection): per score
    bin, the share of candidates whose passage holds a gold answer (IsRel, left) and the share that are right (IsSup,
    right), with the diagonal a calibrated score would follow and the bin counts as bars."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = (("isrel", "IsRel score", "passage holds a gold answer", block.get("isrel_auroc")),
              ("issup", "IsSup score", "candidate right", block.get("issup_auroc")))
    for ax, (key, xlabel, ylabel, area) in zip(axes, panels):
        bins = block["reliability"][key]
        centres = [(b["low"] + b["high"]) / 2 for b in bins]
        filled = [(c, b["positive_rate"]) for c, b in zip(centres, bins) if b["positive_rate"] is not None]
        counts = ax.twinx()
        counts.bar(centres, [b["n"] for b in bins], width=0.08, alpha=0.2, color="grey")
        counts.set_ylabel("candidates")
        ax.plot([0, 1], [0, 1], linestyle=":", color="black", linewidth=1)
        if filled:
            ax.plot(*zip(*filled), marker="o")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_zorder(counts.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"share: {ylabel}")
        ax.set_title(f"AUROC {area:.3f}" if area is not None else "AUROC n/a")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "reflection-token reliability")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)

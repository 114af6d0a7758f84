"""A results table over several saved `evaluate` runs on the same questions: each run's mean with a bootstrap CI,
its retrieval rate and (Self-RAG) well-formed rate, and its paired difference from a reference run with a CI.

This is what the README's results section is built from (`scripts/results_table.py`), so every number in it can be
regenerated from the run directories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.runs import SavedRun, compare_runs
from eval.stats import align, bootstrap_mean, metric_scores
from selfrag.io import InputError


def run_name(run: SavedRun) -> str:
    """How the table names a run: method, model and, for Self-RAG, the retrieval mode and threshold, and `base
    reader` when the base wrote the answers (`decoding.reader=base`); then the passages per question (`ndocs`) of
    a run that reads any, so two runs of one method and model that differ only there are told apart."""
    m = run.metrics
    name = f"{m.get('method')} · {m.get('model')}"
    decoding = m.get("decoding") or {}
    if m.get("method") == "selfrag" and "mode" in decoding:
        name += f" · {decoding['mode']}" + (f" (threshold {decoding['threshold']})"
                                             if decoding["mode"] == "adaptive" else "")
        if decoding.get("reader", "generator") != "generator":
            name += f" · {decoding['reader']} reader"
    reads = m.get("method") == "standard_rag" or (m.get("method") == "selfrag" and decoding.get("mode") != "never")
    if reads and "ndocs" in decoding:
        name += f" · {decoding['ndocs']} passage{'s' if decoding['ndocs'] != 1 else ''}"
    return name


def results_rows(
    runs: Sequence[SavedRun],
    *,
    metric: str | None = None,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per run: `run`, `name`, `n`, `metric`, `mean`, `ci` ([low, high]), `retrieval_rate`, `well_formed`
    (share of chosen answers, or None), and `vs_reference` (the paired comparison with `runs[0]`, None for it).

    Raises:
        InputError: no runs, runs of different tasks or question sets, or a metric without numbers.
    """
    if not runs:
        raise InputError("runs is empty: pass at least one evaluate output_dir (runs=[DIR,...])")
    reference = runs[0]
    metric = metric or reference.metrics.get("primary_metric")
    rows = []
    for run in runs:
        align(reference.per_question, run.per_question)
        mean, low, high = bootstrap_mean(metric_scores(run.per_question, metric), n_resamples=n_resamples,
                                         seed=seed, confidence=confidence)
        versus = None
        if run is not reference:
            versus, _ = compare_runs(run, reference, metric=metric, n_resamples=n_resamples,
                                     confidence=confidence, seed=seed)
        well_formed = run.metrics.get("well_formed")
        rows.append({
            "run": str(run.directory),
            "name": run_name(run),
            "n": len(run.per_question),
            "metric": metric,
            "mean": mean,
            "ci": [low, high],
            "retrieval_rate": run.metrics.get("retrieval_rate"),
            "well_formed": well_formed["chosen"] if well_formed else None,
            "vs_reference": versus,
        })
    return rows


def results_markdown(rows: Sequence[dict[str, Any]], *, confidence: float = 0.95) -> str:
    """The rows of `results_rows` as a markdown table (values in %, the reference run first)."""
    pct = f"{confidence:.0%}"
    lines = [
        f"| run | n | {rows[0]['metric']} [{pct} CI] | retrieval rate | well-formed | vs. first row [{pct} CI] |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        low, high = row["ci"]
        versus = row["vs_reference"]
        lines.append(
            f"| {row['name']} | {row['n']} | {row['mean']:.1%} [{low:.1%}, {high:.1%}] | "
            f"{row['retrieval_rate']:.1%} | "
            + (f"{row['well_formed']:.1%}" if row["well_formed"] is not None else "–") + " | "
            + (f"{versus['difference']:+.1%} [{versus['ci_low']:+.1%}, {versus['ci_high']:+.1%}]"
               if versus else "(reference)") + " |"
        )
    return "\n".join(lines) + "\n"

"""The directory an `evaluate` run writes, and reading it back: building `metrics.json`, `per_question.jsonl` and
`report.md` from scored predictions, loading a saved run for `compare` and `sweep`, and the paired comparison of two
saved runs.

Files of a run directory (besides `predictions.jsonl`, `run_config.json` and `timing.json` of
`selfrag.decoding.run`):
- `per_question.jsonl`: `{"id": ..., <metric>: value, ...}` per question, in input order (an unavailable metric is
  `{"unavailable": reason}`);
- `metrics.json`: `task`, `method`, `model`, `model_path`, `n`, `primary_metric`, every metric mean (or
  `{"unavailable": reason}`), `retrieval_rate`, for Self-RAG `well_formed` (selfrag.decoding.wellformed) and, in
  short form,
  `reflection` (eval.reflection: oracle, chosen/oracle, AUROCs of the reflection tokens, retrieval usefulness), the
  settings used
  (`decoding`, `prompt`, `backend`, `retriever`, `data`) and timing (`seconds` of decoding summed over resumed
  runs, `questions_per_second`, `load_seconds`);
- `report.md`: the same for a reader, with a few example answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eval.components import Unavailable
from eval.reflection import AUROC_LABELS, reflection_items, reflection_markdown
from eval.stats import align, metric_scores, paired_auroc_bootstrap, paired_bootstrap, win_loss
from eval.tasks import Scores, Task, jsonable, require_golds
from selfrag.decoding.run import PREDICTIONS, DecodeSettings
from selfrag.decoding.wellformed import well_formed_summary
from selfrag.io import InputError, iter_jsonl, read_json, read_jsonl, write_jsonl_atomic, write_text_atomic

PER_QUESTION = "per_question.jsonl"
METRICS = "metrics.json"
REPORT = "report.md"

#: The decoding settings that a baseline uses (the rest are Self-RAG's and would mislead in its metrics.json).
_BASELINE_DECODING = {"no_retrieval": ("max_new_tokens",), "standard_rag": ("max_new_tokens", "ndocs")}


def retrieval_rate(rows: Sequence[Mapping[str, Any]]) -> float:
    """Fraction of prediction rows with `retrieved` true (0.0 for no rows)."""
    return sum(bool(r["retrieved"]) for r in rows) / len(rows) if rows else 0.0


def decoding_record(method: str, settings: DecodeSettings) -> dict[str, Any]:
    """The decoding settings a method actually used: all of them for Self-RAG, length (and ndocs) for baselines."""
    every = asdict(settings.decoding)
    if method in _BASELINE_DECODING:
        return {"greedy": True, **{k: every[k] for k in _BASELINE_DECODING[method]}}
    return every


def metrics_record(
    task: Task,
    per_question: Mapping[str, Scores],
    rows: Sequence[Mapping[str, Any]],
    *,
    method: str,
    settings: DecodeSettings,
    gold_path: str,
    seconds: float,
    decoded: int,
    load_seconds: float,
    reflection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `metrics.json` object of a run (see the module docstring). `seconds`/`decoded` are the decoding time and
    question count summed over every run into the directory; `reflection` is the Self-RAG diagnostics block."""
    means = jsonable(task.aggregate(per_question))
    n = means.pop("n")
    model = settings.model
    return {
        "task": task.name,
        "method": method,
        "model": model.name,
        "model_path": model.path or model.packaged,
        "n": n,
        "primary_metric": task.metrics[0],
        **means,
        "retrieval_rate": retrieval_rate(rows),
        **({"well_formed": well_formed_summary(rows)} if method == "selfrag" else {}),
        **({"reflection": dict(reflection)} if reflection is not None else {}),
        "decoding": decoding_record(method, settings),
        "prompt": settings.prompt_style,
        "backend": settings.backend,
        "retriever": settings.retriever,
        "data": {"path": settings.data_path, "gold": gold_path, "limit": settings.data_limit},
        "seconds": seconds,
        "questions_per_second": decoded / seconds if seconds > 0 else None,
        "load_seconds": load_seconds,
    }


def _shown(value: Any) -> str:
    if isinstance(value, Mapping) and "unavailable" in value:
        return f"unavailable ({value['unavailable']})"
    if isinstance(value, Unavailable):
        return str(value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def report_markdown(
    record: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    per_question: Mapping[str, Scores],
    *,
    examples: int = 3,
) -> str:
    """A short human-readable report of a run: settings, metrics, timing and the first `examples` answers."""
    qps = record["questions_per_second"]
    lines = [
        f"# Evaluation: {record['task']}, method {record['method']}",
        "",
        f"- model: {record['model']} ({record['model_path']})",
        f"- data: {record['data']['path']} ({record['n']} questions; gold {record['data']['gold']})",
        f"- prompt {record['prompt']}, backend {record['backend']}, retriever {record['retriever']}",
        f"- retrieval rate: {record['retrieval_rate']:.1%}",
        *([f"- well-formed reflection tokens: {record['well_formed']['chosen']:.1%} of chosen answers, "
           f"{record['well_formed']['candidates']:.1%} of all candidates"] if "well_formed" in record else []),
        f"- decoding time: {record['seconds']:.1f} s" + (f" ({qps:.2f} questions/s)" if qps else "")
        + f", model loading {record['load_seconds']:.1f} s",
        "- decoding settings: " + " ".join(f"{k}={v}" for k, v in record["decoding"].items()),
        "",
        "| metric | mean |",
        "|---|---|",
    ]
    metrics = [k for k in record if k in next(iter(per_question.values()), {})]
    lines += [f"| {name}{' (primary)' if name == record['primary_metric'] else ''} | {_shown(record[name])} |"
              for name in metrics]
    if record.get("reflection"):
        lines += ["", reflection_markdown(record["reflection"])]
    if rows and examples > 0:
        lines += ["", "## Examples", ""]
        primary = record["primary_metric"]
        for row in rows[:examples]:
            score = per_question.get(str(row["id"]), {}).get(primary)
            answer = " ".join(str(row["answer"]).split()) or "(empty)"
            lines.append(f"- **[{row['id']}]** {row['question']} → {answer} "
                         f"({primary} {_shown(score)}{', retrieved' if row['retrieved'] else ''})")
    return "\n".join(lines) + "\n"


def write_scores(
    output_dir: Path,
    per_question: Mapping[str, Scores],
    record: Mapping[str, Any],
    report: str,
) -> None:
    """Write per_question.jsonl, metrics.json and report.md (each atomically) into `output_dir`."""
    write_jsonl_atomic(output_dir / PER_QUESTION, ({"id": k, **jsonable(v)} for k, v in per_question.items()))
    write_text_atomic(output_dir / METRICS, json.dumps(record, indent=2) + "\n")
    write_text_atomic(output_dir / REPORT, report)


@dataclass(frozen=True)
class SavedRun:
    """A finished `evaluate` run read back from its directory.

    Attributes:
        directory: the run directory.
        metrics: its `metrics.json`.
        per_question: question id -> metric values (as in `per_question.jsonl`), in file order.
    """

    directory: Path
    metrics: dict[str, Any]
    per_question: dict[str, dict[str, Any]]

    @property
    def label(self) -> str:
        """How a comparison names the run: method, model and directory."""
        return f"{self.metrics.get('method')} / {self.metrics.get('model')} ({self.directory})"

    def predictions(self) -> list[dict[str, Any]]:
        """The run's `predictions.jsonl` rows."""
        return read_jsonl(self.directory / PREDICTIONS)


def load_run(path: str | Path) -> SavedRun:
    """Read the run in directory `path` (or the directory of a file in it, e.g. its metrics.json).

    Raises:
        InputError: not an evaluate run directory, or a malformed file (naming it).
    """
    directory = Path(path)
    if directory.is_file():
        directory = directory.parent
    metrics_path = directory / METRICS
    if not metrics_path.is_file():
        raise InputError(f"{directory}: not an evaluate run (no {METRICS}); pass the output_dir of scripts/evaluate.py")
    try:
        metrics = read_json(metrics_path)
    except InputError as err:
        raise InputError(f"{err}; re-run evaluate to rewrite it") from None
    if not isinstance(metrics, dict):
        raise InputError(f"{metrics_path}: expected a JSON object; re-run evaluate to rewrite it")
    if not (directory / PER_QUESTION).is_file():
        raise InputError(f"{directory}: no {PER_QUESTION}; re-run scripts/evaluate.py with output_dir={directory} "
                         "to rescore it")
    per_question: dict[str, dict[str, Any]] = {}
    for line_no, row in iter_jsonl(directory / PER_QUESTION):
        scores = dict(row)
        qid = scores.pop("id", None)
        if not isinstance(qid, str | int) or isinstance(qid, bool):
            raise InputError(f"{directory / PER_QUESTION}:{line_no}: no usable `id` (got {qid!r}); re-run "
                             f"scripts/evaluate.py with output_dir={directory} to rescore it")
        per_question[str(qid)] = scores
    if not per_question:
        raise InputError(f"{directory / PER_QUESTION}: no questions; re-run scripts/evaluate.py with "
                         f"output_dir={directory} to rescore it")
    return SavedRun(directory, metrics, per_question)


def compare_runs(
    a: SavedRun,
    b: SavedRun,
    *,
    metric: str | None = None,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Paired bootstrap of run a minus run b on one metric, over the questions both answered, and win/loss rows.

    Args:
        metric: a per-question metric; None means the task's primary metric.

    Returns:
        (the `comparison.json` object, the `win_loss.jsonl` rows).

    Raises:
        InputError: different tasks, different question sets, or a metric that is not a number for every question.
    """
    task_a, task_b = a.metrics.get("task"), b.metrics.get("task")
    if task_a != task_b:
        raise InputError(f"run a is task={task_a} and run b is task={task_b}; compare runs of the same task")
    metric = metric or a.metrics.get("primary_metric")
    if not metric:
        raise InputError(f"{a.directory / METRICS} names no primary_metric; pass metric=NAME")
    align(a.per_question, b.per_question)  # different question sets fail here, before any metric is read
    result = paired_bootstrap(metric_scores(a.per_question, metric), metric_scores(b.per_question, metric),
                              n_resamples=n_resamples, seed=seed, confidence=confidence)
    rows = win_loss(a.per_question, b.per_question, metric)
    outcomes = [r["outcome"] for r in rows]
    comparison = {
        "task": task_a,
        "metric": metric,
        "a": {"run": str(a.directory), "method": a.metrics.get("method"), "model": a.metrics.get("model")},
        "b": {"run": str(b.directory), "method": b.metrics.get("method"), "model": b.metrics.get("model")},
        **result.as_dict(),
        "wins": outcomes.count("win"),
        "losses": outcomes.count("loss"),
        "ties": outcomes.count("tie"),
    }
    return comparison, rows


def compare_reflection(
    a: SavedRun,
    b: SavedRun,
    task: Task,
    golds: Mapping[str, Any],
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap of each reflection AUROC (IsRel, IsSup, final score; `eval.reflection.AUROC_LABELS`) of two
    short-form Self-RAG runs over the same questions, resampling whole questions (`eval.stats.
    paired_auroc_bootstrap`): does one generator's reflection separate better than the other's, beyond noise?

    Returns:
        kind -> {"label", the bootstrap fields, "items_a", "items_b"}, or {"unavailable": reason} where an AUROC is
        undefined for a run (one class only).

    Raises:
        InputError: different question sets, or a prediction without a gold.
    """
    rows_a, rows_b = a.predictions(), b.predictions()
    require_golds((*rows_a, *rows_b), golds)
    items_a, items_b = reflection_items(task, rows_a, golds), reflection_items(task, rows_b, golds)
    align(items_a["isrel"], items_b["isrel"])  # every kind holds every question: different sets fail here
    out: dict[str, Any] = {}
    for kind, label in AUROC_LABELS.items():
        try:
            result = paired_auroc_bootstrap(items_a[kind], items_b[kind], n_resamples=n_resamples, seed=seed,
                                            confidence=confidence)
        except InputError as err:  # one class only: this AUROC is undefined, the others may not be
            out[kind] = {"unavailable": str(err)}
            continue
        out[kind] = {"label": label, **result.as_dict(), "items_a": sum(map(len, items_a[kind].values())),
                     "items_b": sum(map(len, items_b[kind].values()))}
    return out


def reflection_comparison_lines(reflection: Mapping[str, Any]) -> list[str]:
    """One terminal line per reflection AUROC of `compare_reflection`."""
    lines = []
    for kind, c in reflection.items():
        if "unavailable" in c:
            lines.append(f"{kind} AUROC: unavailable ({c['unavailable']})")
            continue
        lines.append(f"{kind} AUROC vs {c['label']} (questions resampled, n={c['n']}; items {c['items_a']} / "
                     f"{c['items_b']}): a={c['mean_a']:.4f} b={c['mean_b']:.4f} a-b={c['difference']:+.4f} "
                     f"[{c['confidence']:.0%} CI {c['ci_low']:+.4f}, {c['ci_high']:+.4f}] p={c['p_value']:.3f}")
    return lines


def comparison_line(comparison: Mapping[str, Any]) -> str:
    """One line for the terminal: means, difference, CI, p and win/loss counts."""
    c = comparison
    return (f"{c['metric']} ({c['task']}, n={c['n']}): a={c['mean_a']:.4f} b={c['mean_b']:.4f} "
            f"a-b={c['difference']:+.4f} [{c['confidence']:.0%} CI {c['ci_low']:+.4f}, {c['ci_high']:+.4f}] "
            f"p={c['p_value']:.3f}; a wins {c['wins']}, loses {c['losses']}, ties {c['ties']}")

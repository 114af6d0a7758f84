"""What every task module shares: the `Task` contract, reading the answer text of a prediction row, and averaging
per-question scores (with `Unavailable` passed through, never averaged). Gold strings are read from input rows by
`selfrag.inputs.gold_strings`, which the critic's seed reader uses too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from eval.components import Unavailable
from selfrag.io import InputError
from selfrag.tokens import strip_reflection

#: One question's scores: metric name -> value in [0, 1] (or a count), or why it could not be computed.
Scores = dict[str, float | Unavailable]


class Task(Protocol):
    """One benchmark's scoring.

    Attributes:
        name: the task name (`task=` override).
        metrics: the per-question metric names `score` returns, primary metric first.
    """

    name: str
    metrics: tuple[str, ...]

    def gold(self, row: Mapping[str, Any], *, where: str = "input row") -> Any:
        """The gold of one input row in the official file format; InputError (naming `where` and the key) if absent."""
        ...

    def score(self, prediction: Mapping[str, Any], gold: Any) -> Scores:
        """Score one `predictions.jsonl` row against its gold."""
        ...

    def aggregate(self, per_question: Mapping[str, Scores] | Iterable[Scores]) -> dict[str, Any]:
        """Means of the per-question scores, with `n` (see `mean_scores`)."""
        ...


def prediction_text(prediction: Mapping[str, Any]) -> str:
    """The clean answer of a prediction row: `answer`, else `output` with reflection tokens stripped.

    Raises:
        InputError: the row has neither (naming its id).
    """
    answer = prediction.get("answer")
    if isinstance(answer, str):
        return answer
    output = prediction.get("output")
    if isinstance(output, str):
        return strip_reflection(output)
    raise InputError(f"prediction {prediction.get('id')!r}: no `answer` or `output` string; "
                     "is this a predictions.jsonl written by `infer`?")


def mean_scores(per_question: Mapping[str, Scores] | Iterable[Scores]) -> dict[str, Any]:
    """Average per-question scores metric by metric; `n` is the number of questions.

    A metric with an `Unavailable` value for any question is `Unavailable` in the result (with the distinct reasons
    joined): a mean over the questions that happened to be scorable would be a made-up number.
    """
    rows = list(per_question.values()) if isinstance(per_question, Mapping) else list(per_question)
    result: dict[str, Any] = {"n": len(rows)}
    names = list(dict.fromkeys(name for row in rows for name in row))
    for name in names:
        values = [row.get(name) for row in rows]
        reasons = list(dict.fromkeys(v.reason for v in values if isinstance(v, Unavailable)))
        if reasons:
            result[name] = Unavailable("; ".join(reasons))
        elif any(v is None for v in values):
            raise InputError(f"metric {name!r} is missing for some questions; score every question with one task")
        else:
            result[name] = sum(float(v) for v in values) / len(values)
    return result


def jsonable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics ready for `json.dumps`: `Unavailable` values become `{"unavailable": reason}`."""
    return {k: v.to_json() if isinstance(v, Unavailable) else v for k, v in metrics.items()}


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """One line per metric for a report: numbers to 4 decimals, `Unavailable` with its reason."""
    lines = []
    for name, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)

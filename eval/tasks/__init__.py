"""The task registry: `get_task(name)` returns the scoring of one benchmark, plus reading golds from an input file
and scoring a predictions file's rows against them by id.

One module per task (popqa, triviaqa, pubhealth, arc_challenge, asqa, bio); each exposes `task(...)` returning an
object with the `eval.tasks.common.Task` contract: `gold(row)`, `score(prediction_row, gold)`, `aggregate(...)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from eval.components import FactScorer, NLIScorer
from eval.tasks import arc_challenge, asqa, bio, popqa, pubhealth, triviaqa
from eval.tasks.common import Scores, Task, format_metrics, jsonable, mean_scores
from selfrag.io import InputError, iter_jsonl

_FACTORIES: dict[str, Callable[..., Task]] = {
    "popqa": lambda **_: popqa.task(),
    "triviaqa": lambda **_: triviaqa.task(),
    "pubhealth": lambda **_: pubhealth.task(),
    "arc_challenge": lambda **_: arc_challenge.task(),
    "asqa": lambda nli=None, **_: asqa.task(nli=nli),
    "bio": lambda fact_scorer=None, **_: bio.task(fact_scorer=fact_scorer),
}
TASK_NAMES = tuple(_FACTORIES)

__all__ = ["TASK_NAMES", "Scores", "Task", "format_metrics", "get_task", "jsonable", "mean_scores", "read_golds",
           "score_predictions"]


def get_task(name: str, *, nli: NLIScorer | None = None, fact_scorer: FactScorer | None = None) -> Task:
    """The task called `name`. `nli` is used by asqa (citations), `fact_scorer` by bio; others ignore them.

    Raises:
        InputError: unknown task name (listing the known ones).
    """
    if name not in _FACTORIES:
        raise InputError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)} (task=...)")
    return _FACTORIES[name](nli=nli, fact_scorer=fact_scorer)


def read_golds(task: Task, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Golds of every row of an input jsonl file, keyed by id as `selfrag.inputs` assigns it (`id`, else `q_id`,
    else the line number), so they line up with the ids in `predictions.jsonl`.

    Raises:
        InputError: missing file, malformed line, a row without gold (naming file, line and key), duplicate id.
    """
    golds: dict[str, Any] = {}
    for line_no, row in iter_jsonl(path):
        where = f"{path}:{line_no}"
        row_id = str(row.get("id", row.get("q_id", line_no)))
        if row_id in golds:
            raise InputError(f"{where}: duplicate id {row_id!r}; ids must be unique to match predictions to golds")
        golds[row_id] = task.gold(row, where=where)
    return golds


def require_golds(rows: Iterable[Mapping[str, Any]], golds: Mapping[str, Any]) -> None:
    """Check, before any scoring, that every prediction row's id has a gold (for tools that re-score saved runs).

    Raises:
        InputError: ids without a gold (counting them, listing up to 5), naming the `gold=PATH` override.
    """
    missing = [str(r["id"]) for r in rows if str(r["id"]) not in golds]
    if missing:
        raise InputError(f"{len(missing)} prediction id(s) have no gold, e.g. {missing[:5]}; "
                         "score against the gold file of the run (gold=PATH)")


def score_predictions(
    task: Task, predictions: Iterable[Mapping[str, Any]], golds: Mapping[str, Any]
) -> dict[str, Scores]:
    """Score prediction rows (the `predictions.jsonl` objects) against `golds` by id: id -> the task's scores.

    Raises:
        InputError: a prediction without an id, a duplicate id, or ids with no gold (listing up to 5 of them).
    """
    per_question: dict[str, Scores] = {}
    missing: list[str] = []
    for row in predictions:
        if "id" not in row:
            raise InputError("a prediction row has no `id`; is this a predictions.jsonl written by `infer`?")
        row_id = str(row["id"])
        if row_id in per_question:
            raise InputError(f"duplicate prediction id {row_id!r}; each question must be predicted once")
        if row_id not in golds:
            missing.append(row_id)
            continue
        per_question[row_id] = task.score(row, golds[row_id])
    if missing:
        raise InputError(f"{len(missing)} prediction id(s) have no gold in the input file, e.g. {missing[:5]}; "
                         "score predictions against the data.path they were made from")
    return per_question

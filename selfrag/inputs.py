"""Reading decoder inputs: the official Self-RAG eval files (passages in `ctxs`) or plain `{id, question}` jsonl.

One `Query` per row. Task-specific fields: ARC-Challenge `choices {text[], label[]}` (numeric labels 1-4 become A-D,
as in the reference code), PubHealth `claim`, Bio `topic` (prompted as "Tell me a bio about X."), ASQA `docs`
(ALCE format) as an alternative to `ctxs`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from selfrag.io import InputError, iter_jsonl
from selfrag.prompts import TASKS, format_instruction
from selfrag.types import Passage, Query
from selfrag.values import as_int

#: The input field holding the question, in order of preference, per task.
_QUESTION_FIELDS: dict[str, tuple[str, ...]] = {
    "pubhealth": ("claim", "question", "input"),
    "bio": ("input", "question", "topic"),
}
_DEFAULT_FIELDS = ("question", "input", "instruction")
NUMERIC_LABELS = {"1": "A", "2": "B", "3": "C", "4": "D", "5": "E"}
TRUE_FALSE = ("true", "false")


def passages_from_row(row: dict[str, Any], where: str, owner: str) -> tuple[Passage, ...]:
    """The static passages of a row (`ctxs`, or ALCE's `docs`); a passage without an id is named `{owner}#{j}`."""
    raw = row.get("ctxs", row.get("docs")) or []
    if not isinstance(raw, list):
        raise InputError(f"{where}: `ctxs` must be a list of {{title, text}} objects")
    passages = []
    for j, ctx in enumerate(raw):
        if not isinstance(ctx, dict) or "text" not in ctx:
            raise InputError(f"{where}: ctxs[{j}] must be an object with at least a `text` field")
        score = ctx.get("score")
        try:
            score = float(score) if score not in (None, "") else None
        except (TypeError, ValueError):
            raise InputError(f"{where}: ctxs[{j}].score must be a number (or absent), got {score!r}") from None
        passages.append(
            Passage(
                id=str(ctx.get("id", f"{owner}#{j}")),
                title=str(ctx.get("title") or ""),
                text=str(ctx["text"]),
                score=score,
            )
        )
    return tuple(passages)


def row_id(row: Mapping[str, Any], where: str, default: str, *, keys: Sequence[str] = ("id", "q_id")) -> str:
    """A row's id as a string: the first of `keys` present, else `default` (its line number).

    An id that is present must be a non-empty string or an integer: `"id": null` would otherwise become the id
    "None" (and two such rows one id), and a float or object has no stable text form.

    Raises:
        InputError: an id that is null, empty, a bool, a float, a list or an object (naming the file and line).
    """
    for key in keys:
        if key in row:
            value = row[key]
            if isinstance(value, str) and value.strip() or isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            raise InputError(f"{where}: `{key}` must be a non-empty string or an integer, got {value!r}; fix the "
                             f"id, or drop the field to use the line number")
    return default


def query_from_row(row: dict[str, Any], task: str, *, where: str, default_id: str) -> Query:
    """Turn one input row into a Query for `task` (`where` names the file and line for errors)."""
    fields = _QUESTION_FIELDS.get(task, _DEFAULT_FIELDS)
    question = next((row[f] for f in fields if isinstance(row.get(f), str) and row[f].strip()), None)
    if question is None:
        raise InputError(f"{where}: no question found; task={task} reads the first of the fields {list(fields)}")
    qid = row_id(row, where, default_id)
    options = None
    if task == "arc_challenge":
        choices = row.get("choices")
        if not isinstance(choices, dict) or not choices.get("text") or not choices.get("label"):
            raise InputError(f"{where}: task=arc_challenge needs `choices` with `text` and `label` lists")
        labels = [NUMERIC_LABELS.get(str(label), str(label)) for label in choices["label"]]
        instruction = format_instruction(task, question, list(zip(labels, choices["text"])))
        options = tuple(labels)
    elif task == "bio" and "input" not in row and row.get("topic"):
        instruction = f"Tell me a bio about {row['topic']}."
    else:
        instruction = format_instruction(task, question)
    if task == "pubhealth":
        options = TRUE_FALSE
    return Query(
        id=qid,
        question=question,
        instruction=instruction,
        passages=passages_from_row(row, where, qid),
        options=options,
    )


def iter_queries(path: str | Path, task: str, *, limit: int | None = None) -> Iterator[Query]:
    """Yield the queries of an input file, at most `limit` of them.

    Raises:
        InputError: unknown task, a limit that is not an integer >= 1 (or None), missing file, malformed line,
            missing field or bad id (naming file and line).
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)} (task=...)")
    as_int(limit, "data.limit", minimum=1, allow_none=True)
    seen: set[str] = set()
    count = 0
    for line_no, row in iter_jsonl(path):
        if limit is not None and count >= limit:
            return
        query = query_from_row(row, task, where=f"{path}:{line_no}", default_id=str(line_no))
        if query.id in seen:
            raise InputError(f"{path}:{line_no}: duplicate id {query.id!r}; ids must be unique to resume runs safely")
        seen.add(query.id)
        count += 1
        yield query


def gold_strings(row: Mapping[str, Any], keys: Sequence[str], *, where: str) -> tuple[str, ...]:
    """The gold answer strings of a row: the first of `keys` present, as a list, a JSON-encoded list (PopQA's HF
    release stores `possible_answers` that way) or a single string.

    Raises:
        InputError: none of `keys` is present, or the value is empty or not strings.
    """
    key = next((k for k in keys if row.get(k) not in (None, "", [])), None)
    if key is None:
        raise InputError(f"{where}: no gold answers; expected one of the fields {list(keys)} with a list of strings")
    value = row[key]
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"{where}: `{key}` looks like a JSON list but does not parse; fix the row") from None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str | int | float) for v in value):
        raise InputError(f"{where}: `{key}` must be a non-empty list of strings, got {value!r}")
    return tuple(str(v) for v in value)

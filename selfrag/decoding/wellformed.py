"""Well-formedness of a Self-RAG run: the reflection-token grammar of `selfrag.decoding.grammar` counted over every
candidate of a `predictions.jsonl` (the rules and their names live there, with the decoder that ranks by them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from selfrag.decoding.grammar import (  # noqa: F401  (re-exported: the rule names reports count)
    EMPTY_ANSWER,
    NO_ISREL_FIRST,
    NO_ISSUP,
    NO_UTILITY_LAST,
    NOT_FINISHED,
    SEVERAL_ISREL,
    SEVERAL_UTILITY,
    STRAY_PASSAGE,
    candidate_problem,
)
from selfrag.decoding.records import candidate_from_json
from selfrag.prompts import response_text


def _row_candidate_problem(candidate: Mapping[str, Any]) -> str | None:
    return candidate_problem(candidate["text"], with_passage=candidate["passage_id"] is not None,
                             finished=candidate.get("finished", True))


def well_formed_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Well-formedness of Self-RAG prediction rows (`predictions.jsonl` objects with `candidates`).

    Returns `chosen` (share of questions whose chosen candidate — the one whose response is the row's `output` — is
    well-formed), `candidates` (share of all candidates), `n_candidates`, and `problems` (count per broken rule over
    all candidates, most common first).
    """
    problems: Counter[str] = Counter()
    good_candidates = total_candidates = good_chosen = 0
    for row in rows:
        candidates = row.get("candidates") or []
        verdicts = [_row_candidate_problem(c) for c in candidates]
        problems.update(v for v in verdicts if v is not None)
        total_candidates += len(verdicts)
        good_candidates += sum(v is None for v in verdicts)
        good_chosen += any(v is None and response_text([candidate_from_json(c)]) == row["output"]
                           for c, v in zip(candidates, verdicts))
    return {
        "chosen": good_chosen / len(rows) if rows else 0.0,
        "candidates": good_candidates / total_candidates if total_candidates else 0.0,
        "n_candidates": total_candidates,
        "problems": dict(problems.most_common()),
    }

"""A retrieval budget: the adaptive threshold that lets at most a given share of questions retrieve.

`budget_threshold` is pure; `fit_budget` measures p_ret on a dev file's questions with the decoder and applies it.
The questions come from `decoding.budget_data`, never from the file being evaluated, so the evaluated split's
retrieval rate is a measurement, not a fit (it can exceed the budget when its questions differ from dev).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from selfrag.artifacts import display_path
from selfrag.io import InputError


def budget_threshold(p_retrieve: Sequence[float], budget: float) -> float:
    """The lowest threshold t, among the p values (or 0.0), with share(p > t) <= `budget`.

    Adaptive decoding retrieves iff p_ret > t. With the p values sorted from the highest, m = floor(budget * n): t is
    the (m+1)-th highest value, so at most m questions lie above it (fewer when it is tied); a budget of 1 gives 0.0.

    Raises:
        ValueError: no p values, or budget outside [0, 1].
    """
    if not p_retrieve:
        raise ValueError("a retrieval budget needs the p_ret of at least one question")
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"retrieval budget is a share in [0, 1], got {budget}")
    ranked = sorted(p_retrieve, reverse=True)
    allowed = math.floor(budget * len(ranked) + 1e-9)
    return 0.0 if allowed >= len(ranked) else float(ranked[allowed])


def fit_budget(decoder: Any, task: str, *, batch_size: int = 64) -> dict[str, Any]:
    """Set `decoder.config.threshold` from its `retrieval_budget` over `budget_data`'s questions; return the record
    (budget, threshold, the dev file's retrieval rate under it, its size) that predictions carry.

    Raises:
        InputError: the budget file is missing, malformed or empty.
    """
    from selfrag.inputs import iter_queries

    config = decoder.config
    queries = list(iter_queries(config.budget_data, task))
    if not queries:
        raise InputError(f"{config.budget_data}: no questions; decoding.budget_data needs a dev file of the task")
    p_ret: list[float] = []
    for start in range(0, len(queries), batch_size):
        batch = queries[start : start + batch_size]
        p_ret.extend(decoder.retrieve_probabilities([decoder.prompt_ids(q) for q in batch]))
    threshold = budget_threshold(p_ret, config.retrieval_budget)
    decoder.config = dataclasses.replace(config, threshold=threshold)
    return {"budget": config.retrieval_budget, "threshold": threshold, "budget_data": display_path(config.budget_data),
            "budget_questions": len(p_ret), "budget_retrieval_rate": sum(p > threshold for p in p_ret) / len(p_ret)}

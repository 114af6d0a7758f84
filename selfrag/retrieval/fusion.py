"""Fusing several ranked passage lists into one: reciprocal rank fusion and weighted (normalised) score fusion.

Pure functions over lists of `Passage` (stdlib only). A passage's identity is its `id`: the same id in several lists is
one passage, whose title/text are taken from its first appearance. Within one list only the first (best-ranked)
occurrence of an id counts. The fused passages carry the fused score in `Passage.score`, best first; equal fused
scores keep the order of first appearance (the first list's order, then new passages of the second list in its
order, and so on).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from selfrag.types import Passage

NORMALIZATIONS = ("minmax", "none")


def _check_weights(weights: Sequence[float] | None, n_lists: int) -> list[float]:
    if weights is None:
        return [1.0] * n_lists
    weights = list(weights)
    if len(weights) != n_lists:
        raise ValueError(f"weights has {len(weights)} entries for {n_lists} ranked lists; give one weight per list")
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weights[{i}] must be a finite number >= 0, got {w!r}")
    if n_lists and not any(w > 0 for w in weights):
        raise ValueError(f"at least one weight must be > 0, got {weights}")
    return [float(w) for w in weights]


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an integer >= 1 (or None for all), got {limit!r}")


def _first_occurrences(passages: Sequence[Passage]) -> list[tuple[int, Passage]]:
    """(1-based rank, passage) for the first occurrence of each id in one ranked list."""
    seen: set[str] = set()
    out = []
    for rank, passage in enumerate(passages, start=1):
        if passage.id not in seen:
            seen.add(passage.id)
            out.append((rank, passage))
    return out


def _ranked(first_seen: dict[str, Passage], fused: dict[str, float], limit: int | None) -> list[Passage]:
    # sorted() is stable and dicts keep insertion order, so equal scores stay in order of first appearance.
    ids = sorted(first_seen, key=lambda pid: -fused[pid])
    if limit is not None:
        ids = ids[:limit]
    return [dataclasses.replace(first_seen[pid], score=fused[pid]) for pid in ids]


def reciprocal_rank_fusion(
    ranked_lists: Sequence[Sequence[Passage]],
    *,
    k: float = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[Passage]:
    """Reciprocal rank fusion (Cormack et al., 2009): score(d) = sum_i w_i / (k + rank_i(d)).

    rank_i(d) is d's 1-based position in list i; a list without d adds nothing. Scores of the input passages are
    ignored, so lists from retrievers with incomparable scores (dense inner products, BM25) fuse safely.

    Args:
        ranked_lists: one ranked list per retriever, best first.
        k: the rank offset (> 0); larger k flattens the advantage of top ranks. 60 is the paper's value.
        weights: one weight (>= 0, at least one > 0) per list; None weighs every list 1. A passage found only by a
            list of weight 0 is still returned, with score 0, after the others.
        limit: keep only the best `limit` passages (>= 1); None keeps all.

    Returns:
        The union of the lists' passages, best first, `score` = the RRF score.

    Raises:
        ValueError: k <= 0, a weights length that differs from the number of lists, a negative weight, all weights
            zero, or limit < 1.
    """
    if isinstance(k, bool) or not isinstance(k, int | float) or not k > 0 or not math.isfinite(k):
        raise ValueError(f"RRF k must be a finite number > 0, got {k!r}")
    weights = _check_weights(weights, len(ranked_lists))
    _check_limit(limit)
    first_seen: dict[str, Passage] = {}
    fused: dict[str, float] = {}
    for passages, weight in zip(ranked_lists, weights):
        for rank, passage in _first_occurrences(passages):
            if passage.id not in first_seen:
                first_seen[passage.id] = passage
                fused[passage.id] = 0.0
            fused[passage.id] += weight / (k + rank)
    return _ranked(first_seen, fused, limit)


def _normalised(scored: list[tuple[int, Passage]], normalization: str, which: int) -> list[float]:
    scores = []
    for rank, passage in scored:
        if passage.score is None or not math.isfinite(passage.score):
            raise ValueError(f"weighted fusion needs finite scores, but ranked list {which} has score "
                             f"{passage.score!r} at rank {rank} (passage {passage.id!r}); use reciprocal_rank_fusion")
        scores.append(float(passage.score))
    if normalization == "none" or not scores:
        return scores
    low, high = min(scores), max(scores)
    if high == low:
        # Nothing to tell the list's passages apart: each counts as the list's best (1.0). Mapping them to 0 would
        # make a retriever that found a single passage (or tied ones) indistinguishable from one that missed it.
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def weighted_score_fusion(
    ranked_lists: Sequence[Sequence[Passage]],
    *,
    weights: Sequence[float] | None = None,
    normalization: str = "minmax",
    limit: int | None = None,
) -> list[Passage]:
    """Weighted sum of per-list normalised scores: score(d) = sum_i w_i * norm_i(d).

    With `normalization="minmax"`, norm_i(d) = (s_i(d) - min_i) / (max_i - min_i) over the passages of list i, so
    each list's best passage gets 1 and its worst 0. When all of a list's scores are equal (including a list of
    one passage) every passage of that list gets 1. A passage missing from list i gets norm_i = 0. With
    `normalization="none"` the raw scores are summed (only meaningful when the retrievers share a scale).

    Args:
        ranked_lists: one ranked list per retriever, best first, every passage with a finite `score`.
        weights: one weight (>= 0, at least one > 0) per list; None weighs every list 1.
        normalization: "minmax" or "none".
        limit: keep only the best `limit` passages (>= 1); None keeps all.

    Returns:
        The union of the lists' passages, best first, `score` = the fused score.

    Raises:
        ValueError: a weights length that differs from the number of lists, a negative weight, all weights zero,
            an unknown normalization, limit < 1, or a passage without a finite score.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    weights = _check_weights(weights, len(ranked_lists))
    _check_limit(limit)
    first_seen: dict[str, Passage] = {}
    fused: dict[str, float] = {}
    for which, (passages, weight) in enumerate(zip(ranked_lists, weights)):
        scored = _first_occurrences(passages)
        for (_, passage), norm in zip(scored, _normalised(scored, normalization, which)):
            if passage.id not in first_seen:
                first_seen[passage.id] = passage
                fused[passage.id] = 0.0
            fused[passage.id] += weight * norm
    return _ranked(first_seen, fused, limit)

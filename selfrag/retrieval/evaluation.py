"""Retrieval quality: answer recall@k (a passage counts when it contains a gold answer string), pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from selfrag.types import Passage


def contains_answer(passage: Passage, answers: Iterable[str]) -> bool:
    """Whether the passage's title or text contains any gold answer, case-insensitively (empty answers ignored)."""
    haystack = f"{passage.title}\n{passage.text}".lower()
    return any(a.strip() and a.strip().lower() in haystack for a in answers)


def answer_recall(
    ranked: Sequence[Sequence[Passage]], answers: Sequence[Sequence[str]], ks: Sequence[int]
) -> dict[int, float]:
    """Fraction of questions with an answer-bearing passage among their top k, for each k.

    Args:
        ranked: per question, retrieved passages best first.
        answers: per question, its gold answer strings (aliases).
        ks: cut-offs, each >= 1.
    """
    if len(ranked) != len(answers):
        raise ValueError(f"{len(ranked)} ranked lists for {len(answers)} answer lists")
    if not ranked:
        raise ValueError("no questions to evaluate")
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {list(ks)}")
    first_hit = []
    for passages, golds in zip(ranked, answers):
        rank = next((r for r, p in enumerate(passages, start=1) if contains_answer(p, golds)), None)
        first_hit.append(rank)
    return {k: sum(1 for r in first_hit if r is not None and r <= k) / len(ranked) for k in ks}

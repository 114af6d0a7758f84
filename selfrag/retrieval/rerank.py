"""Reranking a retriever's top candidates by how relevant a model judges each passage to the question.

`RerankingRetriever` asks its inner retriever for `candidates` passages per question, scores every
(question, passage) pair in one batched call of a `RelevanceScorer`, and returns the best `k` by that score (ties keep
the retriever's order). Scorers:

- `critic.relevance.CriticRelevance`: the critic's probability of `[Relevant]` for the pair (IsRel rubric, no
  reference answers: at inference there are none).
- `selfrag.decoding.frontend_models.GeneratorRelevance`: a Self-RAG generator's IsRel, P([Relevant]) renormalised
  against [Irrelevant] right after the passage block; the number the decoder itself weighs.
- `CrossEncoderRelevance` (here): a sentence-transformers cross-encoder's raw score (`retrieval.hybrid`).

The critic's scorer lives in the `critic` package, above this library (docs/architecture.md): it registers its
builder in `SCORER_BUILDERS` when `critic.relevance` is imported, which the scripts do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from selfrag.retrieval.base import Retriever
from selfrag.types import Passage

RERANKERS = ("none", "critic", "generator", "cross_encoder")
#: Scorer builders registered by higher layers (name -> builder(FrontEndConfig)); `critic.relevance` adds "critic".
SCORER_BUILDERS: dict[str, Callable[[Any], Any]] = {}


class RelevanceScorer(Protocol):
    """Scores (question, passage) pairs; higher is more relevant."""

    def relevance(self, pairs: Sequence[tuple[str, Passage]]) -> list[float]:
        """One score per pair, in input order."""
        ...


def rerank_by(passages: Sequence[Passage], scores: Sequence[float], k: int) -> list[Passage]:
    """The best `k` passages by `scores` (descending; equal scores keep the input order), `score` set to theirs."""
    order = sorted(range(len(passages)), key=lambda i: -scores[i])[:k]
    return [dataclasses.replace(passages[i], score=float(scores[i])) for i in order]


class RerankingRetriever:
    """A `Retriever` that reranks its inner retriever's top `candidates` by a `RelevanceScorer`."""

    def __init__(self, retriever: Retriever, scorer: RelevanceScorer, candidates: int = 20) -> None:
        if candidates < 1:
            raise ValueError(f"rerank candidates must be >= 1, got {candidates}")
        self.retriever = retriever
        self.scorer = scorer
        self.candidates = candidates

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        found = self.retriever.batch_search(queries, max(k, self.candidates))
        pairs = [(q, p) for q, passages in zip(queries, found) for p in passages]
        scores = self.scorer.relevance(pairs)
        results, start = [], 0
        for passages in found:
            results.append(rerank_by(passages, scores[start : start + len(passages)], k))
            start += len(passages)
        return results

    def queries_for(self, question: str) -> list[str] | None:
        inner = getattr(self.retriever, "queries_for", None)
        return inner(question) if callable(inner) else None

    def release_models(self) -> None:
        """Close the scorer's model (and the front-end's writer inside, if any)."""
        for part, verb in ((self.retriever, "release_models"), (self.scorer, "close")):
            close = getattr(part, verb, None)
            if callable(close):
                close()


class CrossEncoderRelevance:
    """A cross-encoder's raw score for each pair."""

    def __init__(self, model_path: str, batch_size: int = 32) -> None:
        from selfrag.retrieval.hybrid import CrossEncoderReranker

        self.model = CrossEncoderReranker(model_path, batch_size=batch_size).model
        self.batch_size = batch_size

    def relevance(self, pairs: Sequence[tuple[str, Passage]]) -> list[float]:
        if not pairs:
            return []
        texts = [(q, f"{p.title} {p.text}".strip()) for q, p in pairs]
        return [float(s) for s in self.model.predict(texts, batch_size=self.batch_size, show_progress_bar=False)]

"""Hybrid retrieval: several retrievers (typically dense + BM25) fused into one ranking, optionally re-ranked.

This module owns the composition: `HybridRetriever` asks each retriever for candidates, fuses them with
`selfrag.retrieval.fusion`, and hands the fused candidates to an optional `Reranker` (e.g. a cross-encoder) before
cutting to k. Index files are not its concern: each part is any `Retriever` (see `factory.py` for the `hybrid` index
directory layout).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from selfrag.io import InputError
from selfrag.retrieval.base import Retriever
from selfrag.retrieval.fusion import reciprocal_rank_fusion, weighted_score_fusion
from selfrag.types import Passage

FUSIONS = ("rrf", "weighted")


@runtime_checkable
class Reranker(Protocol):
    """Re-scores the candidates of one query."""

    def rerank(self, query: str, passages: Sequence[Passage]) -> list[Passage]:
        """The same passages with new `score`s, best first."""
        ...


class HybridRetriever:
    """Fuses the rankings of several retrievers; implements `selfrag.retrieval.base.Retriever`.

    Per query, each retriever returns `max(candidates, k)` passages (k when `candidates` is None), the lists are
    fused by reciprocal rank fusion (`fusion="rrf"`) or weighted min-max score fusion (`fusion="weighted"`), and the
    best k are returned. With a `reranker`, the best `max(candidates, k)` fused passages are re-ranked first and the
    reranker's top k (with its scores) are returned.
    """

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        *,
        fusion: str = "rrf",
        rrf_k: float = 60,
        weights: Sequence[float] | None = None,
        candidates: int | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        """Compose retrievers.

        Args:
            retrievers: the parts, at least one (order matches `weights`, and breaks fused ties: earlier first).
            fusion: "rrf" or "weighted".
            rrf_k: the RRF rank offset (> 0); unused by weighted fusion.
            weights: one weight >= 0 per retriever (at least one > 0); None = equal.
            candidates: passages each retriever contributes per query (>= 1); None = k.
            reranker: re-scores the fused candidates; None keeps the fused order.

        Raises:
            InputError: an invalid setting (named as in the `hybrid` retriever config).
        """
        if not retrievers:
            raise InputError("a hybrid retriever needs at least one retriever")
        if fusion not in FUSIONS:
            raise InputError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int | float) or not rrf_k > 0 or not math.isfinite(rrf_k):
            raise InputError(f"rrf_k must be a number > 0, got {rrf_k!r}")
        if weights is not None:
            weights = list(weights)
            if len(weights) != len(retrievers):
                raise InputError(f"weights has {len(weights)} entries for {len(retrievers)} retrievers")
            if any(isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0
                   for w in weights) or not any(w > 0 for w in weights):
                raise InputError(f"weights must be numbers >= 0, at least one > 0, got {weights}")
        if candidates is not None and (isinstance(candidates, bool) or not isinstance(candidates, int)
                                       or candidates < 1):
            raise InputError(f"candidates must be an integer >= 1 (or null for k), got {candidates!r}")
        self.retrievers = list(retrievers)
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.weights = weights
        self.candidates = candidates
        self.reranker = reranker

    def fuse(self, ranked_lists: Sequence[Sequence[Passage]], limit: int | None) -> list[Passage]:
        """Fuse one query's per-retriever lists with this retriever's settings."""
        if self.fusion == "rrf":
            return reciprocal_rank_fusion(ranked_lists, k=self.rrf_k, weights=self.weights, limit=limit)
        return weighted_score_fusion(ranked_lists, weights=self.weights, limit=limit)

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """For each query, up to `k` fused (and re-ranked, with a reranker) passages, best first, `score` set.

        Raises:
            ValueError: k < 1, or a part returned a number of lists other than the number of queries.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not queries:
            return []
        fetch = max(self.candidates or k, k)
        per_retriever = [retriever.batch_search(queries, fetch) for retriever in self.retrievers]
        for i, lists in enumerate(per_retriever):
            if len(lists) != len(queries):
                raise ValueError(f"retriever {i} ({type(self.retrievers[i]).__name__}) returned {len(lists)} "
                                 f"result lists for {len(queries)} queries")
        results = []
        for q, query in enumerate(queries):
            ranked_lists = [lists[q] for lists in per_retriever]
            if self.reranker is None:
                results.append(self.fuse(ranked_lists, limit=k))
            else:
                results.append(self.reranker.rerank(query, self.fuse(ranked_lists, limit=fetch))[:k])
        return results

    def search(self, query: str, k: int) -> list[Passage]:
        """The `k` best passages for one query (see `batch_search`)."""
        return self.batch_search([query], k)[0]


class CrossEncoderReranker:
    """Re-scores (query, passage) pairs with a `sentence_transformers.CrossEncoder`; implements `Reranker`.

    The passage side is "title text". Scores are the model's raw outputs (higher = more relevant); equal scores keep
    the input order.

    Not exercised by the test suite: no cross-encoder model is available offline here, so only the `Reranker`
    protocol is tested (with a fake). Running it needs sentence-transformers and a local model directory (or a hub
    id where a hub is reachable), e.g. a cross-encoder/ms-marco-MiniLM-L-6-v2 checkout.
    """

    def __init__(self, model_path: str, batch_size: int = 32, device: str = "auto") -> None:
        """Load the cross-encoder.

        Args:
            model_path: a CrossEncoder model directory (or hub id).
            batch_size: pairs scored per forward pass (>= 1).
            device: "auto" (CUDA when available, else CPU), or a torch device string such as "cpu" or "cuda:0".

        Raises:
            ValueError: batch_size < 1.
            ImportError: sentence-transformers is not installed.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as err:
            raise ImportError("CrossEncoderReranker needs sentence-transformers: pip install sentence-transformers"
                              ) from err
        self.batch_size = batch_size
        # device=None lets sentence-transformers pick CUDA (or MPS) when present, which is what "auto" means.
        self.model: Any = CrossEncoder(model_path, device=None if device == "auto" else device)

    def rerank(self, query: str, passages: Sequence[Passage]) -> list[Passage]:
        """The passages re-scored by the cross-encoder, best first."""
        if not passages:
            return []
        pairs = [(query, f"{p.title} {p.text}".strip()) for p in passages]
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True)
        rescored = [Passage(id=p.id, title=p.title, text=p.text, score=float(s)) for p, s in zip(passages, scores)]
        return sorted(rescored, key=lambda p: -(p.score or 0.0))

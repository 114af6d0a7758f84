"""The retriever protocol the decoder queries for live retrieval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from selfrag.types import Passage


@runtime_checkable
class Retriever(Protocol):
    """Anything that returns the best `k` passages for each query string, best first, in input order."""

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """For each query, up to `k` passages with `score` set, best first; one list per query, in input order."""
        ...

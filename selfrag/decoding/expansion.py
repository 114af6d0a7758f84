"""What the decoder and the long-form search exchange: a continuation to generate, what generating it gave, and the
decoder operations the search calls.

`selfrag.decoding.pipeline.SelfRAG` implements `Expander`; `selfrag.decoding.beam` is written against the protocol
alone. So the imports run one way, pipeline -> beam -> expansion, and the search can be driven by any object with
these four operations (the tests use scripted ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from selfrag.decoding.config import DecodingConfig
from selfrag.types import Candidate, Passage, Query


@dataclass(frozen=True)
class Expansion:
    """A continuation to generate: from the token ids `prefix`, after `passage` (inserted as
    `<paragraph>title\\ntext</paragraph>`) or, when `passage` is None, after `[No Retrieval]`."""

    prefix: tuple[int, ...]
    passage: Passage | None


@dataclass(frozen=True)
class Continuation:
    """What generating one `Expansion` gave: the critiqued candidate and the ids to go on from.

    Attributes:
        candidate: the generated text with its critique probabilities.
        prompt: the ids generation started from: the expansion's prefix plus the passage block or `[No Retrieval]`.
        generated: the generated ids, less a final `[Retrieval]` (long form stops there; the next expansion
            writes it again before its passage); a final EOS is kept, as it ends the beam anyway.
        next_p_retrieve: p_ret where generation stopped on `[Retrieval]` (the model asks for another segment), else
            None.
    """

    candidate: Candidate
    prompt: tuple[int, ...]
    generated: tuple[int, ...]
    next_p_retrieve: float | None

    @property
    def ids(self) -> tuple[int, ...]:
        """`prompt + generated`: where the next segment starts."""
        return self.prompt + self.generated


class Expander(Protocol):
    """The decoder operations the long-form search needs (`SelfRAG` has them)."""

    @property
    def config(self) -> DecodingConfig:
        """The decoding settings (mode, threshold, ndocs, weights, beam width, depth)."""
        ...

    def prompt_ids(self, query: Query) -> tuple[int, ...]:
        """Token ids of the prompt for `query`."""
        ...

    def retrieve_probabilities(self, prefixes: Sequence[tuple[int, ...]]) -> list[float]:
        """p_ret at the end of each prefix."""
        ...

    def find_passages(self, queries: Sequence[Query], contexts: Sequence[str]) -> list[list[Passage]]:
        """Top-`ndocs` passages per query (static, else live for the query text plus its context)."""
        ...

    def expand(self, expansions: Sequence[Expansion], *, stop_at_retrieval: bool) -> list[Continuation]:
        """Generate and critique one continuation per expansion, in order."""
        ...

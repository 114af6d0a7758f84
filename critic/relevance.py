"""The critic as a reranker (`retriever.rerank=critic`): its probability of `[Relevant]` for (question, passage).

At inference there are no gold answers, so the prompt is the critic's IsRel prompt without the reference-answers line
it was trained with; how well it ranks that way is measured, not assumed (docs/retrieval.md). Importing this module
registers the scorer's builder in `selfrag.retrieval.rerank.SCORER_BUILDERS` (the library does not import `critic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from critic.aspects import ISREL, LabelItem
from critic.critic_model import CriticLabeler, open_critic
from critic.prompts import critic_prompt
from selfrag import tokens as T
from selfrag.models.loading import ModelSpec
from selfrag.retrieval.rerank import SCORER_BUILDERS
from selfrag.types import Passage

#: The shipped critic adapter (`rerank_options.model_path=null`).
SHIPPED_CRITIC = Path(__file__).resolve().parents[1] / "artifacts" / "critic-smollm2-135m"


class CriticRelevance:
    """The critic's P([Relevant]) for each pair, renormalised over IsRel's two labels, in batches."""

    def __init__(self, labeler: CriticLabeler) -> None:
        self.labeler = labeler

    def relevance(self, pairs: Sequence[tuple[str, Passage]]) -> list[float]:
        prompts = [(ISREL, critic_prompt(LabelItem(ISREL, str(i), question, evidence=passage)))
                   for i, (question, passage) in enumerate(pairs)]
        return [dist[T.RELEVANT] for dist in self.labeler.label_distributions(prompts)]

    def close(self) -> None:
        self.labeler.backend.close()


def open_critic_relevance(config: Any) -> CriticRelevance:
    """The critic scorer a `FrontEndConfig` asks for (`rerank_options.model_path`: an adapter; null: the shipped)."""
    adapter = config.rerank_model or str(SHIPPED_CRITIC)
    spec = ModelSpec(name="critic", packaged="smollm2_135m_instruct", add_reflection_tokens=True, adapter=adapter)
    return CriticRelevance(open_critic(spec, config.rerank_backend))


SCORER_BUILDERS["critic"] = open_critic_relevance

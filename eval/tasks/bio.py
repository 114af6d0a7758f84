"""Biography generation: FactScore against knowledge about the entity, and output length.

There is no gold answer string: the gold of a row is its `topic` (the entity) and its passages (`ctxs`, the knowledge
the FactScore-style scorer checks facts against). Metrics per question: `factscore` (with FactScore's length
penalty; primary), `factscore_init` (without it), `n_facts`, each `Unavailable` unless a `FactScorer` is configured,
and `length` (words of the answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eval.components import FactScorer, FactScoreResult, Unavailable, format_passage
from eval.tasks.common import Scores, mean_scores, prediction_text
from selfrag.io import InputError


@dataclass(frozen=True)
class BioGold:
    """What a biography is checked against: the entity and passages about it."""

    topic: str
    knowledge: tuple[str, ...]


_NO_SCORER = Unavailable("no FactScore scorer configured: FactScore needs a fact-checking model and a knowledge "
                         "source (the paper used factscore v0.1.5 with ChatGPT); configure one to score Bio")


class Bio:
    """Bio scoring (see the module docstring).

    Args:
        fact_scorer: the FactScore implementation; None makes `factscore` `Unavailable`.
    """

    name = "bio"
    metrics = ("factscore", "factscore_init", "n_facts", "length")

    def __init__(self, fact_scorer: FactScorer | None = None) -> None:
        self.fact_scorer = fact_scorer

    def gold(self, row: Mapping[str, Any], *, where: str = "input row") -> BioGold:
        """The topic (`topic`, else `question`/`input`) and the row's passages as knowledge."""
        topic = next((row[k] for k in ("topic", "question", "input") if isinstance(row.get(k), str) and row[k]), None)
        if topic is None:
            raise InputError(f"{where}: no `topic`; Bio rows need the entity name (FactScore's topic)")
        ctxs = row.get("ctxs") or []
        if not isinstance(ctxs, list) or not all(isinstance(c, Mapping) and "text" in c for c in ctxs):
            raise InputError(f"{where}: `ctxs` must be a list of {{title, text}} objects")
        return BioGold(topic, tuple(format_passage(str(c.get("title") or ""), str(c["text"])) for c in ctxs))

    def score(self, prediction: Mapping[str, Any], gold: BioGold) -> Scores:
        """FactScore (or why not) and length of one biography."""
        text = prediction_text(prediction)
        result = _NO_SCORER if self.fact_scorer is None else self.fact_scorer.score(gold.topic, text, gold.knowledge)
        if isinstance(result, FactScoreResult):
            scores: Scores = {"factscore": result.score, "factscore_init": result.init_score,
                              "n_facts": float(result.n_facts)}
        else:
            scores = {"factscore": result, "factscore_init": result, "n_facts": result}
        scores["length"] = float(len(text.split()))
        return scores

    def aggregate(self, per_question: Mapping[str, Scores] | Iterable[Scores]) -> dict[str, Any]:
        """Means of the metrics (FactScore stays `Unavailable` when it was), with `n`."""
        return mean_scores(per_question)


def task(*, fact_scorer: FactScorer | None = None) -> Bio:
    """The Bio task, with FactScore when `fact_scorer` is given."""
    return Bio(fact_scorer)

"""Open-domain QA whose gold is a list of alias strings, scored by answer presence (PopQA, TriviaQA, NQ).

Metrics per question: `match` (normalised substring; primary), `match_original` (the reference code's case-sensitive
substring: the paper's number), `em` and `f1` (SQuAD).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eval.metrics import exact_match, f1, match, match_original
from eval.tasks.common import Scores, mean_scores, prediction_text
from selfrag.inputs import gold_strings


class ShortFormQA:
    """Open-domain QA whose gold is a list of alias strings (shared by PopQA and TriviaQA).

    Args:
        name: the task name.
        gold_keys: the row fields holding gold answers, in order of preference.
    """

    metrics = ("match", "match_original", "em", "f1")

    def __init__(self, name: str, gold_keys: tuple[str, ...]) -> None:
        self.name = name
        self.gold_keys = gold_keys

    def gold(self, row: Mapping[str, Any], *, where: str = "input row") -> tuple[str, ...]:
        """The gold aliases (InputError naming `where` when the row has none)."""
        return gold_strings(row, self.gold_keys, where=where)

    def score(self, prediction: Mapping[str, Any], gold: tuple[str, ...]) -> Scores:
        """match / match_original / em / f1 of the prediction's answer against the aliases."""
        text = prediction_text(prediction)
        return {
            "match": match(text, gold),
            "match_original": match_original(text, gold),
            "em": exact_match(text, gold),
            "f1": f1(text, gold),
        }

    def aggregate(self, per_question: Mapping[str, Scores] | Iterable[Scores]) -> dict[str, Any]:
        """Means of the four metrics, with `n`."""
        return mean_scores(per_question)

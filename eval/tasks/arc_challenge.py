"""ARC-Challenge: multiple choice, scored by closed-set accuracy on the option letter.

Gold: `answerKey` and `choices {text[], label[]}`; numeric labels 1-5 become A-E, as `selfrag.inputs` shows them to
the model. Metrics per question: `accuracy` (the prediction mapped to a letter by `eval.metrics.normalize_choice`;
primary) and `match_original` (the reference code's `--metric match`, a case-sensitive substring test: any capital
"A" in the output matches gold "A", so it over-counts; kept only for comparison with published numbers). The
normalised `match` of the QA tasks is left out on purpose: normalisation deletes the article "a", so gold "A" would
become empty, and a lower-case letter is a substring of almost any answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eval.metrics import accuracy, match_original
from eval.tasks.common import Scores, mean_scores, prediction_text
from selfrag.io import InputError

_NUMERIC_LABELS = {"1": "A", "2": "B", "3": "C", "4": "D", "5": "E"}


def letter(label: object) -> str:
    """An ARC option label as the model sees it: "1".."5" -> "A".."E", letters unchanged."""
    text = str(label).strip()
    return _NUMERIC_LABELS.get(text, text)


@dataclass(frozen=True)
class ChoiceGold:
    """The gold of a multiple-choice question: the answer letter and every option (letter -> text)."""

    answer: str
    choices: dict[str, str]


class ArcChallenge:
    """ARC-Challenge scoring (see the module docstring)."""

    name = "arc_challenge"
    metrics = ("accuracy", "match_original")

    def gold(self, row: Mapping[str, Any], *, where: str = "input row") -> ChoiceGold:
        """The answer letter and options of an ARC row (InputError naming `where` and the key when malformed)."""
        key = row.get("answerKey")
        if key in (None, ""):
            raise InputError(f"{where}: no `answerKey`; ARC-Challenge rows need the gold option label")
        choices = row.get("choices")
        if not isinstance(choices, Mapping) or not choices.get("label") or not choices.get("text"):
            raise InputError(f"{where}: task=arc_challenge needs `choices` with `text` and `label` lists")
        if len(choices["label"]) != len(choices["text"]):
            raise InputError(f"{where}: `choices.label` and `choices.text` have different lengths")
        options = {letter(label): str(text) for label, text in zip(choices["label"], choices["text"])}
        answer = letter(key)
        if answer not in options:
            raise InputError(f"{where}: answerKey {key!r} is not one of the option labels {list(choices['label'])}")
        return ChoiceGold(answer, options)

    def score(self, prediction: Mapping[str, Any], gold: ChoiceGold) -> Scores:
        """accuracy and match_original of the prediction's answer against the gold letter."""
        text = prediction_text(prediction)
        return {
            "accuracy": accuracy(text, gold.answer, gold.choices),
            "match_original": match_original(text, [gold.answer]),
        }

    def aggregate(self, per_question: Mapping[str, Scores] | Iterable[Scores]) -> dict[str, Any]:
        """Means of the metrics, with `n`."""
        return mean_scores(per_question)


def task() -> ArcChallenge:
    """The ARC-Challenge task."""
    return ArcChallenge()

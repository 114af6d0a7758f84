"""PubHealth: true/false fact checking of health claims, scored by closed-set accuracy.

Gold: a binary label in `label`, `answers` or `answer` ("true"/"false", or SUPPORTS/REFUTES and the other words of
`eval.metrics.normalize_true_false`). The shared `pubhealth_claims_unlabeled.jsonl` has no labels, so it cannot be
scored: reading its gold raises an InputError that says so. Metrics per question: `accuracy` (primary), `match`
(normalised substring of "true"/"false") and `match_original` (the reference code's substring test on the
lower-cased prediction, as it lower-cases fact-checking predictions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eval.metrics import accuracy, match, match_original, normalize_true_false
from eval.tasks.common import Scores, mean_scores, prediction_text
from selfrag.io import InputError

_LABEL_KEYS = ("label", "answers", "answer", "golds")


class PubHealth:
    """PubHealth scoring (see the module docstring)."""

    name = "pubhealth"
    metrics = ("accuracy", "match", "match_original")

    def gold(self, row: Mapping[str, Any], *, where: str = "input row") -> str:
        """The gold label, "true" or "false".

        Raises:
            InputError: the row has no label (the message says the file has no gold labels) or a non-binary one
                (PubHealth's "mixture"/"unproven" are not part of the Self-RAG evaluation).
        """
        key = next((k for k in _LABEL_KEYS if row.get(k) not in (None, "", [])), None)
        if key is None:
            raise InputError(
                f"{where}: no gold labels in this file (none of the fields {list(_LABEL_KEYS)}); PubHealth can only "
                "be scored against a labelled file such as Self-RAG's health_claims_processed.jsonl. The shared "
                "pubhealth_claims_unlabeled.jsonl has claims only: run inference on it, but do not score it"
            )
        value = row[key]
        raw = value[0] if isinstance(value, list) else value
        label = normalize_true_false(str(raw))
        if label is None or (isinstance(value, list) and len({normalize_true_false(str(v)) for v in value}) > 1):
            raise InputError(f"{where}: `{key}` is {value!r}, not a binary true/false label; Self-RAG scores "
                             "true/false claims only (drop mixture/unproven rows)")
        return label

    def score(self, prediction: Mapping[str, Any], gold: str) -> Scores:
        """accuracy / match / match_original of the prediction's answer against the gold label."""
        text = prediction_text(prediction)
        return {
            "accuracy": accuracy(text, gold),
            "match": match(text, [gold]),
            "match_original": match_original(text.lower(), [gold]),
        }

    def aggregate(self, per_question: Mapping[str, Scores] | Iterable[Scores]) -> dict[str, Any]:
        """Means of the metrics, with `n`."""
        return mean_scores(per_question)


def task() -> PubHealth:
    """The PubHealth task."""
    return PubHealth()

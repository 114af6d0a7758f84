"""PopQA (long-tail): open-domain QA scored by gold-answer presence, as in the paper.

Gold: the row's `answers` list (the Self-RAG files), or `possible_answers` (the HF release, a JSON-encoded list).
Metrics per question: `match` (normalised substring; primary), `match_original` (the reference code's case-sensitive
substring: the paper's number), `em` and `f1` (SQuAD); see `eval.tasks.short_form`.
"""

from __future__ import annotations

from eval.tasks.short_form import ShortFormQA


def task() -> ShortFormQA:
    """The PopQA task."""
    return ShortFormQA("popqa", ("answers", "possible_answers", "golds", "golden_answers"))

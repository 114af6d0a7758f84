"""TriviaQA (unfiltered; also usable for NQ-style files): open-domain QA scored like PopQA.

Gold: `answers` (Self-RAG's `triviaqa_test_w_gs.jsonl`), `golds`, or `golden_answers` (FlashRAG/NQ format).
Metrics per question: `match` (primary), `match_original` (the paper's number), `em`, `f1`.
"""

from __future__ import annotations

from eval.tasks.short_form import ShortFormQA


def task() -> ShortFormQA:
    """The TriviaQA task."""
    return ShortFormQA("triviaqa", ("answers", "golds", "golden_answers", "possible_answers"))

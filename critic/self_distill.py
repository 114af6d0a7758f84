"""Self-distilled answers: the answer of a `[Relevant]` row rewritten in the base model's own words.

Fine-tuning the 135M base on rows whose answer is a bare gold string ("journalist") cost it its ability to answer from
a passage (docs/results/dev-retrain/: standard RAG 42% for the base, 16-19% after 100 steps on such rows). The rows
teach an answer *distribution* the base never produces. Here the base reads the row's passage in its own standard-RAG
prompt and answers; where that answer states the row's (gold) answer, it replaces the bare string, so the generator
learns the reflection tokens around answers it already writes, and stays close to the base where it reads well.

Only rows of one segment citing one `[Relevant]` passage are rewritten (the others have no passage to read or no
answer in it); the answer kept is the base's text up to the first sentence that contains the row's answer, at most
`max_sentences` sentences, so no later unsupported sentence rides along under `[Fully supported]`. The pure parts
live here; `scripts/distill_answers.py` runs the base model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from selfrag import tokens as T
from selfrag.types import Passage

_SUPPORT = "|".join(re.escape(t) for t in (T.FULLY_SUPPORTED, T.PARTIALLY_SUPPORTED, T.NO_SUPPORT))
_UTILITY = "|".join(re.escape(t) for t in T.UTILITY)
# One segment: [Retrieval]<paragraph>title\ntext</paragraph>[Relevant]answer[IsSup][Utility:k], nothing else.
_RELEVANT_ROW = re.compile(
    re.escape(T.RETRIEVAL + T.PARAGRAPH_OPEN) + r"(?P<passage>.*?)" + re.escape(T.PARAGRAPH_CLOSE + T.RELEVANT)
    + r"(?P<answer>.*?)(?:" + _SUPPORT + r")(?:" + _UTILITY + r")$",
    re.DOTALL,
)
# A sentence ends at . ! or ? followed by whitespace. Deliberately simple (pysbd, critic/segments.py, keeps "Jr." in
# its sentence): the shipped distilled data was made with this rule, and the rule is part of what makes it reproducible.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Markup a base answer must not carry into the training row (it would teach the generator to emit it mid-answer).
_MARKUP = re.compile(r"[\[\]<>]")


@dataclass(frozen=True)
class RelevantRow:
    """Where a single-segment `[Relevant]` row's passage and answer are.

    Attributes:
        passage: the cited passage (title = the paragraph's first line).
        answer: the row's answer text, stripped.
        span: (start, end) of the answer text in the row's `output`.
    """

    passage: Passage
    answer: str
    span: tuple[int, int]


def relevant_row(output: str) -> RelevantRow | None:
    """The passage and answer of `output` when it is one segment citing one `[Relevant]` passage, else None."""
    match = _RELEVANT_ROW.fullmatch(output)
    if match is None or not match.group("answer").strip():
        return None
    if T.find_tokens(match.group("passage")) or T.find_tokens(match.group("answer")):
        return None  # more than one segment
    title, _, text = match.group("passage").partition("\n")
    return RelevantRow(Passage(id="", title=title, text=text), match.group("answer").strip(), match.span("answer"))


def base_answer(generated: str, reference: str, *, max_sentences: int = 2) -> str | None:
    """The base's answer cut after its first sentence that contains `reference` (case-insensitive), or None when none
    of its first `max_sentences` sentences does, or the kept text carries brackets or angle brackets. Sentences end
    at `.`, `!` or `?` followed by whitespace; the kept ones are joined by one space."""
    sentences = _SENTENCE_END.split(generated.strip())
    for count, sentence in enumerate(sentences[:max_sentences], start=1):
        if reference.lower() in sentence.lower():
            kept = " ".join(sentences[:count]).strip()
            return None if _MARKUP.search(kept) else kept
    return None


def with_answer(row: Mapping[str, Any], found: RelevantRow, answer: str) -> dict[str, Any]:
    """A copy of `row` whose answer text is `answer` (tokens and passage unchanged), marked `answer_source: base`."""
    start, end = found.span
    output = row["output"]
    return {**row, "output": output[:start] + answer + output[end:], "answer_source": "base"}


def is_rejected_variant(row_id: str) -> bool:
    """Whether `row_id` names a rejected-passage variant (`{seed}/rejN`, critic.annotate.RowVariants)."""
    return re.search(r"/rej\d+$", row_id) is not None

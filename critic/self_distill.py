"""Self-distilled answers: the answer of a `[Relevant]` row rewritten in the base model's own words.

Fine-tuning the 135M base on rows whose answer is a bare gold string ("journalist") cost it its ability to answer from
a passage (docs/results/dev-retrain/: standard RAG 42% for the base, 16-19% after 100 steps on such rows). The rows
teach an answer *distribution* the base never produces. Here the base reads the row's passage in its own standard-RAG
prompt and answers; where that answer states the row's (gold) answer, it replaces the bare string, so the generator
learns the reflection tokens around answers it already writes, and stays close to the base where it reads well.

Only rows of one segment citing one `[Relevant]` passage are rewritten (the others have no passage to read or no
answer in it); the answer kept is the base's text up to the first sentence that contains the row's answer, at most
`max_sentences` sentences, so no later unsupported sentence rides along under `[Fully supported]`.

Optionally (`abstain_unknown`) the rows of one segment citing one `[Irrelevant]` passage change too. Their answer is
the bare gold string, which the passage does not hold: for a long-tail question the generator can only learn to guess
beside a useless passage. The base answers such a question closed-book (no passage); where its answer states the
row's answer it knows it, and its own sentence replaces the bare string; where it does not, the answer becomes an
abstention (`ABSTENTION`) rated `[Utility:1]` (a reply that does not answer is not useful). So the generator learns to
answer from memory what its base knows and to say so where neither the passage nor its memory holds the answer
(the refusal-aware idea of R-Tuning, Zhang et al. 2024, applied to the rows after a rejected passage).

The pure parts and the resumable generation loop (`generate_resumably`) live here; `scripts/distill_answers.py`
loads the base model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from critic.released import AnnotatedOutput, parse_output, passage_of
from selfrag import tokens as T
from selfrag.decoding.backend import Backend
from selfrag.io import append_jsonl, iter_jsonl, read_done_ids
from selfrag.types import Passage

# A sentence ends at . ! or ? followed by whitespace. Deliberately simple (pysbd, critic/segments.py, keeps "Jr." in
# its sentence): the shipped distilled data was made with this rule, and the rule is part of what makes it reproducible.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Markup a base answer must not carry into the training row (it would teach the generator to emit it mid-answer).
_MARKUP = re.compile(r"[\[\]<>]")


def split_sentences(text: str) -> list[str]:
    """`text` split at each sentence end (. ! or ? followed by whitespace), the rule the distilled data was cut by."""
    return _SENTENCE_END.split(text.strip())


#: The answer of an `[Irrelevant]` row whose question the base cannot answer closed-book (`with_abstention`).
ABSTENTION = "I don't know."


@dataclass(frozen=True)
class PassageRow:
    """A single-segment row citing one passage (`relevant_row`, `irrelevant_row`), parsed.

    Attributes:
        passage: the cited passage (title = the paragraph's first line).
        answer: the row's answer text, stripped.
        parsed: the whole output (`critic.released`), from which `with_answer` composes the rewritten one.
    """

    passage: Passage
    answer: str
    parsed: AnnotatedOutput


def _passage_row(output: str, rel: str) -> PassageRow | None:
    """`output` parsed when it is one `[Retrieval]` segment citing one passage judged `rel`, with a non-empty answer,
    an IsSup token exactly when `rel` is `[Relevant]`, and nothing after its utility token; else None."""
    parsed = parse_output(output)
    if len(parsed.segments) != 1 or parsed.utility is None or parsed.tail:
        return None
    segment = parsed.segments[0]
    if (segment.decision != T.RETRIEVAL or segment.passage is None or segment.rel != rel
            or (segment.sup is not None) != (rel == T.RELEVANT) or not segment.text.strip()):
        return None
    return PassageRow(passage_of(segment.passage), segment.text.strip(), parsed)


def relevant_row(output: str) -> PassageRow | None:
    """The passage and answer of `output` when it is exactly `[Retrieval]<paragraph>..</paragraph>[Relevant]answer
    [IsSup][Utility:k]` (one segment, a non-empty answer, nothing after the utility token), else None."""
    return _passage_row(output, T.RELEVANT)


def irrelevant_row(output: str) -> PassageRow | None:
    """The passage and answer of `output` when it is exactly `[Retrieval]<paragraph>..</paragraph>[Irrelevant]answer
    [Utility:k]` (one segment, a non-empty answer, no IsSup, nothing after the utility token), else None."""
    return _passage_row(output, T.IRRELEVANT)


def base_answer(
    generated: str, reference: str, *, max_sentences: int = 2, whole: bool = False, cut_off: bool = False
) -> str | None:
    """The base's answer cut after its first sentence that contains `reference` (case-insensitive), or None when none
    of its first `max_sentences` sentences does, or the kept text carries brackets or angle brackets. Sentences end
    at `.`, `!` or `?` followed by whitespace; the kept ones are joined by one space.

    With `whole`, every sentence is kept once one of the first `max_sentences` holds `reference` (the base's own
    text, at the cost of later sentences the passage may not support); when `cut_off` (generation hit its token
    limit) the last sentence is unfinished and is dropped, unless it is the one holding `reference`.
    """
    sentences = split_sentences(generated)
    for count, sentence in enumerate(sentences[:max_sentences], start=1):
        if reference.lower() in sentence.lower():
            if whole:
                count = max(count, len(sentences) - 1 if cut_off else len(sentences))
            kept = " ".join(sentences[:count]).strip()
            return None if _MARKUP.search(kept) else kept
    return None


def with_answer(row: Mapping[str, Any], found: PassageRow, answer: str, *, source: str = "base") -> dict[str, Any]:
    """A copy of `row` whose answer text is `answer` (tokens and passage unchanged), marked `answer_source: source`."""
    segment = replace(found.parsed.segments[0], text=answer)
    return {**row, "output": replace(found.parsed, segments=(segment,)).compose(), "answer_source": source}


def with_abstention(row: Mapping[str, Any], found: PassageRow, text: str = ABSTENTION) -> dict[str, Any]:
    """A copy of the `[Irrelevant]` row `row` whose answer is the abstention `text`, rated `[Utility:1]`, marked
    `answer_source: abstention` (decision, passage and IsRel unchanged)."""
    abstaining = replace(found, parsed=replace(found.parsed, utility=T.UTILITY[0]))
    return with_answer(row, abstaining, text, source="abstention")  # with_answer composes the whole output anew


def generate_resumably(open_engine: Callable[[], Backend], prompts: dict[str, list[int]], path: Path, *,
                       save_every: int, max_new_tokens: int, stop_token_ids: list[int]) -> dict[str, dict]:
    """The greedy answer to every prompt (by row id), generating only those not already in `path`.

    The engine is opened only when something is left to generate. Each batch of `save_every` prompts is appended to
    `path` ({id, token_ids, stopped}) as soon as it is generated, so a crash loses at most one batch. Returns the
    generations in `path` of the ids in `prompts`.
    """
    done = read_done_ids(path)
    todo = [row_id for row_id in prompts if row_id not in done]
    if todo:
        engine = open_engine()
        try:
            for start in range(0, len(todo), save_every):
                batch = todo[start:start + save_every]
                completions = engine.generate([prompts[row_id] for row_id in batch], max_new_tokens=max_new_tokens,
                                              stop_token_ids=stop_token_ids)
                append_jsonl(path, ({"id": row_id, "token_ids": list(c.token_ids), "stopped": c.stopped}
                                    for row_id, c in zip(batch, completions)))
        finally:
            engine.close()
    if not path.exists():  # nothing to generate and nothing generated before: no file was ever written
        return {}
    return {row["id"]: row for _, row in iter_jsonl(path) if row["id"] in prompts}

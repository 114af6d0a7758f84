"""Is a generator's output well-formed Self-RAG? The reflection-token grammar of one short-form candidate.

The decoder feeds the model its prompt and then either `<paragraph>passage</paragraph>` (a retrieval candidate) or
`[No Retrieval]`, and reads the critique from what the model generates next (`Candidate.text`). That continuation
is well-formed when it follows the grammar of the training data (the released rows and `critic.annotate`):

- after a passage: `[Relevant]` or `[Irrelevant]` first, then the answer, then (after `[Relevant]`) one IsSup token
  (`[Fully supported]`, `[Partially supported]` or `[No support / Contradictory]`), then `[Utility:k]` last;
- without a passage: the answer, then `[Utility:k]` last;
- exactly one IsRel token (after a passage) and none without one; no passage markup (`<paragraph>`, `</paragraph>`)
  or `[Retrieval]` inside the continuation (short-form decoding never stops for a second retrieval, so one there is
  a made-up passage);
- the answer (text with passages and tokens removed) is not empty, there is exactly one utility token and nothing
  but whitespace follows it, and the generation finished (was not cut off by `max_new_tokens`).

Further segments between the first answer and the utility token (`[No Retrieval]`, `[Continue to Use Evidence]`,
another IsSup) are allowed, as in multi-sentence training rows. A candidate that breaks a rule gets the first
rule it breaks as its problem, so a run's problems can be counted (`well_formed_summary`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from selfrag import tokens as T
from selfrag.decoding.records import candidate_from_json
from selfrag.prompts import response_text

NOT_FINISHED = "cut off by max_new_tokens"
NO_ISREL_FIRST = "no IsRel token first after the passage"
STRAY_PASSAGE = "passage markup or [Retrieval] inside the continuation"
SEVERAL_ISREL = "more than one IsRel token (or one without a passage)"
EMPTY_ANSWER = "empty answer"
NO_ISSUP = "no IsSup token after [Relevant]"
NO_UTILITY_LAST = "no utility token at the end"
SEVERAL_UTILITY = "more than one utility token"


def candidate_problem(text: str, *, with_passage: bool, finished: bool = True) -> str | None:
    """The first grammar rule (module docstring) that the continuation `text` breaks, or None when well-formed."""
    if not finished:
        return NOT_FINISHED
    found = T.find_tokens(text)
    if with_passage and (not found or found[0] not in T.ISREL_GROUP):
        return NO_ISREL_FIRST
    if any(t in (T.PARAGRAPH_OPEN, T.PARAGRAPH_CLOSE, T.RETRIEVAL) for t in found):
        return STRAY_PASSAGE
    if sum(t in T.ISREL_GROUP for t in found) != int(with_passage):
        return SEVERAL_ISREL
    if not T.strip_reflection(text):
        return EMPTY_ANSWER
    if with_passage and found[0] == T.RELEVANT and not any(t in T.ISSUP_GROUP for t in found):
        return NO_ISSUP
    utilities = [t for t in found if t in T.ISUSE_GROUP]
    if len(utilities) > 1:
        return SEVERAL_UTILITY
    if not utilities or found[-1] not in T.ISUSE_GROUP or not text.rstrip().endswith(found[-1]):
        return NO_UTILITY_LAST
    return None


def _row_candidate_problem(candidate: Mapping[str, Any]) -> str | None:
    return candidate_problem(candidate["text"], with_passage=candidate["passage_id"] is not None,
                             finished=candidate.get("finished", True))


def well_formed_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Well-formedness of Self-RAG prediction rows (`predictions.jsonl` objects with `candidates`).

    Returns `chosen` (share of questions whose chosen candidate — the one whose response is the row's `output` — is
    well-formed), `candidates` (share of all candidates), `n_candidates`, and `problems` (count per broken rule over
    all candidates, most common first).
    """
    problems: Counter[str] = Counter()
    good_candidates = total_candidates = good_chosen = 0
    for row in rows:
        candidates = row.get("candidates") or []
        verdicts = [_row_candidate_problem(c) for c in candidates]
        problems.update(v for v in verdicts if v is not None)
        total_candidates += len(verdicts)
        good_candidates += sum(v is None for v in verdicts)
        good_chosen += any(v is None and response_text([candidate_from_json(c)]) == row["output"]
                           for c, v in zip(candidates, verdicts))
    return {
        "chosen": good_chosen / len(rows) if rows else 0.0,
        "candidates": good_candidates / total_candidates if total_candidates else 0.0,
        "n_candidates": total_candidates,
        "problems": dict(problems.most_common()),
    }

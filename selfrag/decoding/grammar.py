"""The reflection-token grammar of one short-form candidate: is a generator's continuation well-formed Self-RAG?

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
rule it breaks as its problem, so a run's problems can be counted (`selfrag.decoding.wellformed.well_formed_summary`).

The decoder uses it to rank: an ill-formed candidate never beats a well-formed one (`choose_short_form`), so an
answer holding markup or a fragment left by it (`ret<paragraph>ist` decoded as "ret") cannot win silently;
`selfrag.decoding.wellformed` counts the problems of a run.
"""

from __future__ import annotations

from selfrag import tokens as T

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

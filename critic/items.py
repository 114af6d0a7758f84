"""Building the items a labeler judges from a seed example, its segments and its passages.

Item ids are stable and readable (`{seed id}`, `{seed id}/s{i}`, `{seed id}/p{passage id}`, ...) so labels written to
jsonl can be joined back to items after a crash or by another tool.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from critic.aspects import ISREL, ISSUP, ISUSE, RETRIEVE, LabelItem
from critic.grounded import contains, groundable_answers
from critic.sources import SeedExample
from selfrag.types import Passage

#: What a model that does not know says; used as a utility-1 variant of an output.
REFUSAL = "I'm sorry, I don't know the answer to that."


def is_short_answer(seed: SeedExample) -> bool:
    """Whether the seed's output is one of its own (passage-groundable) gold answers: a QA row answered in a phrase."""
    return seed.output in groundable_answers(seed.answers)


def output_for_passage(seed: SeedExample, passage: Passage | None) -> str:
    """The output a row citing `passage` states.

    For a short-answer seed it is the first gold answer (in the data's order) that the passage contains: gold lists
    hold aliases ("politician", "political leader"), and a generator should learn to answer in the words of the
    passage it read, which is also what makes the answer checkable against that passage. Otherwise (no passage, no
    gold answer in it, or a longer output) it is the seed's own output.
    """
    if passage is None or not is_short_answer(seed):
        return seed.output
    text = f"{passage.title}\n{passage.text}"
    return next((a for a in seed.answers if contains(text, a)), seed.output)


def _item(seed: SeedExample, aspect: str, item_id: str, **fields) -> LabelItem:
    return LabelItem(aspect, item_id, seed.instruction, answers=seed.answers, subject=seed.subject, **fields)


def retrieve_item(seed: SeedExample) -> LabelItem:
    """Does the instruction need retrieval (judged before any output)?"""
    return _item(seed, RETRIEVE, seed.id)


def segment_retrieve_item(seed: SeedExample, segments: Sequence[str], index: int) -> LabelItem:
    """Does segment `index` (>= 1) need retrieval, given the segments before it?"""
    preceding = "".join(segments[:index]).strip()
    return _item(seed, RETRIEVE, f"{seed.id}/s{index}", output=segments[index].strip(), preceding=preceding)


def isrel_item(seed: SeedExample, passage: Passage) -> LabelItem:
    """Is `passage` relevant to the instruction?"""
    return _item(seed, ISREL, f"{seed.id}/p{passage.id}", evidence=passage)


def issup_item(seed: SeedExample, segments: Sequence[str], index: int, passage: Passage) -> LabelItem:
    """Is segment `index` supported by `passage`?"""
    return _item(
        seed,
        ISSUP,
        f"{seed.id}/s{index}/p{passage.id}",
        output=segments[index].strip(),
        preceding="".join(segments[:index]).strip(),
        evidence=passage,
    )


def isuse_item(seed: SeedExample, output: str | None = None, variant: str = "") -> LabelItem:
    """How useful is `output` (default: the seed's own output) as a response?"""
    item_id = f"{seed.id}/{variant}" if variant else seed.id
    return _item(seed, ISUSE, item_id, output=seed.output if output is None else output)


def utility_variants(seed: SeedExample, other: SeedExample, passage: Passage | None, rng: random.Random
                     ) -> list[tuple[str, str]]:
    """(variant name, output) pairs that give a utility teacher the whole scale to judge, for critic training data.

    Besides the gold output: the gold answer buried in a long passage-like answer (`long`), another question's answer
    stated about this subject (`subject`), another question's answer alone (`wrong`), and a refusal (`refusal`).
    `other` should be a different seed of the same kind (e.g. the same PopQA relation), so wrong answers look right.
    """
    variants = [("gold", seed.output)]
    if passage is not None:
        variants.append(("long", f"{passage.text.strip()} So the answer is {seed.output}."))
    if other.output and other.output != seed.output:
        if seed.subject:
            variants.append(("subject", f"{seed.subject}: {other.output}."))
        variants.append(("wrong", other.output))
    variants.append(("refusal", REFUSAL))
    rng.shuffle(variants)
    return variants

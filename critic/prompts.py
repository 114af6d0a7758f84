"""The critic's own prompts: the item's context (instruction slot), then a short rubric and the judged text (input).

These are what the critic is trained on and queried with (train and serve use the same function, unlike the reference
code, which trained on one prompt and served another). Its answer is the label token itself, e.g. `[Relevant]`. The
layout puts what items share first (`critic_prompt`), so a prefix-caching engine reuses it across items.
The longer teacher prompts with demonstrations, for LLM judges, are in `critic.judge_prompts`.
"""

from __future__ import annotations

from typing import Any

from critic.aspects import ISREL, ISSUP, ISUSE, RETRIEVE, LabelItem
from selfrag.prompts import official_prompt

#: Rubrics in our own words, one line each: the critic is a small model trained on thousands of rows, so a short
#: prompt is both cheaper and as informative (the label meanings live in the training data; `critic.judge_prompts` has
#: the long versions for a general-purpose judge). The segment-level retrieve decision has its own rubric.
RUBRICS: dict[str, str] = {
    RETRIEVE: "Does answering the instruction need facts from a document? Answer [Retrieval] or [No Retrieval].",
    RETRIEVE + "/segment": (
        "Does the next sentence state facts not given so far that need a document? Answer [Retrieval] or "
        "[No Retrieval]."
    ),
    ISREL: "Does the evidence hold the answer to the instruction? Answer [Relevant] or [Irrelevant].",
    ISSUP: (
        "Is the output backed by the evidence? Answer [Fully supported], [Partially supported] or "
        "[No support / Contradictory]."
    ),
    ISUSE: "How useful is the output as a response to the instruction? Answer [Utility:1] (none) to [Utility:5].",
}

#: At most this many gold answers, and this many characters of them, are shown to the critic.
MAX_REFERENCES = 6
MAX_REFERENCE_CHARS = 200


def rubric_key(item: LabelItem) -> str:
    """The RUBRICS key for `item` (a segment-level retrieve decision has its own rubric)."""
    return RETRIEVE + "/segment" if item.aspect == RETRIEVE and item.output else item.aspect


def references_line(answers: tuple[str, ...]) -> str:
    """`Reference answers: a | b` for the first `MAX_REFERENCES` gold answers, cut to `MAX_REFERENCE_CHARS`."""
    text = " | ".join(answers[:MAX_REFERENCES])
    if len(text) > MAX_REFERENCE_CHARS:
        text = text[:MAX_REFERENCE_CHARS].rsplit(" ", 1)[0] + " ..."
    return f"Reference answers: {text}"


def context_block(item: LabelItem, *, references: bool = True) -> str:
    """What the item is judged against: the task instruction, the gold answers, and the passage (isrel, issup).

    With `references` (the critic's default) the item's gold answers, when it has any, are shown: the critic then
    sees what its teacher judged with (`critic.grounded`), so it can agree with it; offline annotation knows the gold
    answers of the seed data it annotates. Data without gold answers shows no such line, and the critic judges from
    the text alone.
    """
    parts = [f"Task instruction: {item.instruction}"]
    if references and item.answers:
        parts.append(references_line(item.answers))
    if item.aspect in (ISREL, ISSUP) and item.evidence is not None:
        title = f"{item.evidence.title}\n" if item.evidence.title else ""
        parts.append(f"Evidence: {title}{item.evidence.text}")
    return "\n".join(parts)


def judged_block(item: LabelItem) -> str:
    """The text being judged: the sentences before it and the output (segment retrieve, issup, isuse), else ""."""
    parts = []
    if item.aspect in (RETRIEVE, ISSUP) and item.output and item.preceding:
        parts.append(f"Preceding sentences: {item.preceding}")
    if item.aspect in (RETRIEVE, ISSUP, ISUSE) and item.output:
        parts.append(f"Output: {item.output}")
    return "\n".join(parts)


def critic_input(item: LabelItem, *, references: bool = True) -> str:
    """Every field of the item in one block (context, then what is judged): how an LLM judge is shown an item."""
    return "\n".join(filter(None, [context_block(item, references=references), judged_block(item)]))


def critic_question(item: LabelItem) -> str:
    """The aspect's rubric followed by what is judged."""
    return "\n".join(filter(None, [RUBRICS[rubric_key(item)], judged_block(item)]))


def critic_prompt(item: LabelItem) -> str:
    """The full prompt the critic continues with its label.

    The official layout, with the context as the instruction and the rubric plus the judged text as the input:
    `### Instruction:\n{context}\n\n### Input:\n{rubric}\n{output}\n\n### Response:\n`. The context comes first
    because it is what items share: every item of a seed starts with its instruction and gold answers, and the isrel
    and issup items of one passage share the passage too, so an engine with prefix caching (vLLM) computes a passage
    once for both aspects.
    """
    return official_prompt(context_block(item), critic_question(item))


def critic_example(item: LabelItem, label: str) -> dict[str, Any]:
    """One critic SFT row in the released `{instruction, input, output}` layout, plus the aspect for reports."""
    return {
        "instruction": context_block(item),
        "input": critic_question(item),
        "output": label,
        "aspect": item.aspect,
        "id": f"{item.aspect}/{item.id}",
    }

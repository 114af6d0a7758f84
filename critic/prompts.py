"""The critic's own prompts: a short rubric per aspect (instruction) and the item's fields (input).

These are what the critic is trained on and queried with (train and serve use the same function, unlike the reference
code, which trained on one prompt and served another). Its answer is the label token itself, e.g. `[Relevant]`.
The longer teacher prompts with demonstrations, for LLM judges, are in `critic.judge_prompts`.
"""

from __future__ import annotations

from typing import Any

from critic.aspects import ISREL, ISSUP, ISUSE, RETRIEVE, LabelItem
from selfrag.prompts import official_prompt

#: Rubrics in our own words. The retrieve rubric differs for a whole instruction and for one segment of an answer.
RUBRICS: dict[str, str] = {
    RETRIEVE: (
        "Decide whether answering the task instruction well needs facts from an external document such as a "
        "Wikipedia passage. Answer [Retrieval] when specific, checkable knowledge is needed, [No Retrieval] when the "
        "instruction can be answered from general skill or the text it gives."
    ),
    RETRIEVE + "/segment": (
        "You see a task instruction, the sentences written so far and the next sentence. Decide whether writing "
        "the next sentence needs facts from an external document. Answer [Retrieval] if it states specific, "
        "checkable facts not already given, [No Retrieval] otherwise."
    ),
    ISREL: (
        "Decide whether the evidence passage is relevant to the task instruction: whether it gives information "
        "useful for answering it. Answer [Relevant] or [Irrelevant]."
    ),
    ISSUP: (
        "Decide how far the output sentence is supported by the evidence passage. Answer [Fully supported] when "
        "everything it states is backed by the passage, [Partially supported] when only part of it is, and "
        "[No support / Contradictory] when the passage does not back it or contradicts it."
    ),
    ISUSE: (
        "Rate how useful the output is as a response to the task instruction: [Utility:5] answers it completely and "
        "directly, [Utility:4] answers it but buried in unneeded text, [Utility:3] addresses it without answering, "
        "[Utility:2] only loosely related, [Utility:1] no answer at all."
    ),
}


def rubric_key(item: LabelItem) -> str:
    """The RUBRICS key for `item` (a segment-level retrieve decision has its own rubric)."""
    return RETRIEVE + "/segment" if item.aspect == RETRIEVE and item.output else item.aspect


def critic_input(item: LabelItem) -> str:
    """The item's fields as the critic reads them (only the fields its aspect uses, in a fixed order)."""
    parts = [f"Task instruction: {item.instruction}"]
    if item.aspect in (RETRIEVE, ISSUP) and item.output and item.preceding:
        parts.append(f"Preceding sentences: {item.preceding}")
    if item.aspect in (RETRIEVE, ISSUP, ISUSE) and item.output:
        parts.append(f"Output: {item.output}")
    if item.aspect in (ISREL, ISSUP) and item.evidence is not None:
        title = f"{item.evidence.title}\n" if item.evidence.title else ""
        parts.append(f"Evidence: {title}{item.evidence.text}")
    return "\n".join(parts)


def critic_prompt(item: LabelItem) -> str:
    """The full prompt the critic continues with its label (official Self-RAG layout with an `### Input:` block)."""
    return official_prompt(RUBRICS[rubric_key(item)], critic_input(item))


def critic_example(item: LabelItem, label: str) -> dict[str, Any]:
    """One critic SFT row in the released `{instruction, input, output}` layout, plus the aspect for reports."""
    return {
        "instruction": RUBRICS[rubric_key(item)],
        "input": critic_input(item),
        "output": label,
        "aspect": item.aspect,
        "id": f"{item.aspect}/{item.id}",
    }

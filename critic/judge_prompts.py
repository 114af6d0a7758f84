"""Teacher prompts for LLM judges: per aspect, a system rubric, a few worked demonstrations and the item to judge.

`judge_messages(item)` returns OpenAI-style chat messages. The judge is asked to reply in exactly two lines,

    Label: <one of the aspect's label strings from ASPECT_LABELS>
    Explanation: <one sentence>

which `critic.parsing.parse_judge_reply` reads back. The labels are the reflection-token strings themselves, so a
judge's answer needs no mapping before it becomes critic training data.

The item fields are rendered with the critic's own `critic_input`, so the teacher and the critic read an item the same
way, except that a judge is not shown the gold answers (it is asked for its own judgement); the rubrics here are
longer than the critic's (`critic.prompts.RUBRICS`) because a general-purpose judge needs the criteria spelled out.
Demonstrations are invented examples, one chat turn pair each: a chat model imitates a worked exchange more reliably
than examples pasted into one long message.
"""

from __future__ import annotations

from dataclasses import dataclass

from critic.aspects import ASPECT_LABELS, ISREL, ISSUP, ISUSE, RETRIEVE, LabelItem, check_aspect
from critic.prompts import critic_input, rubric_key
from selfrag import tokens as T
from selfrag.io import InputError
from selfrag.types import Passage

_REPLY_FORMAT = (
    "Reply with exactly two lines and nothing else:\n"
    "Label: <label>\n"
    "Explanation: <one sentence giving the reason>\n"
    "where <label> is one of: {labels}. Write the label exactly as listed, including the square brackets."
)

#: System rubrics, keyed like `critic.prompts.RUBRICS` (the segment-level retrieve decision has its own).
JUDGE_RUBRICS: dict[str, str] = {
    RETRIEVE: (
        "You are an annotator deciding whether a task instruction can be answered well without looking anything up.\n"
        "Choose [Retrieval] when a good answer has to state specific facts that are worth checking against a "
        "reference such as an encyclopedia: names, dates, numbers, events, properties of particular people, places, "
        "works or products.\n"
        "Choose [No Retrieval] when the instruction asks for writing, rewriting, reasoning, opinions, advice or "
        "general knowledge any competent writer has, or when all the facts needed are already in the instruction."
    ),
    RETRIEVE + "/segment": (
        "You are an annotator deciding, sentence by sentence, where an answer needs a reference document. You see a "
        "task instruction, the sentences of the answer written so far (possibly none) and the next sentence.\n"
        "Choose [Retrieval] when the next sentence states specific, checkable facts (names, dates, numbers, events, "
        "attributes of particular entities) that are not already given in the instruction or the earlier "
        "sentences.\n"
        "Choose [No Retrieval] when the next sentence is a greeting, opinion, advice, a summary or restatement of "
        "what came before, a logical step, or general knowledge that needs no source."
    ),
    ISREL: (
        "You are an annotator deciding whether an evidence passage is relevant to a task instruction.\n"
        "Choose [Relevant] when the passage is about the entity or topic the instruction asks about and contains "
        "information that helps to answer it, even if it does not answer it completely.\n"
        "Choose [Irrelevant] when the passage is about something else (watch for different entities sharing a "
        "name) or gives nothing that helps to answer the instruction."
    ),
    ISSUP: (
        "You are an annotator checking whether an output sentence is backed by an evidence passage. Judge only the "
        "sentence marked as the output; the instruction and any preceding sentences are context. Use the passage "
        "alone, not your own knowledge.\n"
        "Choose [Fully supported] when every claim in the output is stated in or directly implied by the passage.\n"
        "Choose [Partially supported] when some claims are backed by the passage but at least one is not.\n"
        "Choose [No support / Contradictory] when the passage backs none of the output's main claims, or "
        "contradicts it."
    ),
    ISUSE: (
        "You are an annotator rating how useful an output is as a response to a task instruction, on a scale of 1 "
        "to 5. Judge helpfulness and completeness only; do not check whether the facts are correct.\n"
        "[Utility:5]: complete, directly on point, nothing important missing.\n"
        "[Utility:4]: addresses the request well with minor gaps or small digressions.\n"
        "[Utility:3]: acceptable, but misses parts of the request or needs more detail.\n"
        "[Utility:2]: touches the topic but does not really answer the request.\n"
        "[Utility:1]: off-topic, a refusal, or no answer at all."
    ),
}


@dataclass(frozen=True)
class Demonstration:
    """A worked example: an item and the reply a judge should give for it."""

    item: LabelItem
    label: str
    explanation: str

    @property
    def reply(self) -> str:
        return format_reply(self.label, self.explanation)


def _passage(title: str, text: str) -> Passage:
    return Passage(id=f"demo-{title}", title=title, text=text)


_BERLIN_WALL = _passage(
    "Berlin Wall",
    "The Berlin Wall was a guarded concrete barrier that divided Berlin from 1961. On the evening of 9 November "
    "1989 the East German authorities announced that citizens could cross the border, and crowds began to "
    "dismantle the wall.",
)
_MARY_SHELLEY = _passage(
    "Mary Shelley",
    "Mary Wollstonecraft Shelley (1797-1851) was an English novelist, best known for her Gothic novel "
    "Frankenstein, first published in 1818.",
)

#: Few-shot demonstrations per rubric key: invented examples covering each decision the rubric distinguishes.
DEMONSTRATIONS: dict[str, tuple[Demonstration, ...]] = {
    RETRIEVE: (
        Demonstration(
            LabelItem(RETRIEVE, "demo-r1", "Who was the chief engineer of the Brooklyn Bridge, and when did it "
                      "open to traffic?"),
            T.RETRIEVAL,
            "The answer depends on a specific person and date that should be checked against a reference.",
        ),
        Demonstration(
            LabelItem(RETRIEVE, "demo-r2", "Rewrite this sentence in the passive voice: The committee approved "
                      "the new budget."),
            T.NO_RETRIEVAL,
            "This is a grammatical transformation of text given in the instruction and needs no outside facts.",
        ),
        Demonstration(
            LabelItem(RETRIEVE, "demo-r3", "Give me three tips for staying focused while working from home."),
            T.NO_RETRIEVAL,
            "General advice can be written from common experience without consulting a source.",
        ),
    ),
    RETRIEVE + "/segment": (
        Demonstration(
            LabelItem(RETRIEVE, "demo-rs1", "Tell me about the Danube.",
                      output="It flows through ten countries and empties into the Black Sea.",
                      preceding="The Danube is a major river in Central and Eastern Europe."),
            T.RETRIEVAL,
            "The sentence adds specific geographic facts (a country count and the river's mouth) that need a source.",
        ),
        Demonstration(
            LabelItem(RETRIEVE, "demo-rs2", "Write a short note thanking a colleague for covering my shift.",
                      output="I really appreciate your help and owe you one.",
                      preceding="Hi Sam, thank you so much for covering my Saturday shift."),
            T.NO_RETRIEVAL,
            "The sentence expresses gratitude and states no facts that could be looked up.",
        ),
        Demonstration(
            LabelItem(RETRIEVE, "demo-rs3", "Explain what photosynthesis is.",
                      output="In short, it is how plants make their own food.",
                      preceding="Photosynthesis is the process by which plants use light, water and carbon dioxide "
                      "to make sugar and oxygen."),
            T.NO_RETRIEVAL,
            "The sentence only restates the previous one in simpler words and introduces no new facts.",
        ),
    ),
    ISREL: (
        Demonstration(
            LabelItem(ISREL, "demo-i1", "When did the Berlin Wall fall?", evidence=_BERLIN_WALL),
            T.RELEVANT,
            "The passage is about the Berlin Wall and gives the date the border was opened in 1989.",
        ),
        Demonstration(
            LabelItem(ISREL, "demo-i2", "What is the population of Lyon, France?", evidence=_passage(
                "Lyon Township, Michigan",
                "Lyon Township is a civil township in Oakland County, Michigan, organized in 1834.",
            )),
            T.IRRELEVANT,
            "The passage describes a township in Michigan that shares the name, not the French city, and gives no "
            "population figure for Lyon.",
        ),
        Demonstration(
            LabelItem(ISREL, "demo-i3", "Who wrote the novel Frankenstein?", evidence=_MARY_SHELLEY),
            T.RELEVANT,
            "The passage names Mary Shelley as the author of Frankenstein, which answers the question.",
        ),
    ),
    ISSUP: (
        Demonstration(
            LabelItem(ISSUP, "demo-s1", "When did the Berlin Wall fall?",
                      output="The Berlin Wall fell in November 1989, when the border was opened.",
                      evidence=_BERLIN_WALL),
            T.FULLY_SUPPORTED,
            "The passage states that the border opened on 9 November 1989, which covers every claim in the output.",
        ),
        Demonstration(
            LabelItem(ISSUP, "demo-s2", "Tell me about Mary Shelley.",
                      output="She wrote Frankenstein while staying near Lake Geneva.",
                      preceding="Mary Shelley was an English novelist.", evidence=_MARY_SHELLEY),
            T.PARTIALLY_SUPPORTED,
            "The passage confirms that she wrote Frankenstein but says nothing about Lake Geneva.",
        ),
        Demonstration(
            LabelItem(ISSUP, "demo-s3", "What is the highest mountain in Africa?",
                      output="The highest mountain in Africa is Mount Kenya.", evidence=_passage(
                          "Mount Kilimanjaro",
                          "Mount Kilimanjaro is a dormant volcano in Tanzania; at 5,895 metres it is the highest "
                          "mountain in Africa.",
                      )),
            T.NO_SUPPORT,
            "The passage names Kilimanjaro as Africa's highest mountain, which contradicts the output.",
        ),
    ),
    ISUSE: (
        Demonstration(
            LabelItem(ISUSE, "demo-u1", "What is the capital of Australia?",
                      output="The capital of Australia is Canberra."),
            T.UTILITY[4],
            "The output answers the question directly and completely.",
        ),
        Demonstration(
            LabelItem(ISUSE, "demo-u2", "List the three primary colours of paint.",
                      output="Red and blue are primary colours."),
            T.UTILITY[2],
            "The output is on topic but gives only two of the three colours asked for.",
        ),
        Demonstration(
            LabelItem(ISUSE, "demo-u3", "Give me a simple recipe for pancakes.",
                      output="Pancakes are a popular breakfast food in many countries."),
            T.UTILITY[1],
            "The output mentions pancakes but provides no recipe, so it does not fulfil the request.",
        ),
    ),
}


def format_reply(label: str, explanation: str) -> str:
    """The reply format judges are asked for (and that demonstrations show)."""
    return f"Label: {label}\nExplanation: {explanation}"


def system_prompt(item: LabelItem) -> str:
    """The rubric for `item`'s aspect (or segment-level retrieve) followed by the reply format."""
    labels = ", ".join(ASPECT_LABELS[item.aspect])
    return JUDGE_RUBRICS[rubric_key(item)] + "\n\n" + _REPLY_FORMAT.format(labels=labels)


def user_message(item: LabelItem) -> str:
    """The item's fields (as the critic reads them) and a one-line reminder of the allowed labels."""
    labels = ", ".join(ASPECT_LABELS[item.aspect])
    return f"{critic_input(item, references=False)}\n\nAnswer with `Label:` (one of {labels}) and `Explanation:`."


def check_judgeable(item: LabelItem) -> None:
    """Raise InputError when `item` lacks a field its aspect needs (the judge would be asked about nothing)."""
    check_aspect(item.aspect)
    missing = []
    if item.aspect in (ISREL, ISSUP) and item.evidence is None:
        missing.append("evidence")
    if item.aspect in (ISSUP, ISUSE) and not item.output.strip():
        missing.append("output")
    if not item.instruction.strip():
        missing.append("instruction")
    if missing:
        raise InputError(
            f"item {item.id!r} ({item.aspect}): empty or missing {', '.join(missing)}; "
            f"{item.aspect} items need instruction"
            + {ISREL: " and evidence", ISSUP: ", output and evidence", ISUSE: " and output"}.get(item.aspect, "")
        )


def judge_messages(item: LabelItem) -> list[dict[str, str]]:
    """OpenAI chat messages asking a judge to label `item`: system rubric, demonstrations as turns, then the item.

    Raises:
        InputError: unknown aspect, or a field the aspect needs is missing (see `check_judgeable`).
    """
    check_judgeable(item)
    messages = [{"role": "system", "content": system_prompt(item)}]
    for demo in DEMONSTRATIONS[rubric_key(item)]:
        messages.append({"role": "user", "content": user_message(demo.item)})
        messages.append({"role": "assistant", "content": demo.reply})
    messages.append({"role": "user", "content": user_message(item)})
    return messages

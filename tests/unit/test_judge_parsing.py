"""parse_judge_reply: well-formed replies, tolerated variants, and rejected replies with messages that quote them."""

from __future__ import annotations

import pytest

from critic.aspects import ASPECT_LABELS, ISREL, ISSUP, ISUSE, RETRIEVE, LabelItem
from critic.judge_prompts import DEMONSTRATIONS, format_reply, judge_messages
from critic.parsing import JudgeReplyError, parse_judge_reply
from selfrag.io import InputError
from selfrag.types import Passage


@pytest.mark.parametrize("aspect,label", [(a, lab) for a, labels in ASPECT_LABELS.items() for lab in labels])
def test_every_label_of_every_aspect_parses(aspect, label):
    reply = f"Label: {label}\nExplanation: Because the passage says so."
    assert parse_judge_reply(aspect, reply) == (label, "Because the passage says so.")


@pytest.mark.parametrize(
    "aspect,reply,label,explanation",
    [
        (ISREL, "label:   [relevant]  \nexplanation:  about   the city. ", "[Relevant]", "about the city."),
        (ISREL, "**Label:** [Irrelevant]\n**Explanation:** another town.", "[Irrelevant]", "another town."),
        (ISREL, "Sure.\n\nLabel: Relevant\nExplanation: on topic.", "[Relevant]", "on topic."),
        (ISREL, "Label: [Relevant]. Explanation: it names the author.", "[Relevant]", "it names the author."),
        (ISREL, "Label: [Relevant]\nLabel: [Relevant]\nExplanation: x", "[Relevant]", "x"),
        (ISSUP, "Label: [ No support/contradictory ]\nExplanation: wrong year.", "[No support / Contradictory]",
         "wrong year."),
        (ISSUP, "Label: partially supported.\nExplanation: half of it.", "[Partially supported]", "half of it."),
        (ISSUP, "Label: `[Fully supported]`", "[Fully supported]", ""),
        (RETRIEVE, "LABEL : No Retrieval\nExplanation: advice.", "[No Retrieval]", "advice."),
        (RETRIEVE, "Label: [Retrieval]\nExplanation: needs\n  a date.", "[Retrieval]", "needs a date."),
        (ISUSE, "Label: [Utility: 4]\nExplanation: minor gaps.", "[Utility:4]", "minor gaps."),
        (ISUSE, "Label: Utility: 2\nExplanation: loosely related.", "[Utility:2]", "loosely related."),
        (ISUSE, "Label: 5\nExplanation: complete.", "[Utility:5]", "complete."),
        (ISUSE, "Label: utility:1", "[Utility:1]", ""),
    ],
)
def test_tolerated_formatting_variants(aspect, reply, label, explanation):
    assert parse_judge_reply(aspect, reply) == (label, explanation)


@pytest.mark.parametrize(
    "aspect,reply,reason",
    [
        (ISREL, "", "the reply is empty"),
        (ISREL, "   \n ", "the reply is empty"),
        (ISREL, "[Relevant]\nExplanation: the label line is missing.", "no 'Label:' line"),
        (ISREL, "The passage is relevant.", "no 'Label:' line"),
        (ISREL, "Label: Not relevant\nExplanation: x", "no isrel label on the label line"),
        (ISREL, "Label: [Yes]\nExplanation: x", "no isrel label on the label line"),
        (ISREL, "Label: [Relevant] or [Irrelevant]\nExplanation: unsure.", "several labels"),
        (ISREL, "Label: [Relevant]\nExplanation: x\nLabel: [Irrelevant]", "several labels"),
        (ISSUP, "Label: [Relevant]\nExplanation: the passage is on topic.", "wrong-type label: [Relevant]"),
        (ISSUP, "Label: [Fully supported] [Relevant]", "wrong-type label [Relevant]"),
        (ISUSE, "Label: [Retrieval]", "wrong-type label: [Retrieval]"),
        (RETRIEVE, "Label: [Continue to Use Evidence]", "wrong-type label: [Continue to Use Evidence]"),
        (ISUSE, "Label: 7", "no isuse label"),
        (RETRIEVE, "Label: 4", "no retrieve label"),  # a bare score is only an isuse label
    ],
)
def test_malformed_replies_are_rejected_with_the_reason_and_the_quoted_reply(aspect, reply, reason):
    with pytest.raises(JudgeReplyError) as caught:
        parse_judge_reply(aspect, reply)
    err = caught.value
    assert isinstance(err, ValueError)
    assert (err.aspect, err.reply) == (aspect, reply)
    message = str(err)
    assert message.startswith(f"unusable {aspect} judge reply: ")
    assert reason in message
    assert f"Raw reply: {reply!r}" in message
    for label in ASPECT_LABELS[aspect]:  # the message says what would have been accepted
        assert label in message


def test_long_replies_are_quoted_truncated():
    reply = "I think " + "very " * 200 + "relevant."
    with pytest.raises(JudgeReplyError) as caught:
        parse_judge_reply(ISREL, reply)
    message = str(caught.value)
    assert repr(reply[:300]) + f"... ({len(reply)} chars)" in message
    assert len(message) < 600


def test_unknown_aspect_is_an_input_error():
    with pytest.raises(InputError, match="unknown aspect 'truth'"):
        parse_judge_reply("truth", "Label: [Relevant]")


def test_every_demonstration_reply_parses_to_its_label():
    for demos in DEMONSTRATIONS.values():
        for demo in demos:
            assert parse_judge_reply(demo.item.aspect, demo.reply) == (demo.label, demo.explanation)


def test_judge_messages_layout():
    evidence = Passage("p1", "Paris", "Paris is the capital of France.")
    item = LabelItem(ISSUP, "q1/s0/p1", "What is the capital of France?", output="It is Paris.",
                     preceding="France is in Europe.", evidence=evidence)
    messages = judge_messages(item)
    roles = [m["role"] for m in messages]
    assert roles == ["system"] + ["user", "assistant"] * len(DEMONSTRATIONS[ISSUP]) + ["user"]
    assert "[No support / Contradictory]" in messages[0]["content"]
    assert messages[-1]["content"].startswith(
        "Task instruction: What is the capital of France?\nEvidence: Paris\nParis is the capital of France.\n"
        "Preceding sentences: France is in Europe.\nOutput: It is Paris.\n"
    )
    # The segment-level retrieve decision has its own rubric and demonstrations.
    whole = judge_messages(LabelItem(RETRIEVE, "q1", "Who is Bob?"))
    segment = judge_messages(LabelItem(RETRIEVE, "q1/s1", "Who is Bob?", output="He sings.", preceding="Bob."))
    assert whole[0] != segment[0] and whole[1] != segment[1]
    assert format_reply("[Relevant]", "x") == "Label: [Relevant]\nExplanation: x"


@pytest.mark.parametrize(
    "item,missing",
    [
        (LabelItem(ISREL, "a", "Q?"), "evidence"),
        (LabelItem(ISSUP, "b", "Q?", evidence=Passage("1", "", "t")), "output"),
        (LabelItem(ISUSE, "c", "Q?", output="  "), "output"),
        (LabelItem(RETRIEVE, "d", ""), "instruction"),
    ],
)
def test_items_missing_a_needed_field_are_input_errors(item, missing):
    with pytest.raises(InputError, match=rf"item '{item.id}' \({item.aspect}\): empty or missing {missing}"):
        judge_messages(item)

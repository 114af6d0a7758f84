"""The answer-grounded teacher's rules on hand-made cases (critic/grounded.py documents each rule)."""

from __future__ import annotations

import pytest

from critic.aspects import ISREL, ISSUP, ISUSE, RETRIEVE, LabelItem
from critic.grounded import AnswerGroundedTeacher, contains, normalize
from selfrag import tokens as T
from selfrag.types import Passage

TEACHER = AnswerGroundedTeacher()
Q = "What is George Rankin's occupation?"
ABOUT = Passage("1", "George Rankin", "George Rankin was an Australian politician and soldier.")
ANSWER_ONLY = Passage("2", "Senate", "Many a politician sat in the Senate.")
OFF = Passage("3", "Cricket", "Cricket is a bat-and-ball game.")


def label(aspect, **fields):
    item = LabelItem(aspect, "x", fields.pop("instruction", Q), answers=fields.pop("answers", ("politician",)),
                     **fields)
    result = TEACHER.label_one(item)
    return None if result is None else result.label


def test_normalize_and_whole_word_contains():
    assert normalize("The  Beatles!") == "beatles"
    assert contains("He was a politician.", "Politician")
    assert not contains("He was a politicians' friend", "politician")
    assert not contains("anything", "")


def test_retrieve_rules():
    assert label(RETRIEVE) == T.RETRIEVAL
    # the answer is among the given options -> no retrieval
    assert label(RETRIEVE, instruction="Pick one.\nA: politician\nB: farmer") == T.NO_RETRIEVAL
    assert label(RETRIEVE, answers=()) is None
    # segment level: a new gold answer needs retrieval, a repeated one does not
    assert label(RETRIEVE, output="He is a politician.", preceding="He was born in 1900.") == T.RETRIEVAL
    assert label(RETRIEVE, output="A politician again.", preceding="He is a politician.") == T.NO_RETRIEVAL


def test_isrel_rules():
    assert label(ISREL, evidence=ABOUT, subject="George Rankin") == T.RELEVANT
    assert label(ISREL, evidence=ANSWER_ONLY, subject="George Rankin") == T.RELEVANT  # contains the answer
    assert label(ISREL, evidence=OFF, subject="George Rankin") == T.IRRELEVANT
    # no subject: a passage whose title the question names is relevant
    assert label(ISREL, evidence=Passage("4", "George Rankin", "Born 1887."), answers=()) == T.RELEVANT
    assert label(ISREL, evidence=Passage("5", "", "Born 1887."), answers=()) is None


def test_issup_rules_with_claims():
    assert label(ISSUP, output="politician", evidence=ABOUT, subject="George Rankin") == T.FULLY_SUPPORTED
    # the answer is there but the passage is not about the subject
    assert label(ISSUP, output="politician", evidence=ANSWER_ONLY, subject="George Rankin") == T.PARTIALLY_SUPPORTED
    assert label(ISSUP, output="politician", evidence=OFF, subject="George Rankin") == T.NO_SUPPORT
    # two claims, one found
    two = ("politician", "soldier", "farmer")
    assert label(ISSUP, output="a politician and farmer", evidence=ABOUT, answers=two,
                 subject="George Rankin") == T.PARTIALLY_SUPPORTED


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        # content words: australian, soldier -> 2/2 in the passage
        ("An Australian soldier.", T.FULLY_SUPPORTED),
        # australian, soldier, born, paris -> 2/4 = 0.5
        ("An Australian soldier born in Paris.", T.PARTIALLY_SUPPORTED),
        # cricket, game, paris -> 0/3
        ("Cricket game in Paris.", T.NO_SUPPORT),
    ],
)
def test_issup_word_overlap_without_claims(output, expected):
    assert label(ISSUP, output=output, evidence=ABOUT, answers=()) == expected


def test_isuse_rules():
    assert label(ISUSE, output="politician") == T.UTILITY[4]
    assert label(ISUSE, output=" ".join(["word"] * 41) + " politician") == T.UTILITY[3]
    assert label(ISUSE, output="George Rankin: farmer.", subject="George Rankin") == T.UTILITY[2]
    assert label(ISUSE, output="farmer") == T.UTILITY[1]
    assert label(ISUSE, output="I don't know.") == T.UTILITY[0]
    assert label(ISUSE, output="") == T.UTILITY[0]
    assert label(ISUSE, output="politician", answers=()) is None

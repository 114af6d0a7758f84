"""The reflection-token grammar of selfrag.decoding.wellformed, on hand-written continuations and prediction rows."""

import pytest

from selfrag.decoding import wellformed as W
from selfrag.prompts import passage_block
from selfrag.types import Passage


@pytest.mark.parametrize(
    ("text", "with_passage", "problem"),
    [
        ("[Relevant]Paris[Fully supported][Utility:5]", True, None),
        ("[Irrelevant]Paris[Utility:2]", True, None),
        ("[Irrelevant]Paris[No support / Contradictory][Utility:2]", True, None),
        ("[Relevant]Paris is big.[Fully supported][Continue to Use Evidence]It is old.[Utility:4]", True, None),
        ("Paris[Utility:4]", False, None),
        ("Paris [Utility:4]  ", False, None),
        ("Paris[Fully supported][Utility:5]", True, W.NO_ISREL_FIRST),
        ("", True, W.NO_ISREL_FIRST),
        ("[Relevant]architect</paragraph>[Relevant]Branson[Fully supported][Utility:5]", True, W.STRAY_PASSAGE),
        ("[Relevant]ret<paragraph>s[Utility:5]", True, W.STRAY_PASSAGE),
        ("Paris[Retrieval]<paragraph>x</paragraph>[Relevant]Lyon[Utility:5]", False, W.STRAY_PASSAGE),
        ("[Relevant]Paris[Irrelevant][Fully supported][Utility:5]", True, W.SEVERAL_ISREL),
        ("Paris[Relevant][Utility:4]", False, W.SEVERAL_ISREL),
        ("[Relevant][Fully supported][Utility:5]", True, W.EMPTY_ANSWER),
        ("[Utility:5]", False, W.EMPTY_ANSWER),
        ("[Relevant]Paris[Utility:5]", True, W.NO_ISSUP),
        ("[Relevant]Paris[Fully supported]", True, W.NO_UTILITY_LAST),
        ("Paris", False, W.NO_UTILITY_LAST),
        ("Paris[Utility:4] and more", False, W.NO_UTILITY_LAST),
        ("Paris[Utility:4][No Retrieval]", False, W.NO_UTILITY_LAST),
        ("Paris[Utility:4][Utility:5]", False, W.SEVERAL_UTILITY),
    ],
)
def test_candidate_problem(text, with_passage, problem):
    assert W.candidate_problem(text, with_passage=with_passage) == problem


def test_unfinished_generation_is_not_well_formed_whatever_it_holds():
    assert W.candidate_problem("[Relevant]Paris[Fully supported][Utility:5]", with_passage=True,
                               finished=False) == W.NOT_FINISHED


def _candidate(text, passage=None, finished=True):
    return {"passage_id": passage.id if passage else None, "passage_title": passage.title if passage else None,
            "passage_text": passage.text if passage else None, "text": text, "answer": text, "finished": finished,
            "scores": {"seq": 0.0}, "probs": {"rel": None, "sup": None, "use": None}}


def test_summary_counts_chosen_by_output_and_every_candidate():
    p1, p2 = Passage("1", "France", "Paris is the capital."), Passage("2", "Spain", "Madrid.")
    rows = [
        # chosen: the well-formed p1 candidate (its response is the row's output); the p2 one lacks IsSup
        {"answer": "Paris", "output": passage_block(p1) + "[Relevant]Paris[Fully supported][Utility:5]",
         "candidates": [_candidate("[Relevant]Paris[Fully supported][Utility:5]", p1),
                        _candidate("[Relevant]Madrid[Utility:3]", p2)]},
        # chosen: the no-retrieval candidate, without a utility token; same answer text as a well-formed candidate
        {"answer": "Lyon", "output": "[No Retrieval]Lyon",
         "candidates": [_candidate("[Irrelevant]Lyon[Utility:2]", p2), _candidate("Lyon")]},
    ]
    summary = W.well_formed_summary(rows)
    assert summary == {"chosen": 0.5, "candidates": 0.5, "n_candidates": 4,
                       "problems": {W.NO_ISSUP: 1, W.NO_UTILITY_LAST: 1}}


def test_summary_of_no_rows():
    assert W.well_formed_summary([]) == {"chosen": 0.0, "candidates": 0.0, "n_candidates": 0, "problems": {}}

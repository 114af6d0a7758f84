"""Reflection diagnostics (eval/reflection.py) on hand-worked runs: AUROC, oracle, per-path usefulness."""

from __future__ import annotations

import pytest

from eval.reflection import (
    auroc,
    gold_texts,
    reflection_diagnostics,
    reflection_items,
    reflection_markdown,
    reliability,
)
from eval.tasks import get_task
from eval.tasks.arc_challenge import ChoiceGold
from selfrag import tokens as T
from selfrag.decoding.critique import RewardWeights
from selfrag.decoding.records import candidate_to_json
from selfrag.types import Candidate, Passage

# final score = IsRel alone, so every number below can be worked out by hand
WEIGHTS = RewardWeights(w_rel=1.0, w_sup=0.0, w_use=0.0, use_seqscore=False)


def test_auroc_counts_ties_half_and_needs_both_classes():
    # positives {0.9, 0.3}, negatives {0.8, 0.3}: 0.9 beats both, 0.3 loses to 0.8 and ties 0.3 -> 2.5 / 4
    assert auroc([0.9, 0.8, 0.3, 0.3], [True, False, True, False]) == 0.625
    assert auroc([1, 2, 3], [False, True, True]) == 1.0
    assert auroc([1, 2, 3], [True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, True]) is None
    with pytest.raises(ValueError):
        auroc([0.1], [True, False])


def test_reliability_bins():
    bins = reliability([0.05, 0.15, 0.18, 1.0], [True, False, True, True], bins=10)
    assert (bins[0]["n"], bins[0]["positive_rate"]) == (1, 1.0)
    assert (bins[1]["n"], bins[1]["positive_rate"], bins[1]["mean_score"]) == (2, 0.5, pytest.approx(0.165))
    assert bins[9]["n"] == 1 and bins[5]["positive_rate"] is None


def test_gold_texts():
    assert gold_texts(("Paris", "Paris, France")) == ("Paris", "Paris, France")
    assert gold_texts(ChoiceGold("B", {"A": "water", "B": "air"})) == ("air",)


def cand(answer, passage_text=None, rel=None, sup=None):
    passage = Passage(f"p-{answer}-{rel}", "T", passage_text) if passage_text else None
    return candidate_to_json(Candidate(
        text=answer, answer=answer, passage=passage, seq=0.5,
        rel_probs={T.RELEVANT: rel, T.IRRELEVANT: 1 - rel} if rel is not None else None,
        sup_probs={T.FULLY_SUPPORTED: sup, T.PARTIALLY_SUPPORTED: 0.0, T.NO_SUPPORT: 1 - sup}
        if sup is not None else None,
    ), WEIGHTS)


BY_HAND_ROWS = [
    {"id": "a", "question": "Capital of France?", "answer": "Paris", "retrieved": True, "p_retrieve": 0.9,
     "options": None, "candidates": [
         cand("Paris", "Paris is the capital.", rel=0.9, sup=0.8),   # right, holds the answer
         cand("Lyon", "Lyon is big.", rel=0.2, sup=0.3),            # wrong
         cand("Lyon")]},                                            # no-retrieval path: wrong
    {"id": "b", "question": "Capital of Germany?", "answer": "Munich", "retrieved": True, "p_retrieve": 0.3,
     "options": None, "candidates": [
         cand("Munich", "Munich is in Bavaria.", rel=0.6, sup=0.7),  # wrong (and chosen)
         cand("Berlin", "Berlin is the capital of Germany.", rel=0.4, sup=0.6),  # right, holds the answer
         cand("Berlin")]},                                          # no-retrieval path: right
]
BY_HAND_GOLDS = {"a": ("Paris",), "b": ("Berlin",)}


def test_reflection_block_by_hand():
    rows, golds = BY_HAND_ROWS, BY_HAND_GOLDS
    per_question = {"a": {"match": 1.0}, "b": {"match": 0.0}}
    block = reflection_diagnostics(get_task("popqa"), rows, golds, per_question, WEIGHTS)
    assert block["oracle"] == 1.0 and block["chosen"] == 0.5 and block["chosen_over_oracle"] == 0.5
    # IsRel: positives {0.9, 0.4}, negatives {0.2, 0.6} -> 3 of 4 pairs
    assert block["isrel_auroc"] == 0.75 and block["isrel_n"] == 4 and block["isrel_positive_rate"] == 0.5
    # within a question: a ranks Paris (first) above Lyon, b Munich (first, answer-less) above Berlin
    assert (block["isrel_pairs_n"], block["isrel_within_question"], block["retriever_within_question"]) == (2, .5, .5)
    # IsSup vs right: positives {0.8, 0.6}, negatives {0.3, 0.7} -> 3 of 4
    assert block["issup_auroc"] == 0.75
    # IsSup within a question: a scores Paris (right, first) above Lyon, b Munich (wrong, first) above Berlin
    assert (block["issup_pairs_n"], block["issup_within_question"], block["retriever_within_question_issup"]) == (
        2, .5, .5)
    # final (= IsRel; no-retrieval candidates score 0): positives {0.9, 0.4, 0}, negatives {0.2, 0, 0.6}
    # -> 3 + 2 + 0.5 = 5.5 of 9
    assert block["final_auroc"] == pytest.approx(5.5 / 9) and block["final_n"] == 6
    usefulness = {u["p_retrieve"]: u for u in block["retrieval_usefulness"]}
    # a (p 0.9): with passages Paris (right), without Lyon; b (p 0.3): with passages Munich, without Berlin (right)
    assert usefulness["[0.8, 1.0]"] == {"p_retrieve": "[0.8, 1.0]", "n": 1, "with_passages": 1.0,
                                        "without_passages": 0.0}
    assert usefulness["[0.2, 0.4)"]["with_passages"] == 0.0 and usefulness["[0.2, 0.4)"]["without_passages"] == 1.0
    assert usefulness["[0.0, 0.2)"]["n"] == 0
    # among passages: a picks Paris (= its first passage), b picks Munich (= its first passage): 1 of 2 either way
    assert (block["passage_pick_n"], block["passage_pick_reflection"], block["passage_pick_first"]) == (2, 0.5, 0.5)
    text = reflection_markdown(block)
    assert "| chosen / oracle | 0.500 |" in text and "| [0.8, 1.0] | 1 | 100.0% | 0.0% |" in text


def test_issup_within_a_question_counts_ties_half_and_ignores_one_class_questions():
    # c: right first (0.5), a wrong one tied (0.5) and a wrong one above (0.9): credits 0.5 and 0; retriever 1 and 1.
    # d: both wrong: no pair. e: wrong (0.2) then right (0.7): credit 1, retriever 0.
    rows = [
        {"id": "c", "question": "q", "answer": "Paris", "retrieved": True, "p_retrieve": 0.9, "options": None,
         "candidates": [cand("Paris", "P.", rel=0.5, sup=0.5), cand("Lyon", "L.", rel=0.5, sup=0.5),
                        cand("Nice", "N.", rel=0.5, sup=0.9)]},
        {"id": "d", "question": "q", "answer": "Rome", "retrieved": True, "p_retrieve": 0.9, "options": None,
         "candidates": [cand("Rome", "R.", rel=0.5, sup=0.4), cand("Milan", "M.", rel=0.5, sup=0.6)]},
        {"id": "e", "question": "q", "answer": "Bern", "retrieved": True, "p_retrieve": 0.9, "options": None,
         "candidates": [cand("Basel", "B.", rel=0.5, sup=0.2), cand("Bern", "B.", rel=0.5, sup=0.7)]},
    ]
    golds = {"c": ("Paris",), "d": ("Oslo",), "e": ("Bern",)}
    per_question = {"c": {"match": 0.0}, "d": {"match": 0.0}, "e": {"match": 1.0}}
    block = reflection_diagnostics(get_task("popqa"), rows, golds, per_question, WEIGHTS)
    assert block["issup_pairs_n"] == 3
    assert block["issup_within_question"] == pytest.approx(1.5 / 3)
    assert block["retriever_within_question_issup"] == pytest.approx(2 / 3)
    assert "| IsSup within a question: right candidate scored above a wrong one (n=3 pairs) | 50.0% |" in (
        reflection_markdown(block))


def test_reflection_items_are_the_blocks_items_grouped_by_question():
    items = reflection_items(get_task("popqa"), BY_HAND_ROWS, BY_HAND_GOLDS)
    assert items["isrel"] == {"a": [(0.9, True), (0.2, False)], "b": [(0.6, False), (0.4, True)]}
    assert items["issup"] == {"a": [(0.8, True), (0.3, False)], "b": [(0.7, False), (0.6, True)]}
    assert items["final"]["b"] == [(0.6, False), (0.4, True), (0.0, True)]  # the no-retrieval candidate scores 0
    pairs = [p for q in items["final"].values() for p in q]
    assert auroc([s for s, _ in pairs], [y for _, y in pairs]) == pytest.approx(5.5 / 9)  # the block's final AUROC


def test_reflection_block_without_the_no_retrieval_path_has_no_usefulness_table():
    rows = [{"id": "a", "question": "q", "answer": "Paris", "retrieved": True, "p_retrieve": 0.9, "options": None,
             "candidates": [cand("Paris", "Paris.", rel=0.9, sup=0.9)]}]
    block = reflection_diagnostics(get_task("popqa"), rows, {"a": ("Paris",)}, {"a": {"match": 1.0}}, WEIGHTS)
    assert block["retrieval_usefulness"] is None and block["isrel_auroc"] is None  # one class only


def test_passage_choice_against_the_retrievers_order():
    # c: first passage Lyon (wrong), IsRel picks Paris (right); e: first passage Rome (right), IsRel picks Milan
    # (wrong); f: first passage Bern (right) and picked; h: like c; g: no passage candidate, left out
    rows = [
        {"id": "c", "question": "q", "answer": "Paris", "retrieved": True, "p_retrieve": 0.9, "options": None,
         "candidates": [cand("Lyon", "Lyon.", rel=0.1), cand("Paris", "Paris.", rel=0.8)]},
        {"id": "e", "question": "q", "answer": "Milan", "retrieved": True, "p_retrieve": 0.9, "options": None,
         "candidates": [cand("Rome", "Rome.", rel=0.3), cand("Milan", "Milan.", rel=0.7)]},
        {"id": "f", "question": "q", "answer": "Bern", "retrieved": True, "p_retrieve": 0.9, "options": None,
         "candidates": [cand("Bern", "Bern.", rel=0.9), cand("Basel", "Basel.", rel=0.2)]},
        {"id": "h", "question": "q", "answer": "Kyiv", "retrieved": True, "p_retrieve": 0.9, "options": None,
         "candidates": [cand("Lviv", "Lviv.", rel=0.4), cand("Kyiv", "Kyiv.", rel=0.6)]},
        {"id": "g", "question": "q", "answer": "Oslo", "retrieved": False, "p_retrieve": 0.1, "options": None,
         "candidates": [cand("Oslo")]},
    ]
    golds = {"c": ("Paris",), "e": ("Rome",), "f": ("Bern",), "h": ("Kyiv",), "g": ("Oslo",)}
    per_question = {"c": {"match": 1.0}, "e": {"match": 0.0}, "f": {"match": 1.0}, "h": {"match": 1.0},
                    "g": {"match": 1.0}}
    block = reflection_diagnostics(get_task("popqa"), rows, golds, per_question, WEIGHTS)
    assert block["passage_pick_n"] == 4
    assert block["passage_pick_reflection"] == 0.75  # c, f, h
    assert block["passage_pick_first"] == 0.5  # e, f
    # one answer-bearing / answer-less pair per question c, e, f, h: IsRel ranks c, f, h right; the retriever e, f
    assert (block["isrel_pairs_n"], block["isrel_within_question"], block["retriever_within_question"]) == (4, .75, .5)
    text = reflection_markdown(block)
    assert "| among passages (n=4): the weights' pick right | 75.0% |" in text
    assert "| among passages: the retriever's first passage's candidate right | 50.0% |" in text
    assert "(n=4 pairs) | 75.0% |" in text and "| the same for the retriever's order | 50.0% |" in text

"""critic/self_distill.py: which rows are rewritten and which base answers are kept (hand-worked strings)."""

from __future__ import annotations

from critic.self_distill import base_answer, relevant_row, split_sentences, with_answer
from critic.truth import is_rejected_variant

ROW = ("[Retrieval]<paragraph>Edwin Wallock\nEdwin Wallock was an American actor of the silent film era."
       "</paragraph>[Relevant]actor[Fully supported][Utility:5]")


def test_relevant_row_finds_passage_and_answer():
    found = relevant_row(ROW)
    assert found is not None
    assert (found.passage.title, found.passage.text) == (
        "Edwin Wallock", "Edwin Wallock was an American actor of the silent film era.")
    assert found.answer == "actor"
    assert found.parsed.compose() == ROW  # the whole row is held, so the rewrite can compose it back


def test_relevant_row_refuses_other_shapes():
    assert relevant_row(ROW.replace("[Relevant]", "[Irrelevant]")) is None          # rejected passage
    assert relevant_row("[No Retrieval]Paris.[Utility:5]") is None                  # no passage
    assert relevant_row(ROW + "[Retrieval]<paragraph>x\ny</paragraph>[Relevant]b[Fully supported][Utility:5]") is None
    assert relevant_row(ROW.replace("actor", " ")) is None                         # empty answer
    assert relevant_row(ROW.replace("[Fully supported]", "")) is None               # no IsSup


def test_base_answer_cuts_after_first_sentence_holding_the_reference():
    text = "Edwin Wallock was an American Actor. He was born in Iowa. He died in 1951."
    assert base_answer(text, "actor") == "Edwin Wallock was an American Actor."
    assert base_answer("He was born in Iowa. Wallock was an actor. Extra.", "actor") == (
        "He was born in Iowa. Wallock was an actor.")
    # only the first max_sentences sentences count
    assert base_answer("He was born in Iowa. Wallock was an actor.", "actor", max_sentences=1) is None
    assert base_answer("Wallock was a singer.", "actor") is None
    assert base_answer("", "actor") is None


def test_split_sentences_cuts_only_at_an_end_mark_followed_by_whitespace():
    assert split_sentences("  He acts. She sings!  Who knows? 3.5 m tall  ") == [
        "He acts.", "She sings!", "Who knows?", "3.5 m tall"]
    assert split_sentences("Born in St.Louis") == ["Born in St.Louis"]


def test_base_answer_whole_keeps_every_sentence_but_a_cut_off_last_one():
    text = "Wallock was an actor. He was born in Iowa. He died in"
    assert base_answer(text, "actor", whole=True) == "Wallock was an actor. He was born in Iowa. He died in"
    assert base_answer(text, "actor", whole=True, cut_off=True) == "Wallock was an actor. He was born in Iowa."
    # the holding sentence is kept even when it is the unfinished one
    assert base_answer("He was born in Iowa. Wallock was an act", "act", whole=True, cut_off=True) == (
        "He was born in Iowa. Wallock was an act")
    # the reference must still be in the first max_sentences sentences
    assert base_answer("Born in Iowa. Died in Ohio. An actor.", "actor", max_sentences=2, whole=True) is None


def test_base_answer_refuses_markup():
    assert base_answer("He was an actor [1].", "actor") is None
    assert base_answer("<paragraph>an actor", "actor") is None


def test_with_answer_replaces_only_the_answer():
    found = relevant_row(ROW)
    row = {"instruction": "What is Edwin Wallock's occupation?", "input": "", "output": ROW, "id": "s1"}
    new = with_answer(row, found, "He was an actor.")
    assert new["output"] == ROW.replace("]actor[", "]He was an actor.[")
    assert new["answer_source"] == "base" and new["id"] == "s1"
    assert row["output"] == ROW  # the input row is not modified


def test_rejected_variant_ids():
    assert is_rejected_variant("popqa_longtail_train-1/rej1")
    assert is_rejected_variant("x/rej12")
    assert not is_rejected_variant("popqa_longtail_train-1/sup1")
    assert not is_rejected_variant("popqa_longtail_train-1")
    assert not is_rejected_variant("rej1")

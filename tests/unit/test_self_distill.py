"""critic/self_distill.py: which rows are rewritten and which base answers are kept (hand-worked strings)."""

from __future__ import annotations

from critic.self_distill import (
    base_answer,
    generate_resumably,
    irrelevant_row,
    relevant_row,
    split_sentences,
    with_abstention,
    with_answer,
)
from critic.truth import is_rejected_variant
from selfrag.types import Completion

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


IRRELEVANT_ROW = ("[Retrieval]<paragraph>Council Bluffs\nCouncil Bluffs is a city in Iowa.</paragraph>"
                  "[Irrelevant]actor[Utility:5]")


def test_irrelevant_row_finds_passage_and_answer_and_refuses_other_shapes():
    found = irrelevant_row(IRRELEVANT_ROW)
    assert found is not None
    assert (found.passage.title, found.answer) == ("Council Bluffs", "actor")
    assert irrelevant_row(ROW) is None                                                     # [Relevant]
    assert irrelevant_row(IRRELEVANT_ROW.replace("actor", "actor[Fully supported]")) is None  # IsSup after it
    assert irrelevant_row(IRRELEVANT_ROW.replace("actor", "")) is None                     # empty answer
    assert irrelevant_row("[No Retrieval]Paris.[Utility:5]") is None                       # no passage
    assert irrelevant_row(IRRELEVANT_ROW + " tail") is None                                # text after utility


def test_with_abstention_replaces_answer_and_utility_only():
    row = {"instruction": "What is Edwin Wallock's occupation?", "input": "", "output": IRRELEVANT_ROW, "id": "s2"}
    new = with_abstention(row, irrelevant_row(IRRELEVANT_ROW))
    assert new["output"] == ("[Retrieval]<paragraph>Council Bluffs\nCouncil Bluffs is a city in Iowa.</paragraph>"
                             "[Irrelevant]I don't know.[Utility:1]")
    assert new["answer_source"] == "abstention" and new["id"] == "s2"
    assert row["output"] == IRRELEVANT_ROW
    known = with_answer(row, irrelevant_row(IRRELEVANT_ROW), "He was an actor.", source="base_closed_book")
    assert known["output"] == IRRELEVANT_ROW.replace("]actor[", "]He was an actor.[")  # utility kept where known
    assert known["answer_source"] == "base_closed_book"


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


class _CountingEngine:
    """A backend that answers prompt [n] with tokens (n, n+1), ended on a stop token when n is even."""

    def __init__(self):
        self.batches: list[list[int]] = []
        self.closed = False

    def generate(self, prompts, *, max_new_tokens, stop_token_ids):
        self.batches.append([p[0] for p in prompts])
        return [Completion(token_ids=(p[0], p[0] + 1), logprobs=(0.0, 0.0), stopped=p[0] % 2 == 0) for p in prompts]

    def close(self):
        self.closed = True


def test_generate_resumably_generates_only_what_a_killed_run_left(tmp_path):
    path = tmp_path / "generations.jsonl"
    # a run killed after its first batch (ids a, b) and half-way through writing the next line
    path.write_text('{"id": "a", "token_ids": [1, 2], "stopped": false}\n'
                    '{"id": "b", "token_ids": [2, 3], "stopped": true}\n{"id": "c", "tok')
    prompts = {"a": [1], "b": [2], "c": [3], "d": [4], "e": [5]}
    engine = _CountingEngine()
    got = generate_resumably(lambda: engine, prompts, path, save_every=2, max_new_tokens=8, stop_token_ids=[0])
    assert engine.batches == [[3, 4], [5]] and engine.closed           # c, d then e: batches of save_every
    assert got == {"a": {"id": "a", "token_ids": [1, 2], "stopped": False},
                   "b": {"id": "b", "token_ids": [2, 3], "stopped": True},
                   "c": {"id": "c", "token_ids": [3, 4], "stopped": False},
                   "d": {"id": "d", "token_ids": [4, 5], "stopped": True},
                   "e": {"id": "e", "token_ids": [5, 6], "stopped": False}}
    assert len(path.read_text().splitlines()) == 5                      # the torn line was cut, not kept

    # everything done: the engine is never opened
    def never_opened():
        raise AssertionError("opened an engine with nothing left to generate")

    again = generate_resumably(never_opened, {"b": [2], "e": [5]}, path, save_every=2, max_new_tokens=8,
                               stop_token_ids=[0])
    assert again == {"b": got["b"], "e": got["e"]}

    # no prompts at all (a data file without a row to rewrite): no engine, no file, nothing returned
    assert generate_resumably(never_opened, {}, tmp_path / "none.jsonl", save_every=2, max_new_tokens=8,
                              stop_token_ids=[0]) == {}
    assert not (tmp_path / "none.jsonl").exists()

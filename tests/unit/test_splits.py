"""Question-level splits: the rule by hand, and that no test-split question reaches a training or tuning file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from critic.sources import read_source_list, seed_sources
from selfrag.io import InputError, read_jsonl
from selfrag.splits import SPLITS, assign_splits, question_key, read_split_ids

ROOT = Path(__file__).resolve().parents[2]
SPLIT_NAMES = ("popqa_longtail", "arc_challenge")


def test_assign_splits_by_hand():
    rows = [{"id": "a", "question": "Who?"}, {"id": "b", "question": "What?"},
            {"id": "c", "question": "  who? "}, {"id": "d", "question": "When?"}]
    # Groups by question key: "who?" = {a, c}, "what?" = {b}, "when?" = {d}; ranked by sha256("s:<key>").
    rank = sorted(["who?", "what?", "when?"], key=lambda q: hashlib.sha256(f"s:{q}".encode()).hexdigest())
    members = {"who?": ["a", "c"], "what?": ["b"], "when?": ["d"]}
    # test=1 takes the first group whole (a duplicated question never straddles splits); dev=1 the next; rest train.
    expected = {"test": members[rank[0]], "dev": members[rank[1]], "train": members[rank[2]]}
    got = assign_splits(rows, test=1, dev=1, salt="s")
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in expected.items()}
    # A function of the questions only: re-ordering the file does not move any row.
    again = assign_splits(list(reversed(rows)), test=1, dev=1, salt="s")
    assert {k: sorted(v) for k, v in again.items()} == {k: sorted(v) for k, v in got.items()}
    assert question_key("  Who   Is\tX? ") == "who is x?"


@pytest.mark.parametrize("rows, sizes, message", [
    ([{"id": "a", "question": "q"}, {"id": "b", "question": "r"}], (1, 1), "leave training rows"),
    ([{"id": "a", "question": "q"}, {"id": "a", "question": "r"}, {"id": "c", "question": "s"}], (1, 0),
     "occurs twice"),
    ([{"question": "q"}, {"id": "b", "question": "r"}, {"id": "c", "question": "s"}], (1, 0), "row 1"),
])
def test_assign_splits_refuses_bad_rows(rows, sizes, message):
    with pytest.raises(InputError, match=message):
        assign_splits(rows, test=sizes[0], dev=sizes[1], salt="s")


@pytest.mark.parametrize("name", SPLIT_NAMES)
def test_committed_split_files_match_their_id_lists(name):
    folder = ROOT / "data" / "splits" / name
    ids = read_split_ids(folder / "ids.json")
    seen: set[str] = set()
    for split in SPLITS:
        rows = read_jsonl(folder / f"{split}.jsonl")
        assert [str(r["id"]) for r in rows] == ids[split]
        assert not seen & set(ids[split]), f"{name}: an id is in two splits"
        seen |= set(ids[split])
    questions = {split: {question_key(r["question"]) for r in read_jsonl(folder / f"{split}.jsonl")}
                 for split in SPLITS}
    assert not questions["test"] & (questions["train"] | questions["dev"]), f"{name}: a test question is elsewhere"


def _test_questions() -> dict[str, tuple[set[str], set[str], set[str]]]:
    """split name -> (test ids, test question keys, keys of the instructions seeds made from them would have)."""
    out = {}
    for name in SPLIT_NAMES:
        path = ROOT / "data" / "splits" / name / "test.jsonl"
        rows = read_jsonl(path)
        instructions = {question_key(seed.instruction) for seed in read_source_list([{"path": str(path)}])}
        out[name] = ({str(r["id"]) for r in rows}, {question_key(r["question"]) for r in rows}, instructions)
    return out


def test_no_test_question_reaches_the_training_or_tuning_files():
    """The generator data, the seed configuration (critic and generator data come from it) and the dev splits hold no
    question of a test split, by id or by text."""
    tests = _test_questions()
    generator_rows = read_jsonl(ROOT / "artifacts" / "generator-data" / "train.jsonl")
    instructions = {question_key(r["instruction"]) for r in generator_rows}
    texts = [question_key(r["instruction"] + " " + r.get("input", "")) for r in generator_rows]
    for name, (ids, questions, test_instructions) in tests.items():
        leaked_ids = {r["id"] for r in generator_rows if str(r.get("id", "")).split("/")[0].split("-", 1)[-1] in ids}
        assert not leaked_ids, f"{name}: test ids in the generator data: {sorted(leaked_ids)[:5]}"
        assert not instructions & (questions | test_instructions), f"{name}: a test question is a training row"
        # A question embedded in another instruction (ARC rows wrap theirs with the options) is found as a substring;
        # very short ones ("Planets orbit") would match unrelated text, so only questions of 5+ words are searched.
        leaked = [q for q in questions if len(q.split()) >= 5 and any(q in text for text in texts)]
        assert not leaked, f"{name}: test questions in the generator data: {leaked[:3]}"
        for split in ("train", "dev"):
            other = {question_key(r["question"])
                     for r in read_jsonl(ROOT / "data" / "splits" / name / f"{split}.jsonl")}
            assert not questions & other

    sources = seed_sources(ROOT / "conf" / "seeds" / "indomain.yaml", ROOT / "data")
    split_sources = [s["path"] for s in sources if "/splits/" in s["path"]]
    assert split_sources and all(path.endswith("/train.jsonl") for path in split_sources)
    seed_questions = {question_key(seed.instruction) for seed in read_source_list(sources)}
    for name, (_, questions, test_instructions) in tests.items():
        assert not (questions | test_instructions) & seed_questions, f"indomain seeds hold {name} test questions"


def test_the_out_of_domain_seeds_hold_no_evaluation_question_of_any_split():
    """seeds=outdomain (the paper's setting) keeps every PopQA long-tail and ARC question out, whatever its split."""
    seeds = read_source_list(seed_sources(ROOT / "conf" / "seeds" / "outdomain.yaml", ROOT / "data"))
    seed_questions = {question_key(seed.instruction) for seed in seeds}
    assert len(seeds) > 1000
    for name in SPLIT_NAMES:
        for split in SPLITS:
            path = ROOT / "data" / "splits" / name / f"{split}.jsonl"
            questions = {question_key(r["question"]) for r in read_jsonl(path)}
            instructions = {question_key(s.instruction) for s in read_source_list([{"path": str(path)}])}
            assert not (questions | instructions) & seed_questions, f"{name}/{split} question among the seeds"


def test_exclude_questions_drops_seeds_after_sampling(tmp_path):
    source = tmp_path / "head.jsonl"
    source.write_text("".join(json.dumps({"id": i, "question": q, "answers": ["x"]}) + "\n"
                              for i, q in enumerate(["Who is A?", "Who is B?", "who  is a?", "Who is C?"])))
    held = tmp_path / "test.jsonl"
    held.write_text(json.dumps({"id": 9, "question": "WHO IS A?", "answers": ["y"]}) + "\n")
    plain = read_source_list([{"path": str(source), "dataset": "h"}])
    assert [s.id for s in plain] == ["h-0", "h-1", "h-2", "h-3"]
    kept = read_source_list([{"path": str(source), "dataset": "h", "exclude_questions": [str(held)]}])
    assert [s.id for s in kept] == ["h-1", "h-3"]
    # The sample is drawn first, so excluding rows never changes which other rows are sampled.
    sampled = read_source_list([{"path": str(source), "dataset": "h", "sample": 3, "seed": 1}])
    filtered = read_source_list([{"path": str(source), "dataset": "h", "sample": 3, "seed": 1,
                                  "exclude_questions": [str(held)]}])
    assert [s.id for s in filtered] == [s.id for s in sampled if s.id not in ("h-0", "h-2")]


def test_the_leak_check_would_see_a_leak():
    """The substring check above finds a test question inside an ARC-style instruction."""
    _, questions, _ = _test_questions()["arc_challenge"]
    question = sorted(questions)[0]
    instruction = question_key("Given four answer candidates, choose.\n\n### Input:\n" + question + "\nA: x")
    assert any(q in instruction for q in questions)

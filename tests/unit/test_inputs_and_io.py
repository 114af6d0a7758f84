import json

import pytest

from selfrag.decoding.config import DecodingConfig
from selfrag.inputs import iter_queries
from selfrag.io import InputError, append_jsonl, read_done_ids, read_jsonl


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_official_popqa_rows_give_static_passages(tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"id": 7, "question": "Q?", "answers": ["a"],
                                          "ctxs": [{"id": "11", "title": "T", "text": " body", "score": "1.5"}]}])
    [query] = iter_queries(path, "popqa")
    assert (query.id, query.instruction, query.options) == ("7", "Q?", None)
    assert query.passages[0].id == "11" and query.passages[0].score == 1.5 and query.passages[0].text == " body"


def test_arc_numeric_labels_become_letters_and_options(tmp_path):
    row = {"id": "x", "question": "Which?", "choices": {"text": ["a", "b", "c", "d"], "label": ["1", "2", "3", "4"]}}
    [query] = iter_queries(_write(tmp_path / "a.jsonl", [row]), "arc_challenge")
    assert query.options == ("A", "B", "C", "D")
    assert query.instruction.endswith("Which?\nA: a\nB: b\nC: c\nD: d")


def test_pubhealth_claims_and_bio_topics(tmp_path):
    [claim] = iter_queries(_write(tmp_path / "c.jsonl", [{"id": 0, "claim": "Water is wet."}]), "pubhealth")
    assert claim.options == ("true", "false") and claim.instruction.endswith("## Input:\n\nWater is wet.")
    bio = _write(tmp_path / "b.jsonl", [{"id": 0, "question": "Who is X?", "topic": "X",
                                         "ctxs": [{"title": "X", "text": "X is."}]}])
    [query] = iter_queries(bio, "bio")
    assert query.instruction == "Tell me a bio about X." and query.passages[0].id == "0#0"


def test_plain_question_file_and_limit(tmp_path):
    path = _write(tmp_path / "q.jsonl", [{"id": i, "question": f"q{i}"} for i in range(5)])
    assert [q.id for q in iter_queries(path, "triviaqa", limit=2)] == ["0", "1"]


def test_malformed_line_is_named(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [{"id": 1, "question": "ok"}, "{not json"])
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        list(iter_queries(path, "popqa"))


def test_missing_question_field_is_named(tmp_path):
    path = _write(tmp_path / "m.jsonl", [{"id": 1, "query": "x"}])
    with pytest.raises(InputError, match=r"m.jsonl:1: no question found; task=popqa reads the first of the fields"):
        list(iter_queries(path, "popqa"))


def test_missing_file_unknown_task_and_duplicate_ids(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(iter_queries(tmp_path / "none.jsonl", "popqa"))
    path = _write(tmp_path / "d.jsonl", [{"id": 1, "question": "a"}, {"id": 1, "question": "b"}])
    with pytest.raises(InputError, match="unknown task 'nq'"):
        list(iter_queries(path, "nq"))
    with pytest.raises(InputError, match="d.jsonl:2: duplicate id '1'"):
        list(iter_queries(path, "popqa"))


def test_done_ids_survive_a_torn_last_line(tmp_path):
    path = tmp_path / "out.jsonl"
    append_jsonl(path, [{"id": "a"}, {"id": "b"}])
    with path.open("a") as handle:
        handle.write('{"id": "c", "answ')  # a crash mid-write
    assert read_done_ids(path) == {"a", "b"}
    assert read_jsonl(path) == [{"id": "a"}, {"id": "b"}]  # the torn line was cut off
    append_jsonl(path, [{"id": "c"}])
    assert read_done_ids(path) == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "sometimes"}, "decoding.mode must be one of adaptive, always, never"),
        ({"threshold": 1.5}, r"decoding.threshold is a probability and must be in \[0, 1\]"),
        ({"ndocs": 0}, "decoding.ndocs must be an integer >= 1"),
        ({"w_sup": -0.5}, "decoding.w_sup must be a number >= 0"),
    ],
)
def test_decoding_config_errors_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecodingConfig(**kwargs)


def test_json_list_files_are_read_like_jsonl(tmp_path):
    """ALCE ships ASQA as one JSON list (`asqa_eval_gtr_top100.json`): read item by item, errors name the item."""
    path = tmp_path / "asqa.json"
    path.write_text(json.dumps([{"id": "a", "question": "Who?"}, {"id": "b", "question": "When?"}], indent=1))
    queries = list(iter_queries(path, "asqa"))
    assert [q.id for q in queries] == ["a", "b"] and queries[1].instruction.endswith("When?")
    assert read_jsonl(path) == [{"id": "a", "question": "Who?"}, {"id": "b", "question": "When?"}]
    (tmp_path / "obj.json").write_text('{"id": "a"}')
    with pytest.raises(InputError, match=r"obj.json: a .json input must hold one list of objects, got dict"):
        read_jsonl(tmp_path / "obj.json")
    (tmp_path / "item.json").write_text('[{"id": "a"}, 3]')
    with pytest.raises(InputError, match=r"item.json: item 2 of the list is int"):
        read_jsonl(tmp_path / "item.json")
    (tmp_path / "broken.json").write_text('[{"id": "a"},\n {"id": ]')
    with pytest.raises(InputError, match=r"broken.json:2: not valid JSON"):
        read_jsonl(tmp_path / "broken.json")

"""The files a training run trains on: the dev split is deterministic, order-free and never splits a question; the
stripped baseline and the split are written once, byte-identically."""

from __future__ import annotations

import json

import pytest

from selfrag.io import InputError, read_jsonl
from selfrag.training.data_files import prepare_training_files, split_dev


def _rows(n, repeats=1):
    return [{"instruction": f"q{i}", "input": "", "output": f"[No Retrieval]a{i}-{k}[Utility:5]", "id": f"{i}-{k}"}
            for i in range(n) for k in range(repeats)]


def test_split_is_a_function_of_the_rows_not_their_order():
    rows = _rows(40)
    train, dev = split_dev(rows, 0.1)
    assert len(dev) == 4 and len(train) == 36
    positions = [rows.index(r) for r in dev]
    assert positions == sorted(positions)  # file order kept
    shuffled_train, shuffled_dev = split_dev(rows[::-1], 0.1)
    assert sorted(r["id"] for r in shuffled_dev) == sorted(r["id"] for r in dev)


def test_a_question_is_never_on_both_sides_and_some_rows_always_train():
    train, dev = split_dev(_rows(10, repeats=3), 0.2)
    assert {r["instruction"] for r in train}.isdisjoint({r["instruction"] for r in dev})
    assert len(dev) == 6
    assert split_dev(_rows(1, repeats=5), 0.5) == (_rows(1, repeats=5), [])  # one question: no dev set
    assert split_dev(_rows(2), 0.9)[0]  # never everything
    assert split_dev(_rows(5), 0) == (_rows(5), [])
    with pytest.raises(InputError, match="dev_fraction"):
        split_dev(_rows(5), 1.0)


def test_prepared_files(tmp_path):
    source = tmp_path / "src.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in _rows(20)))
    plain = prepare_training_files(source, None, dev_fraction=0, strip_reflection=False, out_dir=tmp_path / "d")
    assert plain.train == [source] and plain.dev == [] and not plain.derived and not (tmp_path / "d").exists()

    files = prepare_training_files(str(source), None, dev_fraction=0.1, strip_reflection=True, out_dir=tmp_path / "d")
    assert files.derived and files.sources == [source] and len(files.notes) == 2
    train, dev = read_jsonl(files.train[0]), read_jsonl(files.dev[0])
    assert len(train) == 18 and len(dev) == 2 and all("[" not in r["output"] for r in train + dev)
    first = files.train[0].read_bytes()
    again = prepare_training_files([source], None, dev_fraction=0.1, strip_reflection=True, out_dir=tmp_path / "d")
    assert again.train[0].read_bytes() == first
    other = prepare_training_files([source], None, dev_fraction=0.1, strip_reflection=True, out_dir=tmp_path / "d",
                                   write=False)
    assert (other.train, other.dev) == (files.train, files.dev)

    with pytest.raises(InputError, match="data.train=.*missing.jsonl: no such file"):
        prepare_training_files(tmp_path / "missing.jsonl", None, dev_fraction=0, strip_reflection=True,
                               out_dir=tmp_path / "d")


def test_the_stripped_baseline_leaves_judgement_only_rows_out(tmp_path):
    source = tmp_path / "src.jsonl"
    rows = _rows(3) + [{"instruction": "q0", "input": "", "output": "[Retrieval]<paragraph>p</paragraph>[Irrelevant]",
                        "id": "0/isrel", "supervise": ["isrel"]}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = prepare_training_files(source, None, dev_fraction=0, strip_reflection=True, out_dir=tmp_path / "d")
    assert [r["id"] for r in read_jsonl(files.train[0])] == ["0-0", "1-0", "2-0"]
    assert "1 row(s) with a `supervise` key (reflection-token judgements only) left out" in files.notes

import json

import pytest

from selfrag.io import InputError
from selfrag.retrieval.corpus import corpus_fingerprint, iter_corpus, load_corpus
from selfrag.retrieval.store import PassageStore, read_meta, write_meta
from selfrag.types import Passage


def test_dpr_tsv_with_quoted_and_unquoted_fields(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text('id\ttext\ttitle\n'
                    '1\t"Aaron ( or ; ""Aharon"") is a prophet"\tAaron\n'
                    '2\t"The King\'s Speech", a 2010 film\tGeorge VI\n'
                    '3\tplain ""odd"" quotes\t\n')
    assert load_corpus(path) == [
        Passage("1", "Aaron", 'Aaron ( or ; "Aharon") is a prophet'),
        Passage("2", "George VI", '"The King\'s Speech", a 2010 film'),
        Passage("3", "", 'plain ""odd"" quotes'),
    ]


def test_jsonl_with_text_or_contents(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": 1, "title": "T", "text": "body"}) + "\n"
                    + json.dumps({"id": "d2", "contents": "Title\nthe text"}) + "\n"
                    + json.dumps({"id": "d3", "contents": "only text"}) + "\n")
    assert load_corpus(path) == [Passage("1", "T", "body"), Passage("d2", "Title", "the text"),
                                 Passage("d3", "", "only text")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("h.tsv", "pid\tbody\n", r"h.tsv:1: expected the header 'id<TAB>text<TAB>title'"),
        ("r.tsv", "id\ttext\ttitle\n1\tok\tT\n2\tmissing title\n", r"r.tsv:3: expected 3 tab-separated fields"),
        ("j.jsonl", '{"id": 1, "text": "a"}\n{"id": 2}\n', r"j.jsonl:2: a passage needs `id` and `text`"),
        ("c.csv", "x", "unknown corpus format"),
    ],
)
def test_malformed_corpora_name_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        list(iter_corpus(path))


def test_the_embedded_corpus_reads_completely():
    from pathlib import Path

    passages = load_corpus(Path(__file__).resolve().parents[2] / "data/corpus/wiki_passages.tsv")
    assert len(passages) == 18415 and len({p.id for p in passages}) == 18415


def test_store_refuses_a_corpus_changed_since_indexing(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("id\ttext\ttitle\n1\tone\tA\n2\ttwo\tB\n")
    write_meta(tmp_path / "idx", {"kind": "bm25", "corpus_path": str(path),
                                  "corpus_fingerprint": corpus_fingerprint(path), "passages": 2})
    meta = read_meta(tmp_path / "idx", kind="bm25")
    store = PassageStore.for_index(meta, where="idx")
    assert store.with_score(1, 2.5) == Passage("2", "B", "two", 2.5)
    with pytest.raises(InputError, match="a 'bm25' index, but retriever=dense was asked for"):
        read_meta(tmp_path / "idx", kind="dense")
    path.write_text("id\ttext\ttitle\n1\tone\tA\n2\tTWO\tB\n")
    with pytest.raises(InputError, match="changed since the index was built"):
        PassageStore.for_index(meta, where="idx")
    with pytest.raises(InputError, match="not an index directory"):
        read_meta(tmp_path / "nothing")

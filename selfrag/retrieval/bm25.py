"""BM25 retrieval with `bm25s`: building an index directory from a corpus, and the retriever that searches it.

This module owns the `bm25` index kind. An index directory holds:

- `bm25/`: the `bm25s` index (`BM25.save`: sparse score matrix as `.npy` arrays, its vocabulary, its parameters) and
  the query tokenizer's vocabulary (`vocab.tokenizer.json`), so queries map to exactly the index's token ids;
- `meta.json` (written last): `kind="bm25"`, the absolute `corpus_path`, `corpus_fingerprint`, `passages`, and the
  BM25 / tokenizer settings (`k1`, `b`, `method`, `stopwords`, `stemmer`, `bm25s_version`).

The corpus is not copied: row i of the index is passage i of the corpus file (see `selfrag.retrieval.store`).
Each passage is indexed as `"title text"`, lower-cased, split on word characters (tokens of two or more), with
stopwords removed and, optionally, stemmed with PyStemmer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selfrag.io import InputError
from selfrag.retrieval.corpus import corpus_fingerprint, iter_corpus
from selfrag.retrieval.store import META_FILE, PassageStore, read_meta, write_meta
from selfrag.types import Passage

KIND = "bm25"
#: Sub-directory of an index directory that holds the `bm25s` files.
BM25_SUBDIR = "bm25"
#: The query tokenizer's vocabulary (word -> index token id), beside the `bm25s` files.
TOKENIZER_VOCAB = "vocab.tokenizer.json"
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError as err:  # pragma: no cover - the retrieval extra pins it
        raise ImportError("BM25 retrieval needs bm25s: pip install bm25s (or pip install -e '.[retrieval]')") from err
    return bm25s


def _stemmer(name: str | None) -> Any:
    """A PyStemmer stemmer for the language `name` (e.g. "english"), or None."""
    if name is None:
        return None
    try:
        import Stemmer
    except ImportError as err:
        raise ImportError(f"stemmer={name!r} needs PyStemmer: pip install PyStemmer") from err
    try:
        return Stemmer.Stemmer(name)
    except KeyError:
        raise InputError(f"stemmer must be a PyStemmer language (e.g. 'english'), got {name!r}") from None


def _tokenizer(stopwords: str | Sequence[str] | None, stemmer: str | None) -> Any:
    bm25s = _bm25s()
    try:
        return bm25s.tokenization.Tokenizer(
            lower=True, stopwords=list(stopwords) if isinstance(stopwords, list | tuple) else stopwords,
            stemmer=_stemmer(stemmer),
        )
    except ValueError as err:
        raise InputError(f"bm25 stopwords: {err}") from None


def _check_params(k1: float, b: float, method: str) -> None:
    if not k1 >= 0:
        raise InputError(f"bm25 k1 must be >= 0, got {k1!r}")
    if not 0 <= b <= 1:
        raise InputError(f"bm25 b must be in [0, 1], got {b!r}")
    if method not in METHODS:
        raise InputError(f"bm25 method must be one of {', '.join(METHODS)}, got {method!r}")


def _build(
    corpus_path: str | Path,
    index_dir: str | Path,
    *,
    keep_passages: bool,
    k1: float = 1.5,
    b: float = 0.75,
    method: str = "lucene",
    stopwords: str | Sequence[str] | None = "en",
    stemmer: str | None = None,
) -> tuple[Any, Any, list[Passage], dict[str, Any]]:
    """Index the corpus, save it into `index_dir` (meta.json last); return model, tokenizer, passages, meta."""
    bm25s = _bm25s()
    _check_params(k1, b, method)
    corpus_path = Path(corpus_path).resolve()
    index_dir = Path(index_dir)
    tokenizer = _tokenizer(stopwords, stemmer)
    passages: list[Passage] = []
    count = 0

    def texts() -> Iterator[str]:
        nonlocal count
        for passage in iter_corpus(corpus_path):  # streamed: a malformed row stops here, naming its line
            count += 1
            if keep_passages:
                passages.append(passage)
            yield f"{passage.title} {passage.text}"

    # One pass over the corpus: only token ids are kept, never the whole text.
    token_ids = list(tokenizer.streaming_tokenize(texts(), update_vocab=True, allow_empty=True))
    if count == 0:
        raise InputError(f"{corpus_path}: the corpus has no passages")
    model = bm25s.BM25(k1=k1, b=b, method=method)
    model.index(bm25s.tokenization.Tokenized(ids=token_ids, vocab=tokenizer.get_vocab_dict()), show_progress=False)
    del token_ids
    # A stale meta.json must not make a half-rewritten directory look complete.
    (index_dir / META_FILE).unlink(missing_ok=True)
    save_dir = index_dir / BM25_SUBDIR
    model.save(save_dir, show_progress=False)
    tokenizer.save_vocab(save_dir, vocab_name=TOKENIZER_VOCAB)
    meta = {
        "kind": KIND,
        "corpus_path": str(corpus_path),
        "corpus_fingerprint": corpus_fingerprint(corpus_path),
        "passages": count,
        "k1": k1,
        "b": b,
        "method": method,
        "stopwords": list(stopwords) if isinstance(stopwords, list | tuple) else stopwords,
        "stemmer": stemmer,
        "bm25s_version": bm25s.__version__,
    }
    write_meta(index_dir, meta)
    return model, tokenizer, passages, meta


def build_bm25_index(
    corpus_path: str | Path,
    index_dir: str | Path,
    *,
    k1: float = 1.5,
    b: float = 0.75,
    method: str = "lucene",
    stopwords: str | Sequence[str] | None = "en",
    stemmer: str | None = None,
) -> Path:
    """Build a BM25 index of a `.tsv` / `.jsonl` corpus into `index_dir` (see the module docstring for the layout).

    Args:
        corpus_path: the passage corpus (read once, streamed).
        index_dir: the index directory to (re)write; `meta.json` is written last.
        k1: term-frequency saturation (>= 0).
        b: length normalisation, in [0, 1].
        method: the BM25 variant, one of `METHODS` (`lucene` is Lucene's / Pyserini's).
        stopwords: a language `bm25s` knows ("en", "english", "de", ...), a list of words, or None for none.
        stemmer: a PyStemmer language name (e.g. "english"), or None (no stemming). A name rather than a callable,
            so that the index can record it in meta.json and queries are stemmed the same way after loading.

    Returns:
        `index_dir`, as a Path.

    Raises:
        InputError: a missing or malformed corpus (file and line named), or invalid parameters.
        ImportError: bm25s (or PyStemmer, for `stemmer`) is not installed.
    """
    _build(corpus_path, index_dir, k1=k1, b=b, method=method, stopwords=stopwords, stemmer=stemmer,
           keep_passages=False)
    return Path(index_dir)


class BM25Retriever:
    """Searches a BM25 index; implements `selfrag.retrieval.base.Retriever`.

    Open one with `from_dir` (a built index directory) or `build` (index a corpus, save it, and search at once).
    """

    def __init__(self, model: Any, tokenizer: Any, store: Sequence[Passage], meta: dict[str, Any]) -> None:
        """Wrap a `bm25s.BM25` model, the tokenizer whose vocabulary it was indexed with, and its passages.

        Args:
            model: a `bm25s.BM25` with its scores loaded.
            tokenizer: a `bm25s.tokenization.Tokenizer` holding the index's vocabulary.
            store: the passages, row i = document i of the model (a `PassageStore` or a list).
            meta: the index's meta.json content.
        """
        num_docs = int(model.scores["num_docs"])
        if num_docs != len(store):
            raise InputError(f"the BM25 index has {num_docs} documents but its corpus has {len(store)} passages; "
                             f"rebuild the index")
        self.model = model
        self.tokenizer = tokenizer
        self.store = store if isinstance(store, PassageStore) else PassageStore(list(store))
        self.meta = meta

    @classmethod
    def from_dir(cls, index_dir: str | Path, *, mmap: bool = True) -> BM25Retriever:
        """Open a BM25 index directory built by `build_bm25_index`.

        Args:
            index_dir: the index directory.
            mmap: memory-map the score matrix (`bm25s` `mmap=True`) instead of reading it into memory.

        Raises:
            InputError: not a complete index, an index of another kind, or a corpus missing / changed since indexing.
        """
        index_dir = Path(index_dir)
        meta = read_meta(index_dir, kind=KIND)
        store = PassageStore.for_index(meta, where=str(index_dir))
        bm25s = _bm25s()
        save_dir = index_dir / BM25_SUBDIR
        model = bm25s.BM25.load(save_dir, mmap=mmap, load_vocab=True, show_progress=False, verbosity=0)
        tokenizer = _tokenizer(meta.get("stopwords"), meta.get("stemmer"))
        tokenizer.load_vocab(save_dir, vocab_name=TOKENIZER_VOCAB)
        return cls(model, tokenizer, store, meta)

    @classmethod
    def build(cls, corpus_path: str | Path, index_dir: str | Path, **params: Any) -> BM25Retriever:
        """Index a corpus into `index_dir` (as `build_bm25_index`, same keyword `params`) and return a retriever
        over the in-memory index."""
        model, tokenizer, passages, meta = _build(corpus_path, index_dir, keep_passages=True, **params)
        return cls(model, tokenizer, passages, meta)

    def __len__(self) -> int:
        return len(self.store)

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """For each query, the `min(k, corpus size)` best passages by BM25 score, best first, `score` set.

        Equal scores are ordered by corpus row. A query sharing no indexed term with the corpus scores 0 everywhere;
        like `bm25s.retrieve`, it still gets `k` passages (all with score 0, so callers can tell them apart).

        Raises:
            ValueError: k < 1.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not queries:
            return []
        k = min(k, len(self.store))
        # update_vocab=False: words the corpus never had are dropped (an all-unknown query becomes the empty token).
        query_ids = self.tokenizer.streaming_tokenize(list(queries), update_vocab=False, allow_empty=True)
        return [self._top_k(ids, k) for ids in query_ids]

    def _top_k(self, token_ids: list[int], k: int) -> list[Passage]:
        scores = self.model.get_scores_from_ids(token_ids)
        # Our own selection rather than `bm25s.retrieve`'s: numpy's argpartition for the *largest* values is ~25x
        # slower on BM25 score vectors (mostly exact zeros) than for the smallest of the negated vector.
        rows = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = scores[rows]
        order = np.lexsort((rows, -top))  # best first; equal scores by corpus order, so results are deterministic
        return [self.store.with_score(row, score) for row, score in zip(rows[order].tolist(), top[order].tolist())]

    def search(self, query: str, k: int) -> list[Passage]:
        """The `k` best passages for one query (see `batch_search`)."""
        return self.batch_search([query], k)[0]


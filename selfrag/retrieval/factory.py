"""Building and opening retrievers by name (`bm25`, `dense`, `hybrid`) from plain settings.

Index layout: a `bm25` or `dense` index is one directory; a `hybrid` index is a directory holding `dense/` and
`bm25/` sub-indexes over the same corpus plus its own `meta.json`. With no index directory given, `open_retriever`
builds the index once into the cache (`~/.cache/selfrag/indexes/<kind>-<corpus fingerprint>-<settings hash>`), which
is what lets `retriever=bm25` answer a few seconds after a fresh start.

A configured retriever may be wrapped (`wrap_retriever`): a query-writing front-end (`selfrag.retrieval.frontends`)
and a reranker (`selfrag.retrieval.rerank`), from the `frontend*`/`rerank*` keys every live retriever config has.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfrag.io import InputError
from selfrag.models.packaged import cache_root
from selfrag.retrieval.base import Retriever
from selfrag.retrieval.corpus import corpus_fingerprint, iter_corpus
from selfrag.retrieval.store import META_FILE, read_meta, write_meta
from selfrag.types import BACKENDS
from selfrag.values import as_bool

log = logging.getLogger(__name__)

RETRIEVERS = ("bm25", "dense", "hybrid")


def _encoder(options: dict[str, Any]) -> Any:
    from selfrag.retrieval.encoders import make_encoder

    settings = dict(options.get("encoder") or {})
    return make_encoder(settings.pop("kind", "sentence_transformers"), settings.pop("path", None), **settings)


def build_index(kind: str, corpus_path: str | Path, index_dir: str | Path, options: dict[str, Any]) -> Path:
    """Build a `kind` index of the corpus into `index_dir` (see conf/retriever/*.yaml for `options`)."""
    index_dir = Path(index_dir)
    corpus_path = Path(corpus_path).resolve()
    next(iter_corpus(corpus_path), None)  # fail fast on a missing or unreadable corpus, before any model loads
    if kind == "bm25":
        from selfrag.retrieval.bm25 import build_bm25_index

        build_bm25_index(corpus_path, index_dir, **(options.get("bm25") or {}))
    elif kind == "dense":
        from selfrag.retrieval.dense import build_dense_index

        build_dense_index(corpus_path, index_dir, _encoder(options), **(options.get("index") or {}))
    elif kind == "hybrid":
        build_index("dense", corpus_path, index_dir / "dense", options["dense"])
        build_index("bm25", corpus_path, index_dir / "bm25", options["bm25"])
        write_meta(index_dir, {"kind": "hybrid", "corpus_path": str(corpus_path),
                               "corpus_fingerprint": corpus_fingerprint(corpus_path),
                               "passages": read_meta(index_dir / "bm25")["passages"], "parts": ["dense", "bm25"]})
    else:
        raise InputError(f"retriever must be one of {', '.join(RETRIEVERS)}, got {kind!r}")
    return index_dir


def _settings_hash(options: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:8]


def cached_index_dir(kind: str, corpus_path: str | Path, options: dict[str, Any]) -> Path:
    """Where `open_retriever` keeps an index it built itself for this corpus and these settings."""
    build_options = {k: v for k, v in options.items() if k not in ("k", "cache", "nprobe", "use_gpu", "fusion",
                                                                     "rrf_k", "weights", "candidates")}
    name = f"{kind}-{corpus_fingerprint(corpus_path)}-{_settings_hash(build_options)}"
    return cache_root() / "indexes" / name


def _point_at_corpus(index_dir: Path, corpus_path: Path) -> None:
    """A cached index is found by its corpus's *content* fingerprint, so it may have been built from a copy of this
    corpus at another path (since moved or deleted): record the path in use now. The passage store still checks the
    fingerprint when it loads the corpus."""
    for meta_path in index_dir.rglob(META_FILE):
        meta = read_meta(meta_path.parent)
        if "corpus_path" in meta and Path(meta["corpus_path"]).resolve() != corpus_path.resolve():
            write_meta(meta_path.parent, {**meta, "corpus_path": str(corpus_path.resolve())})


def open_retriever(
    kind: str,
    *,
    index_dir: str | Path | None,
    corpus_path: str | Path | None,
    options: dict[str, Any],
) -> Retriever:
    """Open (building once into the cache if `index_dir` is None) a retriever of `kind`, cached per query if asked.

    Raises:
        InputError: unknown kind, `cache` not a boolean, no index and no corpus, or an index of another kind /
            encoder.
    """
    if kind not in RETRIEVERS:
        raise InputError(f"retriever must be one of {', '.join(RETRIEVERS)} (or none), got {kind!r}")
    use_cache = as_bool(options.get("cache", False), "retriever.cache")  # checked before any index is built
    if index_dir is None:
        if corpus_path is None:
            raise InputError(f"retriever={kind} needs retriever.index_dir=DIR (or corpus.path to build one)")
        index_dir = cached_index_dir(kind, corpus_path, options)
        if not (index_dir / "meta.json").is_file():
            log.info("building a %s index of %s into %s (once)", kind, corpus_path, index_dir)
            build_index(kind, corpus_path, index_dir, options)
        else:
            _point_at_corpus(index_dir, Path(corpus_path))
    index_dir = Path(index_dir)
    retriever = _open(kind, index_dir, options)
    if use_cache:
        from selfrag.retrieval.cache import CachedRetriever, RetrievalCache, index_fingerprint

        # Search settings (fusion, rrf_k, nprobe, encoder, ...) are part of the key: changing them must not reuse
        # results cached under other settings.
        settings = {key: value for key, value in options.items() if key not in ("cache", "k")}
        retriever = CachedRetriever(retriever, RetrievalCache(index_dir / "retrieval_cache.sqlite"),
                                    index_fingerprint(index_dir, settings))
    return retriever


def open_configured_retriever(settings: dict[str, Any], corpus_path: str | Path | None) -> Retriever:
    """Open the retriever a `retriever` config group describes: its `name`, `index_dir` (null: built once into the
    cache from `corpus_path`) and the kind's options (see `open_retriever`); the front-end keys are checked and left
    out (`selfrag.decoding.frontend_models.open_front_end` adds what they describe)."""
    options, _ = front_end_config(settings)  # front-ends and rerankers: selfrag.decoding.frontend_models
    kind = options.pop("name")
    index_dir = options.pop("index_dir", None)
    return open_retriever(kind, index_dir=index_dir, corpus_path=corpus_path, options=options)


def _open(kind: str, index_dir: Path, options: dict[str, Any]) -> Retriever:
    read_meta(index_dir, kind=kind)
    if kind == "bm25":
        from selfrag.retrieval.bm25 import BM25Retriever

        return BM25Retriever.from_dir(index_dir)
    if kind == "dense":
        from selfrag.retrieval.dense import DenseRetriever

        search = {key: options[key] for key in ("nprobe", "use_gpu") if options.get(key) is not None}
        return DenseRetriever.from_dir(index_dir, _encoder(options), **search)
    from selfrag.retrieval.hybrid import HybridRetriever

    parts = [_open("dense", index_dir / "dense", options["dense"]), _open("bm25", index_dir / "bm25", options["bm25"])]
    return HybridRetriever(parts, fusion=options.get("fusion", "rrf"), rrf_k=options.get("rrf_k", 60),
                           weights=options.get("weights"), candidates=options.get("candidates"))


# ---- front-ends and reranking around a retriever (conf/retriever_frontend/default.yaml) ------------------------------

#: The retriever-config keys that describe what wraps the retriever, not the retriever itself.
FRONT_END_KEYS = ("frontend", "frontend_options", "rerank", "rerank_options")
#: The cache file (under the cache root) of the queries front-ends wrote.
WRITTEN_QUERIES = "frontend_queries.sqlite"


@dataclass(frozen=True)
class FrontEndConfig:
    """What wraps a retriever: an optional query-writing front-end, then an optional reranker (outermost, so it
    judges passages against the user's question, not the written query)."""

    frontend: Any  # FrontEndSettings
    writer_model: str | None = None
    writer_backend: str = "hf"
    cache: bool = True
    rerank: str = "none"
    rerank_candidates: int = 20
    rerank_model: str | None = None
    rerank_backend: str = "hf"

    @property
    def active(self) -> bool:
        return self.frontend.kind != "none" or self.rerank != "none"


def front_end_config(options: dict[str, Any]) -> tuple[dict[str, Any], FrontEndConfig]:
    """Split a retriever config into the retriever's own options and its `FrontEndConfig`, every value checked.

    Raises:
        InputError: a bad value, naming its `retriever.` key.
    """
    from selfrag.retrieval.frontends import FrontEndSettings
    from selfrag.retrieval.rerank import RERANKERS
    from selfrag.values import as_choice, as_int, as_str

    options = dict(options)
    given = {key: options.pop(key, None) for key in FRONT_END_KEYS}
    front = dict(given["frontend_options"] or {})
    rerank = dict(given["rerank_options"] or {})
    settings = FrontEndSettings(  # checks its own values, naming their keys
        kind=given["frontend"] or "none",
        n_queries=front.get("n_queries", 4),
        weights=front.get("weights"),
        rrf_k=front.get("rrf_k", 60),
        candidates=front.get("candidates", 20),
        include_question=front.get("include_question", True),
        max_new_tokens=front.get("max_new_tokens", 64),
    )
    kind = str(as_choice(given["rerank"] or "none", "retriever.rerank", RERANKERS))
    rerank_model = as_str(rerank.get("model_path"), "retriever.rerank_options.model_path", allow_none=True)
    if kind == "cross_encoder" and rerank_model is None:
        raise InputError("retriever.rerank=cross_encoder needs retriever.rerank_options.model_path=DIR (a "
                         "sentence-transformers CrossEncoder directory)")
    config = FrontEndConfig(
        frontend=settings,
        writer_model=as_str(front.get("model_path"), "retriever.frontend_options.model_path", allow_none=True),
        writer_backend=str(as_choice(front.get("backend", "hf"), "retriever.frontend_options.backend",
                                     BACKENDS)),
        cache=as_bool(front.get("cache", True), "retriever.frontend_options.cache"),
        rerank=kind,
        rerank_candidates=int(as_int(rerank.get("candidates", 20), "retriever.rerank_options.candidates", minimum=1)),
        rerank_model=rerank_model,
        rerank_backend=str(as_choice(rerank.get("backend", "hf"), "retriever.rerank_options.backend",
                                     BACKENDS)),
    )
    return options, config


def written_queries_cache(config: FrontEndConfig) -> Any:
    """The cache of written queries (`~/.cache/selfrag/frontend_queries.sqlite`), or None with `cache=false`."""
    from selfrag.retrieval.frontends import WrittenTextCache

    return WrittenTextCache(cache_root() / WRITTEN_QUERIES) if config.cache else None


def wrap_retriever(retriever: Retriever, config: FrontEndConfig, *, writer: Any = None, scorer: Any = None
                   ) -> Retriever:
    """`retriever` behind its front-end (queries written by `writer`) and reranker (`scorer`), as `config` says.
    `selfrag.decoding.frontend_models.open_front_end` builds the configured models and calls this.

    Raises:
        ValueError: a front-end without a writer, or a reranker without a scorer.
    """
    from selfrag.retrieval.frontends import FrontEndRetriever
    from selfrag.retrieval.rerank import RerankingRetriever

    if config.frontend.kind != "none":
        if writer is None:
            raise ValueError(f"retriever.frontend={config.frontend.kind} needs a writer")
        retriever = FrontEndRetriever(retriever, writer, config.frontend, written_queries_cache(config))
    if config.rerank != "none":
        if scorer is None:
            raise ValueError(f"retriever.rerank={config.rerank} needs a scorer")
        retriever = RerankingRetriever(retriever, scorer, config.rerank_candidates)
    return retriever


def with_search_queries(rows: list[dict[str, Any]], retriever: Retriever | None) -> list[dict[str, Any]]:
    """Prediction rows with `queries` (what a front-end searched each question with) added where it searched."""
    lookup = getattr(retriever, "queries_for", None)
    if callable(lookup):
        for row in rows:
            used = lookup(row["question"])
            if used is not None:
                row["queries"] = used
    return rows


def close_retriever(retriever: Retriever | None) -> None:
    """Release the models a wrapped retriever holds (a plain retriever holds none and is left open)."""
    release = getattr(retriever, "release_models", None)
    if callable(release):
        release()

"""Dense retrieval with faiss: building an index directory from a corpus, and the retriever that searches it.

This module owns the `dense` index kind. An index directory holds:

- `embeddings/shard_00000.npy`, `shard_00001.npy`, ...: the passage vectors (float32, `shard_size` rows each, the
  last one shorter), written one shard at a time while the corpus is streamed, so a corpus larger than memory can be
  encoded, and an interrupted build resumes at the first missing shard (`embeddings/manifest.json` records the
  corpus fingerprint and encoder the shards belong to; shards of another corpus or encoder are discarded);
- `index.faiss`: the faiss index, built from the memory-mapped shards, shard by shard;
- `meta.json` (written last): `kind="dense"`, the absolute `corpus_path`, `corpus_fingerprint`, `passages`, the
  `encoder` name, `dimension`, `normalize`, `metric` (always inner product), `index_type` and `index_params`.

Index types, all scored by inner product (cosine similarity for normalised encoders):

- `flat`: exact search (`IndexFlatIP`);
- `ivf`: inverted lists (`IndexIVFFlat`), `nlist` k-means cells trained on a sample, `nprobe` cells searched;
- `hnsw`: a graph (`IndexHNSWFlat`, `hnsw_m` links per node, `ef_search` candidates per query);
- `ivfpq`: inverted lists of product-quantised vectors (`IndexIVFPQ`, `pq_m` bytes per vector with 8-bit codes);
  smallest in memory, and its scores are approximate inner products.

With faiss-gpu and `use_gpu` "auto" / True, search runs on the GPU(s) (sharded across several) and IVF training's
k-means runs there; see the "GPU" section below. The corpus is not copied: row i of the index is passage i of the
corpus file (see `selfrag.retrieval.store`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from selfrag.io import InputError, write_text_atomic
from selfrag.retrieval.corpus import corpus_fingerprint, iter_corpus
from selfrag.retrieval.encoders import Encoder
from selfrag.retrieval.store import META_FILE, PassageStore, read_meta, write_meta
from selfrag.types import Passage

log = logging.getLogger(__name__)

KIND = "dense"
INDEX_TYPES = ("flat", "ivf", "hnsw", "ivfpq")
INDEX_FILE = "index.faiss"
EMBEDDINGS_SUBDIR = "embeddings"
MANIFEST_FILE = "manifest.json"
#: Rows handed to faiss per `add` call, so adding a memory-mapped shard never copies the whole shard at once.
ADD_CHUNK = 65_536
DEFAULT_NPROBE = 32
DEFAULT_EF_SEARCH = 128
DEFAULT_EF_CONSTRUCTION = 80
_SEED = 1234


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - the retrieval extra pins faiss-cpu
        raise ImportError("dense retrieval needs faiss: pip install faiss-cpu (or faiss-gpu-cu12 for NVIDIA GPUs; "
                          "or pip install -e '.[retrieval]')") from err
    return faiss


def shard_path(index_dir: str | Path, shard: int) -> Path:
    """Where shard number `shard` of an index directory's embeddings lives."""
    return Path(index_dir) / EMBEDDINGS_SUBDIR / f"shard_{shard:05d}.npy"


def _batched(passages: Iterator[Passage], size: int) -> Iterator[list[Passage]]:
    while chunk := list(islice(passages, size)):
        yield chunk


def _positive_int(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"dense index {name} must be an integer >= 1{' (or null)' if allow_none else ''}, "
                         f"got {value!r}")


def _check_use_gpu(use_gpu: Any) -> None:
    if use_gpu not in (True, False, "auto"):
        raise InputError(f"use_gpu must be auto, true or false, got {use_gpu!r}")


def _encode_shard(encoder: Encoder, passages: list[Passage]) -> np.ndarray:
    vectors = np.asarray(encoder.encode_passages(passages), dtype=np.float32)
    if vectors.shape != (len(passages), encoder.dimension):
        raise ValueError(f"encoder {encoder.name!r} returned shape {vectors.shape} for {len(passages)} passages; "
                         f"expected ({len(passages)}, {encoder.dimension})")
    return vectors


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    # A shard is only ever seen complete: a build killed mid-write leaves a temporary file that resuming ignores.
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _shard_rows(path: Path, dimension: int) -> int | None:
    """Rows of a complete, readable shard of this dimension; None when it is missing or unusable."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError):
        return None
    if array.dtype != np.float32 or array.ndim != 2 or array.shape[1] != dimension:
        return None
    return int(array.shape[0])


def _prepare_embeddings_dir(index_dir: Path, manifest: dict[str, Any]) -> Path:
    """The embeddings directory, emptied of shards that belong to another corpus, encoder or shard size."""
    directory = index_dir / EMBEDDINGS_SUBDIR
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST_FILE
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    if old != manifest:
        stale = sorted(directory.glob("shard_*.npy"))
        if stale:
            log.warning("%s: discarding %d embedding shard(s) of another corpus/encoder/shard size", directory,
                        len(stale))
        for path in stale:
            path.unlink()
        write_text_atomic(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return directory


def encode_corpus(
    corpus_path: str | Path,
    index_dir: str | Path,
    encoder: Encoder,
    *,
    shard_size: int = 100_000,
) -> list[Path]:
    """Encode a corpus into `index_dir/embeddings/shard_NNNNN.npy`, resuming after the shards already written.

    The corpus is streamed `shard_size` passages at a time; a shard already on disk with the expected number of rows
    (for the same corpus fingerprint, encoder and shard size, per `embeddings/manifest.json`) is not encoded again.

    Returns:
        The shard paths, in corpus order.

    Raises:
        InputError: a missing, malformed or empty corpus, or an invalid shard_size.
    """
    return _encode_corpus(Path(corpus_path).resolve(), Path(index_dir), encoder, shard_size)[0]


def _encode_corpus(corpus_path: Path, index_dir: Path, encoder: Encoder, shard_size: int) -> tuple[list[Path], str]:
    """`encode_corpus`, also returning the corpus fingerprint (hashing a large corpus once, not twice)."""
    _positive_int("shard_size", shard_size)
    passages = iter_corpus(corpus_path)  # fails fast on a missing file or unknown format
    fingerprint = corpus_fingerprint(corpus_path)
    manifest = {"corpus_fingerprint": fingerprint, "encoder": encoder.name,
                "dimension": encoder.dimension, "normalize": encoder.normalize, "shard_size": shard_size}
    directory = _prepare_embeddings_dir(index_dir, manifest)
    shards: list[Path] = []
    for number, chunk in enumerate(_batched(passages, shard_size)):
        path = shard_path(index_dir, number)
        if _shard_rows(path, encoder.dimension) == len(chunk):
            log.info("%s: already encoded, skipped", path.name)
        else:
            log.info("%s: encoding passages %d-%d", path.name, number * shard_size, number * shard_size + len(chunk))
            _save_npy_atomic(path, _encode_shard(encoder, chunk))
        shards.append(path)
    if not shards:
        raise InputError(f"{corpus_path}: the corpus has no passages")
    for path in directory.glob("shard_*.npy"):  # a shorter corpus than a previous run's (same fingerprint: rare)
        if path not in shards:
            path.unlink()
    return shards, fingerprint


def _resolve_params(
    index_type: str,
    passages: int | None,
    dimension: int,
    *,
    nlist: int | None,
    nprobe: int | None,
    hnsw_m: int,
    ef_construction: int,
    ef_search: int,
    pq_m: int | None,
    pq_nbits: int,
    train_size: int | None,
) -> dict[str, Any]:
    """The index parameters recorded in meta.json, defaults filled in and checked against the corpus size.

    With `passages=None` only the checks that need no corpus are made (before encoding, so a bad setting fails in
    seconds rather than after hours of encoding), and {} is returned.
    """
    if index_type == "flat":
        return {}
    if index_type == "hnsw":
        for name, value in (("hnsw_m", hnsw_m), ("ef_construction", ef_construction), ("ef_search", ef_search)):
            _positive_int(name, value)
        return {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search}
    for name, value in (("nlist", nlist), ("nprobe", nprobe), ("train_size", train_size)):
        _positive_int(name, value, allow_none=True)
    if index_type == "ivfpq":
        _positive_int("pq_nbits", pq_nbits)
        _positive_int("pq_m", pq_m, allow_none=True)
        if pq_m is None:
            # 8 dimensions per sub-quantizer (e.g. 48 bytes per 384-d vector): a common accuracy / size balance.
            pq_m = next(m for m in range(max(1, dimension // 8), 0, -1) if dimension % m == 0)
        if dimension % pq_m:
            raise InputError(f"dense index pq_m={pq_m} must divide the encoder dimension {dimension}")
    if passages is None:
        return {}
    if nlist is None:
        # ~4 sqrt(n) cells is faiss's rule of thumb; at least 39 training points per cell avoids degenerate k-means.
        nlist = max(1, min(int(4 * math.sqrt(passages)), passages // 39))
    if nlist > passages:
        raise InputError(f"dense index nlist={nlist} exceeds the {passages} passages; use a smaller nlist "
                         f"(or null for automatic) or index_type=flat")
    params: dict[str, Any] = {"nlist": nlist, "nprobe": min(nprobe or DEFAULT_NPROBE, nlist)}
    floor = 0
    if index_type == "ivfpq":
        if passages < 2 ** pq_nbits:
            raise InputError(f"index_type=ivfpq needs at least {2 ** pq_nbits} passages (2**pq_nbits) to train its "
                             f"codebooks, the corpus has {passages}; use index_type=flat or ivf")
        params.update(pq_m=pq_m, pq_nbits=pq_nbits)
        floor = 2 ** pq_nbits * 39
    # Enough points for k-means (faiss itself subsamples to 256 per cell) without loading a huge corpus into memory.
    params["train_size"] = min(passages, train_size or max(100_000, 64 * nlist, floor))
    return params


def _new_index(index_type: str, dimension: int, params: dict[str, Any]) -> Any:
    faiss = _faiss()
    ip = faiss.METRIC_INNER_PRODUCT
    if index_type == "flat":
        return faiss.IndexFlatIP(dimension)
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, params["hnsw_m"], ip)
        index.hnsw.efConstruction = params["ef_construction"]
        return index
    quantizer = faiss.IndexFlatIP(dimension)
    if index_type == "ivf":
        return faiss.IndexIVFFlat(quantizer, dimension, params["nlist"], ip)
    return faiss.IndexIVFPQ(quantizer, dimension, params["nlist"], params["pq_m"], params["pq_nbits"], ip)


def _training_sample(shards: Sequence[np.ndarray], size: int) -> np.ndarray:
    """`size` rows drawn uniformly without replacement across the memory-mapped shards (seeded)."""
    total = sum(len(shard) for shard in shards)
    rows = np.sort(np.random.default_rng(_SEED).choice(total, size=size, replace=False))
    parts, offset = [], 0
    for shard in shards:
        mine = rows[(rows >= offset) & (rows < offset + len(shard))] - offset
        if len(mine):
            parts.append(np.asarray(shard[mine], dtype=np.float32))
        offset += len(shard)
    return np.ascontiguousarray(np.concatenate(parts))


def build_dense_index(
    corpus_path: str | Path,
    index_dir: str | Path,
    encoder: Encoder,
    *,
    index_type: str = "flat",
    shard_size: int = 100_000,
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    ef_search: int = DEFAULT_EF_SEARCH,
    pq_m: int | None = None,
    pq_nbits: int = 8,
    train_size: int | None = None,
    use_gpu: bool | str = "auto",
) -> Path:
    """Build a dense index of a `.tsv` / `.jsonl` corpus into `index_dir` (see the module docstring for the layout).

    Encoding is resumable: re-running after an interruption encodes only the shards not yet written.

    Args:
        corpus_path: the passage corpus (streamed).
        index_dir: the index directory to (re)write; `meta.json` is written last.
        encoder: encodes the passages; its name, dimension and normalisation are recorded.
        index_type: "flat" (exact), "ivf", "hnsw" or "ivfpq".
        shard_size: passages per embedding shard (the most held in memory while encoding).
        nlist: IVF cells (ivf, ivfpq); None = about 4 sqrt(passages), at most passages / 39.
        nprobe: IVF cells searched per query by default (ivf, ivfpq); None = 32 (at most nlist). Can be overridden
            when opening the index.
        hnsw_m: HNSW links per node.
        ef_construction: HNSW candidate list size while building.
        ef_search: HNSW candidate list size while searching, by default (raised to k when k is larger).
        pq_m: ivfpq sub-quantizers (bytes per vector at 8 bits); must divide the dimension; None = dimension / 8.
        pq_nbits: ivfpq bits per sub-quantizer code.
        train_size: vectors sampled to train ivf / ivfpq; None = max(100,000, 64 nlist), at most the corpus.
        use_gpu: "auto" / True: train IVF k-means on the GPU(s) when faiss-gpu sees one (True requires one).

    Returns:
        `index_dir`, as a Path.

    Raises:
        InputError: a missing, malformed or empty corpus, an unknown index_type, or invalid parameters.
        ImportError: faiss is not installed.
    """
    if index_type not in INDEX_TYPES:
        raise InputError(f"dense index_type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")
    _check_use_gpu(use_gpu)
    ngpu = _gpu_count(use_gpu)  # before encoding: use_gpu=true without a GPU fails at once
    settings = {"nlist": nlist, "nprobe": nprobe, "hnsw_m": hnsw_m, "ef_construction": ef_construction,
                "ef_search": ef_search, "pq_m": pq_m, "pq_nbits": pq_nbits, "train_size": train_size}
    _resolve_params(index_type, None, encoder.dimension, **settings)
    faiss = _faiss()
    corpus_path = Path(corpus_path).resolve()
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    # A stale meta.json must not make a half-rewritten directory look complete.
    (index_dir / META_FILE).unlink(missing_ok=True)
    shard_files, fingerprint = _encode_corpus(corpus_path, index_dir, encoder, shard_size)
    shards = [np.load(path, mmap_mode="r") for path in shard_files]
    passages = sum(len(shard) for shard in shards)
    params = _resolve_params(index_type, passages, encoder.dimension, **settings)
    index = _new_index(index_type, encoder.dimension, params)
    if not index.is_trained:
        sample = _training_sample(shards, params["train_size"])
        if ngpu:
            _train_clustering_on_gpus(index, ngpu)
        log.info("training %s (nlist=%d) on %d vectors", index_type, params["nlist"], len(sample))
        index.train(sample)
        del sample
    for shard in shards:
        for start in range(0, len(shard), ADD_CHUNK):
            index.add(np.ascontiguousarray(shard[start:start + ADD_CHUNK], dtype=np.float32))
    tmp = index_dir / f".{INDEX_FILE}.tmp"
    faiss.write_index(index, str(tmp))
    os.replace(tmp, index_dir / INDEX_FILE)
    meta = {
        "kind": KIND,
        "corpus_path": str(corpus_path),
        "corpus_fingerprint": fingerprint,
        "passages": passages,
        "encoder": encoder.name,
        "dimension": encoder.dimension,
        "normalize": encoder.normalize,
        "metric": "inner_product",
        "index_type": index_type,
        "index_params": params,
        "shard_size": shard_size,
        "shards": len(shard_files),
        "faiss_version": faiss.__version__,
    }
    write_meta(index_dir, meta)
    return index_dir


class DenseRetriever:
    """Searches a dense faiss index; implements `selfrag.retrieval.base.Retriever`.

    `Passage.score` is the inner product of the query and passage vectors (approximate for ivfpq), best first.
    Open one with `from_dir`.
    """

    def __init__(
        self,
        index: Any,
        encoder: Encoder,
        store: Sequence[Passage],
        meta: dict[str, Any],
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        use_gpu: bool | str = "auto",
    ) -> None:
        """Wrap a loaded faiss index, the query encoder, and the passages its rows refer to.

        Args:
            index: a CPU faiss index (moved to the GPU(s) here when asked and available).
            encoder: the query encoder; must match `meta` (name, dimension, normalize).
            store: the passages, row i = vector i of the index.
            meta: the index's meta.json content.
            nprobe: IVF cells searched per query; None = the value recorded at build time.
            ef_search: HNSW candidate list size; None = the value recorded at build time.
            use_gpu: "auto" (GPU(s) when faiss-gpu sees one), True (require one) or False.

        Raises:
            InputError: an encoder that differs from the index's, an index/corpus size mismatch, or bad settings.
        """
        _check_encoder(encoder, meta, where="the dense index")
        _check_use_gpu(use_gpu)
        if index.ntotal != len(store) or index.d != encoder.dimension:
            raise InputError(f"the dense index has {index.ntotal} vectors of dimension {index.d} but its corpus has "
                             f"{len(store)} passages and the encoder dimension {encoder.dimension}; rebuild the index")
        params = dict(meta.get("index_params") or {})
        _positive_int("nprobe", nprobe, allow_none=True)
        _positive_int("ef_search", ef_search, allow_none=True)
        self.index_type = meta.get("index_type", "flat")
        self.nprobe = nprobe or params.get("nprobe")
        self.ef_search = ef_search or params.get("ef_search", DEFAULT_EF_SEARCH)
        self.encoder = encoder
        self.store = store if isinstance(store, PassageStore) else PassageStore(list(store))
        self.meta = meta
        faiss = _faiss()
        if self.nprobe is not None:
            faiss.ParameterSpace().set_index_parameter(index, "nprobe", self.nprobe)
        self.on_gpu = False
        ngpu = _gpu_count(use_gpu)
        if ngpu and self.index_type == "hnsw":
            log.info("faiss has no GPU HNSW: the hnsw index is searched on the CPU")
        elif ngpu:
            index = _index_to_gpus(index, ngpu, self.nprobe)
            self.on_gpu = True
        self.index = index

    @classmethod
    def from_dir(
        cls,
        index_dir: str | Path,
        encoder: Encoder,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        use_gpu: bool | str = "auto",
    ) -> DenseRetriever:
        """Open a dense index directory built by `build_dense_index`.

        Args:
            index_dir: the index directory.
            encoder: the query encoder: the same model, pooling and normalisation the index was built with.
            nprobe: IVF cells searched per query; None = the build-time value.
            ef_search: HNSW candidate list size; None = the build-time value.
            use_gpu: "auto" (search on the GPU(s) when faiss-gpu sees one, sharded across several), True or False.

        Raises:
            InputError: not a complete dense index, an encoder other than the index's, or a corpus missing / changed
                since indexing.
        """
        index_dir = Path(index_dir)
        meta = read_meta(index_dir, kind=KIND)
        # Checked before anything large is read: a mismatch is the common mistake and should fail at once.
        _check_encoder(encoder, meta, where=str(index_dir))
        store = PassageStore.for_index(meta, where=str(index_dir))
        index = _faiss().read_index(str(index_dir / INDEX_FILE))
        return cls(index, encoder, store, meta, nprobe=nprobe, ef_search=ef_search, use_gpu=use_gpu)

    def __len__(self) -> int:
        return len(self.store)

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """For each query, the `min(k, corpus size)` passages of highest inner product, best first, `score` set.

        Approximate indexes may return fewer (an IVF query whose probed cells hold fewer than k passages).

        Raises:
            InputError: k < 1.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be an integer >= 1, got {k!r}")
        if not queries:
            return []
        vectors = np.ascontiguousarray(self.encoder.encode_queries(list(queries)), dtype=np.float32)
        if vectors.shape != (len(queries), self.encoder.dimension):
            raise ValueError(f"encoder {self.encoder.name!r} returned shape {vectors.shape} for {len(queries)} "
                             f"queries; expected ({len(queries)}, {self.encoder.dimension})")
        k = min(k, len(self.store))
        scores, rows = self.index.search(vectors, k, params=self._search_params(k))
        return [[self.store.with_score(row, score) for row, score in zip(row_list, score_list) if row >= 0]
                for row_list, score_list in zip(rows.tolist(), scores.tolist())]

    def search(self, query: str, k: int) -> list[Passage]:
        """The `k` best passages for one query (see `batch_search`)."""
        return self.batch_search([query], k)[0]

    def _search_params(self, k: int) -> Any:
        # Per-call parameters rather than mutating the index, so concurrent searches with different k are safe.
        if self.index_type == "hnsw" and not self.on_gpu:
            # HNSW returns at most efSearch results; raise it to k so a large k still gets k passages.
            return _faiss().SearchParametersHNSW(efSearch=max(self.ef_search, k))
        return None


def _check_encoder(encoder: Encoder, meta: dict[str, Any], *, where: str) -> None:
    built = (meta.get("encoder"), meta.get("dimension"), meta.get("normalize"))
    given = (encoder.name, encoder.dimension, encoder.normalize)
    if built != given:
        raise InputError(
            f"{where}: the index was built with encoder {built[0]!r} (dimension {built[1]}, normalize={built[2]}) "
            f"but the query encoder is {given[0]!r} (dimension {given[1]}, normalize={given[2]}); pass the same "
            f"encoder as at build time (retriever.encoder.*) or rebuild the index with this one")


# --- GPU (faiss-gpu only) -------------------------------------------------------------------------------------------
# Not exercised by CPU test runs (faiss-cpu reports 0 GPUs); tests/unit/test_dense.py has a `gpu`-marked test.


def _gpu_count(use_gpu: bool | str) -> int:
    """GPUs faiss should use: all it sees for "auto" / True, 0 for False (True with none is an error)."""
    if use_gpu is False:
        return 0
    faiss = _faiss()
    count = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if use_gpu is True and count == 0:
        raise InputError("use_gpu=true but faiss sees no GPU (faiss-cpu, or no CUDA device); install faiss-gpu-cu12 "
                         "or set use_gpu=auto")
    return count


def _index_to_gpus(index: Any, ngpu: int, nprobe: int | None) -> Any:
    """The index copied to all `ngpu` GPUs: split across them (each searches its part) when there are several."""
    faiss = _faiss()
    options = faiss.GpuMultipleClonerOptions()
    options.shard = ngpu > 1
    gpu_index = faiss.index_cpu_to_all_gpus(index, co=options, ngpu=ngpu)
    if nprobe is not None:
        faiss.GpuParameterSpace().set_index_parameter(gpu_index, "nprobe", nprobe)
    log.info("dense index on %d GPU(s)%s", ngpu, " (sharded)" if ngpu > 1 else "")
    return gpu_index


def _train_clustering_on_gpus(index: Any, ngpu: int) -> None:
    """Run an IVF index's k-means (the costly part of training) on the GPU(s); the trained index stays on the CPU."""
    faiss = _faiss()
    index.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(index.d), ngpu=ngpu)

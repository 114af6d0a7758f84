"""Retrieval speed and quality benchmarks, one `--part` at a time.

Parts:

- `faiss`: approximate nearest-neighbour search on synthetic embeddings (`faiss_synthetic`). A seeded corpus of `n`
  clustered unit vectors (cluster centre + noise, renormalised: like text embeddings, neighbours are mostly in the
  same cluster, so recall is meaningful) and `queries` query vectors drawn the same way. The exact top-k by inner
  product is computed by numpy brute force (matrix products over corpus chunks + `argpartition`, timed), then for
  faiss Flat (exact), IVF-Flat, HNSW and IVF-PQ, all inner product, it reports build time, queries/s, speed against
  numpy brute force and against faiss Flat, recall@k against the exact top-k, and the peak resident memory the
  index added.

- `corpus`: BM25, dense and hybrid over a real corpus (default: the embedded 18,415 Wikipedia passages) and a
  question file (default: PopQA long-tail dev): index build time, queries/s (all questions, batched) and peak memory
  (`corpus_retrievers`). The dense row reuses the embedding shards of an existing index (`--dense-index DIR`): it
  times the faiss build and measures encoder throughput on a sample, from which the full encoding is estimated.

Peak memory is the process's peak RSS during the part's build and search minus its RSS before (Linux: the peak is
reset per phase through /proc/self/clear_refs; elsewhere `ru_maxrss`, a process-wide high-water mark whose deltas
read 0 once an earlier phase went higher). Numpy and faiss use the threads they find (OPENBLAS / OMP settings as
the environment sets them).

    python benchmarks/retrieval_bench.py --part faiss --n 200000
    python benchmarks/retrieval_bench.py --part faiss --n 1000000 --json benchmarks/results/faiss_1m_cpu.json
    python benchmarks/retrieval_bench.py --part corpus --dense-index outputs/indexes/hybrid/dense
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rss import PeakMemory, reset_peak  # benchmarks/rss.py (this folder is on sys.path)

from selfrag.artifacts import display_path

ROOT = Path(__file__).resolve().parents[1]
#: Corpus rows per brute-force matrix product: bounds the score block to queries x chunk floats (~260 MB at 1000).
BRUTE_FORCE_CHUNK = 65_536
#: The target the faiss part checks: an approximate index this much faster than numpy brute force ...
TARGET_SPEEDUP = 10.0
#: ... at this recall@k or better.
TARGET_RECALL = 0.95


# --- data -------------------------------------------------------------------------------------------------------


def clustered_unit_vectors(
    n: int, centres: np.ndarray, noise: float, rng: np.random.Generator, chunk: int = 100_000
) -> np.ndarray:
    """`n` unit vectors, each a random centre plus Gaussian noise of norm ~`noise`, renormalised (float32)."""
    dim = centres.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        block = rng.standard_normal((rows, dim), dtype=np.float32)
        block *= noise / math.sqrt(dim)
        block += centres[rng.integers(0, len(centres), size=rows)]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + rows] = block
    return out


def brute_force_top_k(corpus: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k rows by inner product (numpy only): (scores, rows), best first, shape (len(queries), k)."""
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    best_rows = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, len(corpus), BRUTE_FORCE_CHUNK):
        scores = queries @ corpus[start:start + BRUTE_FORCE_CHUNK].T
        # The chunk's top k (kth = size - k selects the largest k without a negated copy of the score block) ...
        top = _largest(scores, k)
        # ... merged with the best so far.
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        best_rows = np.concatenate([best_rows, top + start], axis=1)
        keep = _largest(best_scores, k)
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
        best_rows = np.take_along_axis(best_rows, keep, axis=1)
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_scores, order, axis=1), np.take_along_axis(best_rows, order, axis=1)


def _largest(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the (unordered) largest min(k, width) values of each row."""
    width = scores.shape[1]
    if width <= k:
        return np.broadcast_to(np.arange(width), scores.shape)
    return np.argpartition(scores, width - k, axis=1)[:, width - k:]


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found top-k ∩ exact top-k| / k."""
    k = exact.shape[1]
    return float(np.mean([len(set(f[:k].tolist()) & set(e.tolist())) / k for f, e in zip(found, exact)]))


# --- the faiss part ---------------------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _search_time(search: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of `repeats` runs of `search` (after one untimed warm-up when repeating), and its result."""
    if repeats > 1:
        search()
    runs = [_timed(search) for _ in range(repeats)]
    return statistics.median(seconds for seconds, _ in runs), runs[-1][1]


def faiss_synthetic(
    n: int = 1_000_000,
    dim: int = 384,
    queries: int = 1000,
    k: int = 10,
    *,
    seed: int = 0,
    points_per_cluster: int = 500,
    noise: float = 1.0,
    nlist: int | None = None,
    nprobes: tuple[int, ...] = (16, 32),
    hnsw_m: int = 32,
    ef_construction: int = 40,
    ef_searches: tuple[int, ...] = (64, 128),
    pq_m: int | None = None,
    train_size: int | None = None,
    repeats: int = 3,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Benchmark faiss indexes against numpy brute force on synthetic clustered embeddings (see the module doc).

    Args:
        n: corpus vectors.
        dim: vector dimension.
        queries: query vectors (searched in one batch per measurement).
        k: neighbours per query; recall is recall@k.
        seed: the data's random seed.
        points_per_cluster: corpus vectors per cluster centre, on average.
        noise: norm of the Gaussian noise added to a centre (1.0: a point's cosine to its centre is ~0.7).
        nlist: IVF cells; None = 4 sqrt(n).
        nprobes: IVF cells searched per query, one measurement each (IVF-PQ uses the largest).
        hnsw_m: HNSW links per node.
        ef_construction: HNSW build candidate list size (faiss's default 40 keeps a 1M build within minutes on a
            small machine).
        ef_searches: HNSW search candidate list sizes, one measurement each.
        pq_m: IVF-PQ bytes per vector; None = dim / 8.
        train_size: vectors the IVF k-means is trained on; None = 40 nlist (faiss asks for at least 39 per cell).
        repeats: timed repeats of each approximate search (median); exact searches run once.
        threads: faiss OpenMP threads; None = faiss's default (all cores). On a machine shared with other work,
            1 can be much faster: OpenMP threads spin-wait for each other while other processes hold the cores.
        log: progress lines go here.

    Returns:
        A JSON-ready dict: settings, machine, the numpy baseline, and one row per index configuration.
    """
    import faiss

    if threads is not None:
        faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(seed)
    nlist = nlist or max(1, int(4 * math.sqrt(n)))
    pq_m = pq_m or max(1, dim // 8)
    train_size = min(n, train_size or 40 * nlist)
    clusters = max(1, n // points_per_cluster)
    log(f"data: {n:,} x {dim} corpus, {queries:,} queries, {clusters:,} clusters (seed {seed})")
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    corpus = clustered_unit_vectors(n, centres, noise, rng)
    query_vectors = clustered_unit_vectors(queries, centres, noise, rng)
    del centres

    log("numpy brute force ...")
    with PeakMemory() as memory:
        numpy_s, (_, exact) = _timed(lambda: brute_force_top_k(corpus, query_vectors, k))
    baseline = {"method": "numpy brute force", "params": "", "build_s": 0.0, "search_s": numpy_s,
                "qps": queries / numpy_s, "speedup_vs_numpy": 1.0, "recall": 1.0, "peak_mb": memory.mb()}
    rows: list[dict[str, Any]] = [baseline]

    def measure(method: str, params: str, index: Any, build_s: float, repeat: int, memory: PeakMemory) -> None:
        search_s, (_, found) = _search_time(lambda: index.search(query_vectors, k), repeat)
        row = {"method": method, "params": params, "build_s": build_s, "search_s": search_s,
               "qps": queries / search_s, "speedup_vs_numpy": numpy_s / search_s,
               "recall": recall_at_k(found, exact), "peak_mb": memory.mb()}
        log(f"  {method:<10} {params:<32} build {build_s:7.1f} s  {row['qps']:10.1f} q/s  "
            f"x{row['speedup_vs_numpy']:7.1f}  recall@{k} {row['recall']:.4f}")
        rows.append(row)

    def add_all(index: Any) -> float:
        start = time.perf_counter()
        for first in range(0, n, BRUTE_FORCE_CHUNK):
            index.add(corpus[first:first + BRUTE_FORCE_CHUNK])
        return time.perf_counter() - start

    # Each index is freed before the next is built, so a row's peak memory is its own index's (build + searches).
    # Flat: exact, the strongest exact baseline (BLAS products + multi-threaded top-k selection).
    log("faiss Flat ...")
    with PeakMemory() as memory:
        flat = faiss.IndexFlatIP(dim)
        measure("Flat", "exact", flat, add_all(flat), 1, memory)
    del flat

    # IVF-Flat: one k-means, then one measurement per nprobe. The trained coarse quantizer is reused by IVF-PQ
    # (faiss skips training an already trained quantizer); its k-means time is counted in both build times.
    sample = corpus[np.sort(rng.choice(n, size=train_size, replace=False))]
    log(f"faiss IVF (nlist {nlist}, k-means on {train_size:,}) ...")
    with PeakMemory() as memory:
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        start = time.perf_counter()
        ivf.train(sample)
        train_s = time.perf_counter() - start
        build_s = train_s + add_all(ivf)
        for nprobe in nprobes:
            ivf.nprobe = nprobe
            measure("IVF-Flat", f"nlist={nlist} nprobe={nprobe}", ivf, build_s, repeats, memory)
    coarse = faiss.clone_index(quantizer)
    del ivf, quantizer

    log(f"faiss HNSW (M {hnsw_m}, efConstruction {ef_construction}) ...")
    with PeakMemory() as memory:
        hnsw = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = ef_construction
        build_s = add_all(hnsw)
        for ef in ef_searches:
            hnsw.hnsw.efSearch = ef
            measure("HNSW", f"M={hnsw_m} efSearch={ef}", hnsw, build_s, repeats, memory)
    del hnsw

    nprobe = max(nprobes)
    log(f"faiss IVF-PQ (nlist {nlist}, {pq_m} bytes/vector) ...")
    with PeakMemory() as memory:
        ivfpq = faiss.IndexIVFPQ(coarse, dim, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
        start = time.perf_counter()
        ivfpq.train(sample)
        build_s = train_s + time.perf_counter() - start + add_all(ivfpq)
        ivfpq.nprobe = nprobe
        measure("IVF-PQ", f"nlist={nlist} m={pq_m} nprobe={nprobe}", ivfpq, build_s, repeats, memory)
    del ivfpq, coarse, sample

    for row in rows:
        row["speedup_vs_faiss_flat"] = rows[1]["search_s"] / row["search_s"]  # rows[1]: faiss Flat
    meeting = [r for r in rows[2:] if r["recall"] >= TARGET_RECALL and r["speedup_vs_numpy"] >= TARGET_SPEEDUP]
    best = max(meeting, key=lambda r: r["speedup_vs_numpy"], default=None)
    return {
        "part": "faiss",
        "settings": {"n": n, "dim": dim, "queries": queries, "k": k, "seed": seed, "clusters": clusters,
                     "noise": noise, "nlist": nlist, "train_size": train_size, "hnsw_m": hnsw_m,
                     "ef_construction": ef_construction, "pq_m": pq_m, "repeats": repeats, "threads": threads},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "numpy": np.__version__, "faiss": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads(),
                    "memory_peak_exact": reset_peak()},
        "rows": rows,
        "target": {"speedup_vs_numpy": TARGET_SPEEDUP, "recall": TARGET_RECALL, "met": best is not None,
                   "best": best and f"{best['method']} {best['params']}"},
    }


def format_table(result: dict[str, Any]) -> str:
    """The faiss part's rows as a fixed-width table, with the target line."""
    k = result["settings"]["k"]
    header = (f"{'method':<18} {'params':<32} {'build s':>8} {'queries/s':>11} {'vs numpy':>9} {'vs Flat':>8} "
              f"{f'recall@{k}':>10} {'peak MB':>8}")
    lines = [header, "-" * len(header)]
    for r in result["rows"]:
        lines.append(f"{r['method']:<18} {r['params']:<32} {r['build_s']:8.1f} {r['qps']:11.1f} "
                     f"{r['speedup_vs_numpy']:8.1f}x {r['speedup_vs_faiss_flat']:7.1f}x {r['recall']:10.4f} "
                     f"{r['peak_mb']:8.0f}")
    target = result["target"]
    verdict = f"met by {target['best']}" if target["met"] else "NOT met"
    lines.append(f"target (>= {target['speedup_vs_numpy']:.0f}x numpy brute force at recall@{k} >= "
                 f"{target['recall']}): {verdict}")
    return "\n".join(lines)


def _run_faiss(args: argparse.Namespace) -> dict[str, Any]:
    result = faiss_synthetic(n=args.n, dim=args.dim, queries=args.queries, k=args.k, seed=args.seed,
                             repeats=args.repeats, threads=args.threads)
    s = result["settings"]
    print(f"\nfaiss vs numpy brute force: {s['n']:,} x {s['dim']} clustered unit vectors, {s['queries']:,} queries, "
          f"k={s['k']}; {result['machine']['cpus']} CPUs, faiss {result['machine']['faiss']} "
          f"({result['machine']['faiss_threads']} threads)")
    print(format_table(result))
    return result


def corpus_retrievers(
    corpus: Path, questions_file: Path, dense_index: Path | None, *, k: int = 20, encode_sample: int = 512,
    batch_size: int = 256,
) -> dict[str, Any]:
    """BM25, dense and hybrid on a real corpus: build time, queries/s (all questions, batched) and peak memory.

    The dense build is measured as faiss construction from the embedding shards of an existing dense index
    (`dense_index`, e.g. built by scripts/build_index.py), because encoding the whole corpus on a 2-core CPU takes
    10+ minutes; the encoder's throughput is measured on `encode_sample` passages and the full encoding time
    estimated from it (reported as such).
    """
    import shutil
    import tempfile

    from selfrag.io import read_jsonl
    from selfrag.retrieval.bm25 import BM25Retriever, build_bm25_index
    from selfrag.retrieval.corpus import load_corpus
    from selfrag.retrieval.hybrid import HybridRetriever

    questions = [row["question"] for row in read_jsonl(questions_file)]
    passages = load_corpus(corpus)
    rows: list[dict[str, Any]] = []

    def qps(retriever: Any) -> float:
        seconds, _ = _timed(lambda: [retriever.batch_search(questions[i : i + batch_size], k)
                                     for i in range(0, len(questions), batch_size)])
        return len(questions) / seconds

    work = Path(tempfile.mkdtemp(prefix="retrieval-bench-"))
    try:
        with PeakMemory() as memory:
            build_s, _ = _timed(lambda: build_bm25_index(corpus, work / "bm25"))
            bm25 = BM25Retriever.from_dir(work / "bm25")
            bm25.batch_search(questions[:8], k)
            bm25_qps = qps(bm25)
        rows.append({"retriever": "bm25", "build_s": round(build_s, 2), "queries_per_s": round(bm25_qps, 1),
                     "peak_mb": round(memory.mb(), 1)})
        if dense_index is not None:
            from selfrag.retrieval.dense import DenseRetriever, build_dense_index
            from selfrag.retrieval.encoders import make_encoder
            from selfrag.retrieval.store import read_meta

            meta = read_meta(dense_index, kind="dense")
            encoder = make_encoder("sentence_transformers", None, show_progress=False)
            sample = passages[:encode_sample]
            encoder.encode_passages(sample[:32])  # warm-up
            encode_s, _ = _timed(lambda: encoder.encode_passages(sample))
            rate = len(sample) / encode_s
            shutil.copytree(Path(dense_index) / "embeddings", work / "dense" / "embeddings")
            with PeakMemory() as memory:
                faiss_s, _ = _timed(lambda: build_dense_index(corpus, work / "dense", encoder,
                                                               index_type=meta.get("index_type", "flat")))
                dense = DenseRetriever.from_dir(work / "dense", encoder)
                dense.batch_search(questions[:8], k)
                dense_qps = qps(dense)
            rows.append({"retriever": f"dense ({meta.get('index_type', 'flat')}, MiniLM)",
                         "build_s": round(faiss_s, 2), "encode_passages_per_s": round(rate, 1),
                         "encode_corpus_s_estimated": round(len(passages) / rate, 1),
                         "queries_per_s": round(dense_qps, 1), "peak_mb": round(memory.mb(), 1)})
            hybrid = HybridRetriever([dense, bm25], fusion="rrf", rrf_k=60, candidates=k)
            rows.append({"retriever": "hybrid (RRF k=60)", "build_s": None, "queries_per_s": round(qps(hybrid), 1),
                         "peak_mb": None})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"part": "corpus", "corpus": display_path(corpus), "passages": len(passages), "questions": len(questions),
            "k": k, "rows": rows}


def _run_corpus(args: argparse.Namespace) -> dict[str, Any]:
    result = corpus_retrievers(Path(args.corpus), Path(args.questions_file),
                               Path(args.dense_index) if args.dense_index else None, k=args.corpus_k)
    print(f"\nretrievers on {result['corpus']} ({result['passages']:,} passages), {result['questions']} questions, "
          f"k={result['k']}")
    print(f"{'retriever':32} {'build s':>8} {'queries/s':>10} {'peak MB':>8}  notes")
    for row in result["rows"]:
        notes = ""
        if "encode_passages_per_s" in row:
            notes = (f"encoding {row['encode_passages_per_s']} passages/s, "
                     f"whole corpus ~{row['encode_corpus_s_estimated']}s")
        build = "-" if row["build_s"] is None else f"{row['build_s']:.2f}"
        peak = "-" if row["peak_mb"] is None else f"{row['peak_mb']:.0f}"
        print(f"{row['retriever']:32} {build:>8} {row['queries_per_s']:>10.1f} {peak:>8}  {notes}")
    return result


#: --part name -> runner(args) returning a JSON-ready dict. Other parts register here.
PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {"faiss": _run_faiss, "corpus": _run_corpus}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=sorted(PARTS), default="faiss", help="which benchmark to run")
    parser.add_argument("--n", type=int, default=1_000_000, help="faiss: corpus vectors")
    parser.add_argument("--dim", type=int, default=384, help="faiss: vector dimension")
    parser.add_argument("--queries", type=int, default=1000, help="faiss: query vectors")
    parser.add_argument("--k", type=int, default=10, help="faiss: neighbours per query (recall@k)")
    parser.add_argument("--seed", type=int, default=0, help="faiss: random seed of the synthetic data")
    parser.add_argument("--repeats", type=int, default=3, help="faiss: timed repeats of approximate searches")
    parser.add_argument("--threads", type=int, help="faiss: OpenMP threads (default: all cores)")
    parser.add_argument("--corpus", default=str(ROOT / "data/corpus/wiki_passages.tsv"), help="corpus: passages")
    parser.add_argument("--questions-file", default=str(ROOT.parent / "shared/data/popqa/popqa_longtail_dev.jsonl"),
                        help="corpus: questions (jsonl with `question`)")
    parser.add_argument("--dense-index", help="corpus: an existing dense index dir whose embedding shards to reuse")
    parser.add_argument("--corpus-k", type=int, default=20, help="corpus: passages per query")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    result = PARTS[args.part](args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

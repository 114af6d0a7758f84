"""A persistent per-query retrieval cache (sqlite3), and a retriever wrapper that only searches cache misses.

This module owns the cache file: one sqlite database (WAL mode, so several processes can read while one writes)
with one row per (index fingerprint, query, k) whose value is the JSON list of the passages returned, scores
included. The fingerprint identifies the index the results came from (`index_fingerprint`: a hash of its
meta.json, which names the corpus fingerprint and the build settings), so a rebuilt or different index never
reads another's results, and the file is safe to keep and reuse across runs.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from selfrag.retrieval.base import Retriever
from selfrag.retrieval.store import read_meta
from selfrag.types import Passage

# Keys per SELECT ... IN (...): well under sqlite's smallest host-parameter limit (999).
_CHUNK = 400


def index_fingerprint(index_dir: str | Path, settings: Mapping[str, Any] | None = None) -> str:
    """A stable id for the results an index gives: sha256 of its meta.json (sorted keys), first 16 hex digits.

    Sub-indexes named in the meta's `parts` (a hybrid index's `dense/`, `bm25/`) are folded in, so rebuilding a part
    changes the fingerprint.

    Args:
        index_dir: a complete index directory.
        settings: search-time settings that change results without changing the index (e.g. `rrf_k`, `nprobe`,
            the query encoder); folded in when given.

    Raises:
        InputError: not an index directory (or a part is missing).
    """
    index_dir = Path(index_dir)
    meta = read_meta(index_dir)
    identity: dict[str, Any] = {"meta": meta}
    parts = meta.get("parts") or []
    if parts:
        identity["parts"] = {name: read_meta(index_dir / name) for name in parts}
    if settings:
        identity["settings"] = dict(settings)
    payload = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _encode(passages: Sequence[Passage]) -> str:
    # float(): a retriever may hand back numpy scalars, which json cannot write; Python floats round-trip exactly.
    rows = [{"id": p.id, "title": p.title, "text": p.text, "score": None if p.score is None else float(p.score)}
            for p in passages]
    return json.dumps(rows, ensure_ascii=False)


def _decode(value: str) -> list[Passage]:
    return [Passage(id=d["id"], title=d["title"], text=d["text"], score=d["score"]) for d in json.loads(value)]


class RetrievalCache:
    """Results per (index fingerprint, query, k) in a sqlite file.

    One connection per instance, usable from several threads (calls are serialised by a lock). Several processes
    may share the file: WAL mode lets readers run beside a writer, and a busy writer is waited for (30 s).
    """

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) the cache file at `path`."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode (a power loss may drop the last commits, which
        # a cache can afford).
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS results (fingerprint TEXT NOT NULL, query TEXT NOT NULL, k INTEGER NOT NULL,"
            " value TEXT NOT NULL, PRIMARY KEY (fingerprint, query, k)) WITHOUT ROWID"
        )

    def get_many(self, fingerprint: str, queries: Sequence[str], k: int) -> list[list[Passage] | None]:
        """Cached results for each query (None where absent), in the order of `queries`."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(queries))
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                rows = self._conn.execute(
                    f"SELECT query, value FROM results WHERE fingerprint = ? AND k = ? "
                    f"AND query IN ({','.join('?' * len(chunk))})",
                    [fingerprint, k, *chunk],
                )
                found.update(rows.fetchall())
        return [_decode(found[q]) if q in found else None for q in queries]

    def put_many(self, fingerprint: str, k: int, results: Iterable[tuple[str, Sequence[Passage]]]) -> None:
        """Store (query, passages) pairs under `fingerprint` and `k`, replacing earlier values, in one transaction."""
        rows = [(fingerprint, query, k, _encode(passages)) for query, passages in results]
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        """Close the connection (the file stays)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RetrievalCache:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class CachedRetriever:
    """A retriever that answers from a `RetrievalCache` and searches only the misses; implements `Retriever`.

    Attributes:
        hits: queries answered from the cache (including repeats, within one batch, of a query being searched).
        misses: distinct queries sent to the wrapped retriever.
    """

    def __init__(self, retriever: Retriever, cache: RetrievalCache, fingerprint: str) -> None:
        """Wrap `retriever`, whose results are identified in `cache` by `fingerprint` (see `index_fingerprint`)."""
        self.retriever = retriever
        self.cache = cache
        self.fingerprint = fingerprint
        self.hits = 0
        self.misses = 0

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """As the wrapped retriever's `batch_search`; cache misses are searched in one batch, in input order."""
        if not queries:
            return []
        cached = self.cache.get_many(self.fingerprint, queries, k)
        missing = list(dict.fromkeys(q for q, hit in zip(queries, cached) if hit is None))
        fresh: dict[str, list[Passage]] = {}
        if missing:
            results = self.retriever.batch_search(missing, k)
            if len(results) != len(missing):
                raise ValueError(f"the wrapped retriever returned {len(results)} result lists for "
                                 f"{len(missing)} queries")
            fresh = dict(zip(missing, results))
            self.cache.put_many(self.fingerprint, k, fresh.items())
        self.misses += len(missing)
        self.hits += len(queries) - len(missing)
        return [hit if hit is not None else fresh[q] for q, hit in zip(queries, cached)]

    def search(self, query: str, k: int) -> list[Passage]:
        """The `k` best passages for one query (see `batch_search`)."""
        return self.batch_search([query], k)[0]

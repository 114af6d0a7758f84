"""Index directories: `meta.json` (what an index was built from) and the passages its rows point to.

Every index directory (dense, BM25, hybrid) holds a `meta.json` with at least `kind`, `corpus_path`,
`corpus_fingerprint` and `passages`. Indexes do not copy the corpus: row i of an index is passage i of the corpus
file, which is re-read (and its fingerprint checked) when the index is loaded, so a corpus edited after indexing is
refused instead of silently returning wrong passages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfrag.io import InputError, write_text_atomic
from selfrag.retrieval.corpus import corpus_fingerprint, load_corpus
from selfrag.types import Passage

META_FILE = "meta.json"


def write_meta(index_dir: str | Path, meta: dict[str, Any]) -> None:
    """Write `index_dir/meta.json` atomically (last, so a directory with meta.json is a complete index)."""
    for key in ("kind", "corpus_path", "corpus_fingerprint", "passages"):
        if key not in meta:
            raise ValueError(f"index meta.json needs `{key}`")
    write_text_atomic(Path(index_dir) / META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_meta(index_dir: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Read `index_dir/meta.json`.

    Raises:
        InputError: no complete index there, or an index of another kind than `kind`.
    """
    path = Path(index_dir) / META_FILE
    if not path.is_file():
        raise InputError(f"{index_dir}: not an index directory (no {META_FILE}); build one with scripts/build_index.py")
    meta = json.loads(path.read_text())
    if kind is not None and meta.get("kind") != kind:
        raise InputError(f"{index_dir}: a {meta.get('kind')!r} index, but retriever={kind} was asked for")
    return meta


class PassageStore(Sequence[Passage]):
    """The passages an index's rows refer to, in corpus order."""

    def __init__(self, passages: list[Passage]) -> None:
        self._passages = passages

    @classmethod
    def for_index(cls, meta: dict[str, Any], *, where: str) -> PassageStore:
        """Load the corpus named in `meta`, refusing one whose content changed since indexing."""
        path = Path(meta["corpus_path"])
        if not path.is_file():
            raise InputError(f"{where}: the indexed corpus {path} is missing; rebuild the index or restore the file")
        if corpus_fingerprint(path) != meta["corpus_fingerprint"]:
            raise InputError(f"{where}: {path} changed since the index was built (fingerprint differs); "
                             f"rebuild the index")
        passages = load_corpus(path)
        if len(passages) != meta["passages"]:
            raise InputError(f"{where}: index has {meta['passages']} rows but {path} has {len(passages)} passages")
        return cls(passages)

    def __getitem__(self, row: int) -> Passage:  # type: ignore[override]
        return self._passages[row]

    def __len__(self) -> int:
        return len(self._passages)

    def with_score(self, row: int, score: float) -> Passage:
        """Passage `row` carrying a retrieval score."""
        p = self._passages[row]
        return Passage(id=p.id, title=p.title, text=p.text, score=float(score))

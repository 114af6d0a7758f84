"""One row per (question, passage): a retrieved file split so that a reader answers from each passage alone.

A split row keeps its question's fields, with one passage in `ctxs` and the id `{question id}#p{rank}` (`ID_FORMAT`,
rank 1-based in retrieval order); `question_and_rank` reads such an id back. `method=standard_rag
decoding.ndocs=1` over split rows gives the answers `decoding.reader=base` would write from each passage. Used by
`benchmarks/reading_ceiling.py` (how far per-passage reading could go) and `scripts/judgement_rows.py` (IsSup
judgements of a reader's answers, for training).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: How one split row's id is made from its question's id and the passage's rank (1-based).
ID_FORMAT = "{qid}#p{rank}"


def split_rows(rows: Iterable[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """One row per (question, passage) for the first `k` passages of each row's `ctxs`, the row's id suffixed by
    the passage's rank (`ID_FORMAT`); the input rows are not modified."""
    out = []
    for row in rows:
        for rank, passage in enumerate(row["ctxs"][:k], start=1):
            out.append({**row, "id": ID_FORMAT.format(qid=row["id"], rank=rank), "ctxs": [passage]})
    return out


def question_and_rank(row_id: str) -> tuple[str, int]:
    """The (question id, passage rank) an `ID_FORMAT` id was made from."""
    qid, rank = str(row_id).rsplit("#p", 1)
    return qid, int(rank)

"""Fixed question-level splits of an evaluation file into `train` / `dev` / `test`.

The embedded model is trained in-domain: part of the PopQA long-tail and ARC-Challenge files is training data. So the
results must come from questions no training, tuning or threshold choice has touched. A split is made once, by
`assign_splits`, and its id lists are committed (`data/splits/<name>/ids.json`, beside the split files); everything
else reads those lists.

The rule is a function of the questions only: rows are grouped by question text (lower case, whitespace collapsed:
the two rows of a duplicated question always land together), groups are ranked by the sha256 of `"{salt}:{question}"`,
and the test split takes groups in that order until it holds `test` rows, then dev takes the next `dev` rows, and the
rest is train. Re-ordering the file does not change the split; adding rows moves at most the new ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from selfrag.io import InputError

SPLITS = ("train", "dev", "test")


def question_key(question: str) -> str:
    """The grouping key of a question: lower case, whitespace collapsed."""
    return " ".join(question.lower().split())


def assign_splits(rows: Sequence[Mapping[str, Any]], *, test: int, dev: int, salt: str) -> dict[str, list[str]]:
    """Split rows (each with `id` and `question`) into {train, dev, test} id lists, in file order (module docstring).

    Raises:
        InputError: a row without `id`/`question`, a repeated id, or sizes that leave no training rows.
    """
    if test < 0 or dev < 0 or test + dev >= len(rows):
        raise InputError(f"split sizes test={test} dev={dev} must be >= 0 and leave training rows of {len(rows)}")
    groups: dict[str, list[int]] = {}
    seen: set[str] = set()
    for index, row in enumerate(rows):
        if row.get("id") is None or not isinstance(row.get("question"), str):
            raise InputError(f"row {index + 1}: a split needs `id` and `question` on every row")
        row_id = str(row["id"])
        if row_id in seen:
            raise InputError(f"row {index + 1}: id {row_id!r} occurs twice; split ids must be unique")
        seen.add(row_id)
        groups.setdefault(question_key(row["question"]), []).append(index)
    ranked = sorted(groups, key=lambda q: hashlib.sha256(f"{salt}:{q}".encode()).hexdigest())
    where: dict[int, str] = {}
    counts = {"test": 0, "dev": 0}
    for question in ranked:
        members = groups[question]
        split = next((s for s, size in (("test", test), ("dev", dev)) if counts[s] < size), "train")
        if split != "train":
            counts[split] += len(members)
        for index in members:
            where[index] = split
    return {split: [str(rows[i]["id"]) for i in range(len(rows)) if where[i] == split] for split in SPLITS}


def read_split_ids(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """A committed split file: `{"train": [...], "dev": [...], "test": [...], ...}` (other keys: provenance)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such split file; make one with scripts/make_splits.py")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a JSON split file ({err})") from None
    missing = [s for s in SPLITS if not isinstance(data.get(s), list)]
    if missing:
        raise InputError(f"{path}: a split file needs id lists {', '.join(SPLITS)}; missing {', '.join(missing)}")
    return {s: [str(i) for i in data[s]] for s in SPLITS}

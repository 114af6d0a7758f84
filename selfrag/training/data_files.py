"""The exact jsonl files a training run trains and evaluates on: a deterministic dev split and the stripped baseline.

A run either trains on the user's files as they are, or (when it splits off a dev set or strips the reflection
tokens) on files it derives from them and writes to its own `data/` directory. Training always reads files, so an
artifact card can give the sha256 of exactly what was trained on.

The dev split is a function of the rows' contents only: rows are grouped by question (`instruction` + `input`), the
groups are ranked by a hash of the question, and the lowest-ranked groups form the dev set. The same file always gives
the same split, whatever its order, and a question is never in both sets.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfrag.io import InputError, iter_jsonl, write_jsonl_atomic
from selfrag.training.sft_data import SUPERVISE_KEY, strip_reflection_example

TRAIN_FILE = "train.jsonl"
DEV_FILE = "dev.jsonl"


@dataclass(frozen=True)
class TrainingFiles:
    """Where a run's training and dev rows are.

    Attributes:
        train: the files to train on (the sources themselves, or one derived file).
        dev: the files to evaluate on (empty: no dev set).
        sources: the files the user gave (train, then dev), for the card.
        derived: True when `train`/`dev` were written from the sources (split and/or stripped).
        notes: how the derived files were made, one line each, for the card.
    """

    train: list[Path]
    dev: list[Path]
    sources: list[Path]
    derived: bool = False
    notes: list[str] = field(default_factory=list)


def _as_paths(value: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None, key: str) -> list[Path]:
    if value is None or value == "":
        return []
    paths = [Path(value)] if isinstance(value, (str, os.PathLike)) else [Path(v) for v in value]
    for path in paths:
        if not path.is_file():
            raise InputError(f"{key}={path}: no such file; point {key} at a released-format jsonl "
                             "({instruction, input, output, ...} per line), e.g. the output of scripts/annotate.py")
    return paths


def _read(paths: Sequence[Path]) -> list[dict[str, Any]]:
    return [row for path in paths for _, row in iter_jsonl(path)]


def _question_key(row: dict[str, Any]) -> str:
    return f"{row.get('instruction', '')}\n\n{row.get('input') or ''}"


def split_dev(rows: Sequence[dict[str, Any]], fraction: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split rows into (train, dev), dev holding about `fraction` of them; deterministic, rows kept in file order.

    Rows with the same question (`instruction` + `input`) go to the same side. The dev set takes whole question
    groups in the order of their sha256 until it holds `round(fraction * len(rows))` rows (at least one when
    `fraction > 0`), and never all rows: with fewer than two questions there is no dev set.
    """
    if not 0 <= fraction < 1:
        raise InputError(f"data.dev_fraction={fraction}: must be in [0, 1) (0 disables the dev split)")
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(_question_key(row), []).append(index)
    if fraction == 0 or len(groups) < 2:
        return list(rows), []
    want = max(1, round(fraction * len(rows)))
    ranked = sorted(groups, key=lambda key: hashlib.sha256(key.encode("utf-8")).hexdigest())
    dev: set[int] = set()
    for key in ranked[:-1]:  # the last group always stays in train
        if len(dev) >= want:
            break
        dev.update(groups[key])
    return [r for i, r in enumerate(rows) if i not in dev], [r for i, r in enumerate(rows) if i in dev]


def prepare_training_files(
    train: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    dev: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    *,
    dev_fraction: float,
    strip_reflection: bool,
    out_dir: str | os.PathLike[str],
    write: bool = True,
) -> TrainingFiles:
    """Decide, and (with `write`) write, the files a run trains and evaluates on.

    - `dev` given: it is the dev set; `dev_fraction` is not used.
    - `dev` empty and `dev_fraction > 0`: a dev set is split off the training rows (`split_dev`), and both parts are
      written to `out_dir/train.jsonl` and `out_dir/dev.jsonl`.
    - `strip_reflection`: every row (train and dev) is written with `strip_reflection_example` applied, i.e. with
      no reflection tokens and no passages: the "same data, no reflection tokens" baseline; rows with a
      `supervise` key (judgement-only rows, `selfrag.training.sft_data.SUPERVISE_KEY`) are left out, since nothing
      of them remains without the tokens.
    - otherwise the given files are used as they are and nothing is written.

    Files are written via a temporary file and rename, byte-identical on every call with the same inputs; a split
    that leaves no dev rows (a single question) writes no dev file. With `write=False` nothing is written and the
    paths the main process wrote are returned: for the other processes of a distributed run, after it has written.

    Raises:
        InputError: a file is missing or malformed, or `dev_fraction` is outside [0, 1).
    """
    train_paths = _as_paths(train, "data.train")
    dev_paths = _as_paths(dev, "data.dev")
    if not train_paths:
        raise InputError("data.train is empty; set data.train=FILE (released-format jsonl)")
    if not 0 <= dev_fraction < 1:
        raise InputError(f"data.dev_fraction={dev_fraction}: must be in [0, 1) (0 disables the dev split)")
    sources = train_paths + dev_paths
    split = not dev_paths and dev_fraction > 0
    if not (split or strip_reflection):
        return TrainingFiles(train=train_paths, dev=dev_paths, sources=sources)

    out_dir = Path(out_dir)
    train_out, dev_out = out_dir / TRAIN_FILE, out_dir / DEV_FILE
    notes = []
    if not write:
        return TrainingFiles(train=[train_out], dev=[dev_out] if dev_out.is_file() else [], sources=sources,
                             derived=True)

    train_rows = _read(train_paths)
    if split:
        train_rows, dev_rows = split_dev(train_rows, dev_fraction)
        notes.append(f"dev set: {len(dev_rows)} of {len(train_rows) + len(dev_rows)} rows split off the training "
                     f"file(s) by question hash (dev_fraction={dev_fraction})")
    else:
        dev_rows = _read(dev_paths)
    if strip_reflection:
        judgement_only = sum(bool(r.get(SUPERVISE_KEY)) for r in (*train_rows, *dev_rows))
        train_rows = [strip_reflection_example(r) for r in train_rows if not r.get(SUPERVISE_KEY)]
        dev_rows = [strip_reflection_example(r) for r in dev_rows if not r.get(SUPERVISE_KEY)]
        notes.append("reflection tokens and passages removed from every output "
                     "(selfrag.training.sft_data.strip_reflection_example)")
        if judgement_only:  # they teach reflection tokens only: nothing of them is left without the tokens
            notes.append(f"{judgement_only} row(s) with a `{SUPERVISE_KEY}` key (reflection-token judgements only) "
                         "left out")
    if not train_rows:
        raise InputError(f"{', '.join(map(str, train_paths))}: no training rows; check data.train")
    write_jsonl_atomic(train_out, train_rows)
    dev_files = []
    if dev_rows:
        write_jsonl_atomic(dev_out, dev_rows)
        dev_files = [dev_out]
    else:
        dev_out.unlink(missing_ok=True)  # left by an earlier run with other data
    return TrainingFiles(train=[train_out], dev=dev_files, sources=sources, derived=True, notes=notes)

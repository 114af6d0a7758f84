"""Fingerprints of checkpoint directories: the one home for "is this the same model?".

Two kinds, both independent of where and when the files were written (no absolute paths, no mtimes), so the same
model gives the same fingerprint on every machine:

- `layout_fingerprint`: file names and sizes. Cheap; notices a different or changed checkpoint (a resumed training
  run's base) but not a same-sized change of bytes.
- `content_fingerprint`: file names and the sha256 of every file's bytes. What names a rebuilt checkpoint (the
  reflection-token base) and what a trained adapter records of its base, so a merge can tell whether the base it
  is given is bit-identical to the one the adapter was trained on. Hashing a 135M-parameter fp32 checkpoint takes a
  few seconds, so per-file digests are memoised in a small JSON file (keyed by absolute path, size and mtime: the
  memo is machine-local, the fingerprint it produces is not).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from selfrag.artifacts import file_sha256

#: Length of the hex fingerprints (64 bits: collisions are not a concern for naming cache directories).
FINGERPRINT_CHARS = 16
#: File name of the per-file digest memo inside a cache directory (see `content_fingerprint`).
FINGERPRINT_MEMO = "fingerprints.json"


#: This project's provenance notes written beside a checkpoint's files (which source it was built from, where a
#: merge came from). They are not the model, and may name machine paths, so fingerprints leave them out by default.
PROVENANCE_NOTES = ("selfrag_tokens.json", "selfrag_merged.json")


def _is_model_file(path: Path) -> bool:
    return path.name not in PROVENANCE_NOTES


def _files(directory: Path, keep: Callable[[Path], bool] | None) -> list[Path]:
    keep = keep or _is_model_file
    return [p for p in sorted(directory.rglob("*")) if p.is_file() and keep(p)]


def layout_fingerprint(directory: str | os.PathLike[str]) -> str:
    """Hash of the relative file names and sizes under `directory` (provenance notes left out)."""
    root = Path(directory)
    digest = hashlib.sha256()
    for path in _files(root, None):
        digest.update(f"{path.relative_to(root)}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def content_fingerprint(
    directory: str | os.PathLike[str],
    *,
    keep: Callable[[Path], bool] | None = None,
    memo: str | os.PathLike[str] | None = None,
) -> str:
    """Hash of the relative file names and file contents under `directory`: the files `keep` accepts, by default all
    but this project's provenance notes (`PROVENANCE_NOTES`).

    `memo`: a JSON file remembering each file's sha256 by (absolute path, size, mtime), so unchanged files are not
    read again; it is rewritten atomically and a damaged memo is ignored.
    """
    root = Path(directory)
    memo_path = Path(memo) if memo is not None else None
    known: dict[str, str] = {}
    if memo_path is not None and memo_path.is_file():
        try:
            known = dict(json.loads(memo_path.read_text()))
        except (ValueError, TypeError):
            known = {}
    digest = hashlib.sha256()
    fresh = False
    for path in _files(root, keep):
        stat = path.stat()
        memo_key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        file_hash = known.get(memo_key)
        if file_hash is None:
            file_hash = known[memo_key] = file_sha256(path)
            fresh = True
        digest.update(f"{path.relative_to(root)}:{file_hash}\n".encode())
    if memo_path is not None and fresh:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=memo_path.parent, prefix=".fingerprints-")
        with os.fdopen(fd, "w") as handle:
            json.dump(known, handle, indent=0, sort_keys=True)
        os.replace(tmp, memo_path)
    return digest.hexdigest()[:FINGERPRINT_CHARS]

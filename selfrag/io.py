"""JSON-lines input/output with clear errors, and atomic / append-safe writes for resumable jobs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad user input (a file, a row, a config value). The message names where the problem is and how to fix it."""


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a jsonl file.

    A `.json` file holding one JSON list of objects (ALCE's ASQA files, e.g. `asqa_eval_gtr_top100.json`) is read too:
    the numbers are then 1-based item positions in the list.

    Raises:
        InputError: the file is missing, or a line (item) is not a JSON object (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path (e.g. data.path=...)")
    if path.suffix == ".json":
        yield from _iter_json_list(path)
        return
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{line_no}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{line_no}: expected a JSON object per line, got {type(row).__name__}")
            yield line_no, row


def _iter_json_list(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(rows, list):
        raise InputError(f"{path}: a .json input must hold one list of objects, got {type(rows).__name__}; "
                         "or write one object per line to a .jsonl file")
    for item, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise InputError(f"{path}: item {item} of the list is {type(row).__name__}, expected a JSON object")
        yield item, row


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a whole jsonl file (see `iter_jsonl` for errors)."""
    return [row for _, row in iter_jsonl(path)]


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write rows to `path` via a temporary file and rename, so readers never see a half-written file."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` via a temporary file in the same directory and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp creates 0600 files; give the result the permissions an ordinary open() would (0666 minus the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Append complete lines and fsync, so a crash loses at most the rows of the call in flight."""
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if not payload:
        return
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def read_done_ids(path: str | os.PathLike[str], key: str = "id") -> set[str]:
    """Ids already written to a resumable jsonl output; a torn last line (a crash mid-write) is ignored and cut off."""
    path = Path(path)
    if not path.is_file():
        return set()
    done: set[str] = set()
    good_bytes = 0
    with path.open("rb") as handle:
        for raw in handle:
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                break
            if not raw.endswith(b"\n"):
                break
            done.add(str(row[key]))
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(good_bytes)
    return done

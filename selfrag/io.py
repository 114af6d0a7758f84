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


class ServiceError(RuntimeError):
    """A service the job depends on (an HTTP endpoint) refused or kept failing; the message says what to check.

    Scripts report it like `InputError`: one `error:` line, exit status 2 (`selfrag.cli.run_or_exit`).
    """


def _decode(raw: bytes, where: str, *, first: bool = False) -> str:
    """`raw` as UTF-8 text (a UTF-8 byte-order mark at the start of a file is dropped)."""
    try:
        return raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{where}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                         "is this a binary file? save it as UTF-8") from None


def _open_bytes(path: Path) -> Any:
    try:
        return path.open("rb")
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror}); check the path and its permissions") from None


def iter_lines(path: str | os.PathLike[str], *, what: str = "file") -> Iterator[tuple[int, str]]:
    """Yield (line number, text without the line break) for each line of a UTF-8 text file.

    Raises:
        InputError: the file is missing or unreadable, or a line is not UTF-8 (naming the file, line and column).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}; check the path")
    with _open_bytes(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            text = _decode(raw, f"{path}:{line_no}", first=line_no == 1)
            yield line_no, text.rstrip("\n").rstrip("\r")


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a jsonl file.

    A `.json` file holding one JSON list of objects (ALCE's ASQA files, e.g. `asqa_eval_gtr_top100.json`) is read too:
    the numbers are then 1-based item positions in the list.

    Raises:
        InputError: the file is missing or unreadable, a line is not UTF-8, or a line (item) is not a JSON object
            (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path (e.g. data.path=...)")
    if path.suffix == ".json":
        yield from _iter_json_list(path)
        return
    for line_no, line in iter_lines(path):
        if not line.strip():
            continue
        yield line_no, _parse_object(line, f"{path}:{line_no}")


def _parse_object(line: str, where: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply to read") from None
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
    return row


def _iter_json_list(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise InputError(f"{path}: a .json input must hold one list of objects, got {type(rows).__name__}; "
                         "or write one object per line to a .jsonl file")
    for item, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise InputError(f"{path}: item {item} of the list is {type(row).__name__}, expected a JSON object")
        yield item, row


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON value in a file (a run's `run_config.json`, `metrics.json`, a `.json` input).

    Raises:
        InputError: missing, unreadable, not UTF-8 or not valid JSON (naming the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    with _open_bytes(path) as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); is this a binary file? "
                         "save it as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to read") from None


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
    """Ids (the `key` field, as strings) already written to a resumable jsonl output that `append_jsonl` fills.

    A torn last line (no line break at its end: the process died inside a write) is a crash artefact: it is cut off
    and its row counts as not done. Anything else wrong is not a crash artefact and is refused with its line number,
    rather than silently dropping the rows after it: a complete line that is not a JSON object, not UTF-8, or has
    no usable `key`.

    Raises:
        InputError: a malformed complete line (naming the file and line, and the fix).
    """
    path = Path(path)
    if not path.is_file():
        return set()
    done: set[str] = set()
    good_bytes = 0
    fix = f"fix or delete that line, or delete {path.name} to start over"
    with _open_bytes(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                break  # the torn tail of a write that never finished
            where = f"{path}:{line_no}"
            if raw.strip():
                try:
                    row = _parse_object(_decode(raw, where), where)
                except InputError as err:
                    raise InputError(f"{err}; only a torn last line is repaired on resume: {fix}") from None
                value = row.get(key)
                if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
                    raise InputError(f"{where}: the row has no usable `{key}` (got {value!r}); this file was not "
                                     f"written by this job or was edited: {fix}")
                done.add(str(value))
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(good_bytes)
    return done

"""An output directory: usable, written by one process at a time, and holding the outputs of one set of settings.

Every script writes into `output_dir`; resumable jobs also read back what an earlier run left there. Three rules
keep that safe, and this module is their one home:

- `prepare_output_dir`: the directory is created, or it is refused with one line if it cannot be (a path that is a
  file, a parent that is a file, no write permission), before anything is written;
- `claim_output_dir`: an exclusive lock (`filelock`, an OS lock on `output_dir/.lock`, released by the kernel if the
  process dies, so a killed run never leaves a stale lock) held until the process ends or `release_output_dir`; a
  second process that tries to write into the same directory is refused at once, naming the holder. Claims are
  reentrant within a process (the Hydra callback in `selfrag.cli` claims before Hydra writes its files, the job
  claims again around its work);
- `guard_settings`: the settings that shape a job's outputs are recorded in `run_config.json`; a later run into the
  same directory with other settings is refused while the outputs exist, naming the keys that differ, instead of
  appending rows of two kinds into one file.

`add_counts` keeps counters that must survive resumption (e.g. calls made by every run into the directory, not just
the last one).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from selfrag.io import InputError, read_json, write_text_atomic

LOCK = ".lock"
RUN_CONFIG = "run_config.json"


def prepare_output_dir(path: str | os.PathLike[str], *, key: str = "output_dir") -> Path:
    """Create `path` (and its parents) or refuse it with one line naming `key`.

    Raises:
        InputError: `path` or one of its parents is a file, or the nearest existing directory is not writable.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == path else f"is inside {existing}, which is a file"
        raise InputError(f"{key}={path} {what}; choose a directory ({key}=DIR)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{key}={path}: {existing} is not writable; choose a directory you can write ({key}=DIR)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{key}={path} cannot be created ({err.strerror}); choose another directory") from None
    return path


#: The locks this process holds, by resolved directory. A strong reference: filelock releases a lock whose object is
#: garbage-collected, and a claim must last until it is released.
_HELD: dict[Path, FileLock] = {}


def _lock(path: Path) -> FileLock:
    # One lock object per directory and process (keyed by the resolved path, so "out" and "./out" are one lock):
    # claiming again from the same process re-enters it instead of being refused by our own OS lock. timeout=0: a
    # second writer is refused, not queued.
    directory = path.resolve()
    if directory not in _HELD:
        _HELD[directory] = FileLock(directory / LOCK, timeout=0, thread_local=False)
    return _HELD[directory]


def _holder(lock_file: Path) -> str:
    try:
        text = lock_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    return f" ({text})" if text else ""


def claim_output_dir(path: str | os.PathLike[str], *, key: str = "output_dir") -> Path:
    """Create `path` if needed and hold its exclusive write lock for this process (re-entrant).

    Returns the directory. The lock is held until `release_output_dir` is called as many times as this was, or the
    process exits.

    Raises:
        InputError: the directory cannot be created (see `prepare_output_dir`), or another process holds it.
    """
    path = prepare_output_dir(path, key=key)
    lock = _lock(path)
    first = not lock.is_locked
    try:
        lock.acquire()
    except Timeout:
        raise InputError(
            f"{key}={path} is in use by another run{_holder(path / LOCK)}; wait for it to finish, or choose "
            f"another {key}"
        ) from None
    except OSError as err:
        raise InputError(f"{key}={path}: cannot lock {path / LOCK} ({err.strerror}); choose another {key}") from None
    if first:
        # Who holds it, for the message a refused second writer prints. The OS lock is on the file's inode, so
        # writing its contents through another handle is safe; filelock never truncates it on a failed attempt.
        started = datetime.datetime.now().isoformat(timespec="seconds")
        command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200]
        with open(path / LOCK, "w", encoding="utf-8") as handle:
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}: {command}\n")
    return path


def release_output_dir(path: str | os.PathLike[str]) -> None:
    """Undo one `claim_output_dir` of `path` by this process (the lock is freed when every claim is undone)."""
    directory = Path(path).resolve()
    lock = _HELD.get(directory)
    if lock is not None and lock.is_locked:
        lock.release()
        if not lock.is_locked:
            del _HELD[directory]


@contextmanager
def claimed_output_dir(path: str | os.PathLike[str], *, key: str = "output_dir") -> Iterator[Path]:
    """`claim_output_dir` for the duration of a `with` block."""
    directory = claim_output_dir(path, key=key)
    try:
        yield directory
    finally:
        release_output_dir(directory)


def refuse_input_dir(output_dir: str | os.PathLike[str], inputs: Mapping[str, Any]) -> None:
    """Refuse an output directory that is the directory of one of the job's inputs (`inputs`: key -> path).

    An input given as a file stands for its directory, a directory for itself; None (not set) is skipped. Writing
    into an input's run directory would overwrite that run's own files (its predictions, its Hydra record).

    Raises:
        InputError: naming the input's key.
    """
    out = Path(output_dir).expanduser().resolve()
    for key, value in inputs.items():
        if value is None:
            continue
        path = Path(str(value)).expanduser()
        directory = path if path.is_dir() else path.parent
        if directory.resolve() == out:
            raise InputError(f"output_dir={output_dir} is the directory of the input {key}={value}; writing there "
                             "would overwrite that run's files: choose another output_dir")


def guard_settings(
    output_dir: str | os.PathLike[str],
    settings: Mapping[str, Any],
    *,
    outputs: Sequence[str],
    record: str = RUN_CONFIG,
    added_keys: Sequence[str] = (),
) -> None:
    """Refuse to add to outputs made with other settings; record `settings` otherwise.

    Args:
        output_dir: the run directory (claimed by the caller).
        settings: JSON-able values of the keys that shape the outputs (e.g. `selfrag.decoding.run.run_settings`).
        outputs: the files (names inside `output_dir`) a resumed run appends to; while none exists, any settings
            are accepted and recorded.
        record: the file the settings are kept in.
        added_keys: keys of `settings` that records made before they existed lack: such a record is compared on
            its other keys, then rewritten with them (every other absent or extra key is a difference).

    Raises:
        InputError: an output exists and `record` holds other settings (naming the keys that differ), or `record`
            is unreadable.
    """
    output_dir = Path(output_dir)
    saved = output_dir / record
    settings = json.loads(json.dumps(settings, default=str))  # compare as they are stored: tuples are lists, etc.
    present = [name for name in outputs if (output_dir / name).is_file()]
    if saved.is_file() and present:
        previous = read_json(saved)
        if not isinstance(previous, dict):
            raise InputError(f"{saved}: expected a JSON object of settings; delete {present[0]} and {saved.name} "
                             "to start over")
        older = {k: v for k, v in settings.items() if k not in added_keys or k in previous}
        if previous != older:
            changed = sorted(k for k in {*older, *previous} if previous.get(k) != older.get(k))
            raise InputError(
                f"{output_dir} holds {', '.join(present)} made with other settings ({', '.join(changed)} differ); "
                f"use a new output_dir or delete {output_dir / present[0]}"
            )
    write_text_atomic(saved, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def add_counts(path: str | os.PathLike[str], counts: Mapping[str, int | float]) -> dict[str, int | float]:
    """Add `counts` to the counters saved in `path` (a JSON object; absent: all zero), write and return the sums.

    For counters that describe a whole resumable job rather than its last invocation. Written atomically after the
    rows they count, so a crash in between under-counts, never counts twice.

    Raises:
        InputError: `path` exists but is not a JSON object of numbers.
    """
    path = Path(path)
    total: dict[str, int | float] = {}
    if path.is_file():
        previous = read_json(path)
        if not isinstance(previous, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in previous.values()
        ):
            raise InputError(f"{path}: expected a JSON object of counts; delete it to start counting again")
        total.update(previous)
    for name, value in counts.items():
        total[name] = total.get(name, 0) + value
    write_text_atomic(path, json.dumps(total, indent=2) + "\n")
    return total

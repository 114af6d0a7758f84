"""Artifact cards: the README written beside every trained model or dataset the project ships (docs/formats.md).

A card states the base model, the data and its hash, the exact command that produced the artifact, and its metrics
(for trained models, the training curve), so anyone can tell what an artifact is and rebuild it.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfrag.io import write_text_atomic


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def display_path(path: str | os.PathLike[str]) -> str:
    """`path` as a card shows it: relative to the working directory (the repository, for the commands the README
    shows) when it lies below it, so committed cards name no one machine's directories; otherwise unchanged."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _display_argument(argument: str) -> str:
    key, sep, value = argument.partition("=")
    if sep and value.startswith("/"):
        return f"{key}={display_path(value)}"
    return argument


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running, as a user would retype it from the working directory (the script and any
    `key=/absolute/path` below the working directory shown relative to it)."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        argv = [display_path(argv[0]), *(_display_argument(a) for a in argv[1:])]
    return "python " + " ".join(shlex.quote(a) for a in argv)


def write_card(
    directory: str | os.PathLike[str],
    *,
    title: str,
    summary: str,
    base: str,
    data: Sequence[str | os.PathLike[str]],
    command: str,
    sections: dict[str, str],
) -> Path:
    """Write `directory/README.md`: title, summary, base, data files with sizes and sha256, command, then sections."""
    lines = [f"# {title}", "", summary, "", f"- **Base model**: {base}"]
    for path in data:
        path = Path(path)
        lines.append(f"- **Data**: `{path.name}` ({path.stat().st_size:,} bytes, sha256 `{file_sha256(path)}`)")
    lines += ["", "## Command", "", "```bash", command, "```", ""]
    for heading, body in sections.items():
        lines += [f"## {heading}", "", body.rstrip(), ""]
    card = Path(directory) / "README.md"
    write_text_atomic(card, "\n".join(lines))
    return card


def training_curve(history: Sequence[dict[str, Any]]) -> str:
    """A markdown table of the logged training loss (at most ~12 rows) and a line of the eval losses.

    `history` is the trainer's `train_log.jsonl` rows (`TrainResult.history`): rows with `loss` are training rows,
    rows with `eval_loss` evaluations.
    """
    rows = [h for h in history if "loss" in h]
    step = max(1, len(rows) // 12)
    lines = ["| step | epoch | loss |", "|---:|---:|---:|"]
    lines += [f"| {h['step']} | {h.get('epoch', 0):.2f} | {h['loss']:.4f} |" for h in rows[::step]]
    evals = [h for h in history if "eval_loss" in h]
    if evals:
        lines += ["", "eval loss: " + ", ".join(f"step {h['step']}: {h['eval_loss']:.4f}" for h in evals)]
    return "\n".join(lines)


def export_artifact(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Replace `target` with a copy of the directory `source` (a trained model with its card); return `target`."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    print(f"exported: {target}")
    return target

"""Committed cards and outputs name no one machine's directories; cards show repository paths relative."""

import re
from pathlib import Path

from selfrag.artifacts import command_line, display_path

ROOT = Path(__file__).resolve().parents[2]
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:root|home|work|tmp|Users)/")


def test_committed_cards_and_results_hold_no_absolute_machine_paths():
    offenders = []
    for folder in ("artifacts", "docs", "benchmarks/results", "tests/reference"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in {".md", ".json", ".jsonl", ".txt", ".csv"}:
                for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                    if MACHINE_PATH.search(line):
                        offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders[:20])


def test_cards_show_paths_below_the_working_directory_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    inside = tmp_path / "data" / "train.jsonl"
    assert display_path(inside) == "data/train.jsonl"
    assert display_path("/elsewhere/x.jsonl") == "/elsewhere/x.jsonl"  # outside: left as given
    line = command_line([str(tmp_path / "scripts" / "train.py"), f"data.train={inside}", "finetune.lr=2e-4",
                         "output_dir=/elsewhere/run"])
    assert line == "python scripts/train.py data.train=data/train.jsonl finetune.lr=2e-4 output_dir=/elsewhere/run"

"""`scripts/data_stats.py` as the README runs it: the shipped generator data's statistics recomputed equal the
committed stats.md / stats.json (so the truth table on the data card is what the data gives)."""

import json
from pathlib import Path

from tests.helpers import run_script

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "artifacts" / "generator-data"


def test_readme_command_recomputes_the_committed_statistics(tmp_path):
    run_script("data_stats", "data_file=artifacts/generator-data/train.jsonl", f"out_dir={tmp_path}")
    assert (tmp_path / "stats.md").read_text() == (DATA / "stats.md").read_text()
    assert json.loads((tmp_path / "stats.json").read_text()) == json.loads((DATA / "stats.json").read_text())

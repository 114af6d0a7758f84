"""One writer per output directory: two runs into one `output_dir` at once, and exactly one of them runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from selfrag.rundir import LOCK
from tests.helpers import POPQA_ROWS, run_script, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _start_infer(*overrides):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "infer.py"), *overrides], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_claim(proc, lock, timeout=300.0):
    """Wait until `proc` holds the directory: its pid is in the lock file (written right after the OS lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the first writer ended before claiming: {proc.communicate()}")
        if lock.is_file() and lock.read_text().startswith(f"pid {proc.pid} "):
            return
        time.sleep(0.02)
    raise AssertionError("the first writer never claimed the directory")


def test_two_writers_on_one_output_dir_exactly_one_runs(tiny_model_dir, tmp_path):
    """The first writer claims the directory (before Hydra writes anything) and is then frozen (SIGSTOP) so the
    overlap is certain, not a race; the second is refused with one line and touches nothing; once thawed the first
    finishes: every id is written once, and `.hydra/` records the run that ran."""
    data = write_jsonl(tmp_path / "popqa.jsonl", POPQA_ROWS)
    out = tmp_path / "shared"
    common = ["model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", f"data.path={data}",
              "decoding.mode=always", "decoding.ndocs=2", "decoding.max_new_tokens=20", f"output_dir={out}"]
    first = _start_infer(*common, "summary_examples=1")
    try:
        _wait_for_claim(first, out / LOCK)
        os.kill(first.pid, signal.SIGSTOP)
        assert first.poll() is None, "the first writer finished before it could be held"
        second = _start_infer(*common, "summary_examples=2")
        _, refused = second.communicate(timeout=300)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, first_err = first.communicate(timeout=900)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and "Traceback" not in refused, refused
    assert refused.strip().splitlines()[-1].startswith(f"error: output_dir={out} is in use by another run "
                                                       f"(pid {first.pid} ")
    ids = [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["1", "2", "3"]  # each once: no second writer appended
    overrides = (out / ".hydra" / "overrides.yaml").read_text()
    assert "summary_examples=1" in overrides and "summary_examples=2" not in overrides


def test_a_script_refuses_a_directory_another_process_holds(tmp_path):
    """The lock is an OS lock on `output_dir/.lock`: the holder here is this test process."""
    from selfrag.rundir import claimed_output_dir

    (tmp_path / "in").mkdir()
    predictions = write_jsonl(tmp_path / "in" / "predictions.jsonl", [{"id": "1"}])
    out = tmp_path / "held"
    with claimed_output_dir(out):
        proc = run_script("rerank", f"predictions={predictions}", f"output_dir={out}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: output_dir={out} is in use by another run (pid {os.getpid()}" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # Hydra wrote nothing into the held directory

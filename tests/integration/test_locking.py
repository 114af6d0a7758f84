"""One writer per output directory: two runs into one `output_dir` at once, and exactly one of them runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import POPQA_ROWS, run_script, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _start_infer(*overrides):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "infer.py"), *overrides], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_writers_on_one_output_dir_exactly_one_runs(tiny_model_dir, tmp_path):
    """Both start together; whichever claims the directory first decodes (it holds the claim from before Hydra
    writes anything until it ends, and loading a model alone outlasts the other's start-up), the other is refused
    with one line and touches nothing: every id is written once, and `.hydra/` records the run that ran."""
    data = write_jsonl(tmp_path / "popqa.jsonl", POPQA_ROWS)
    out = tmp_path / "shared"
    common = ["model=custom", f"model.path={tiny_model_dir}", "prompt=selfrag", f"data.path={data}",
              "decoding.mode=always", "decoding.ndocs=2", "decoding.max_new_tokens=20", f"output_dir={out}"]
    procs = [_start_infer(*common, f"summary_examples={i}") for i in (1, 2)]
    results = [(p.returncode, stdout, stderr) for p in procs for stdout, stderr in [p.communicate(timeout=900)]]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    winner = next(i for i, (code, _, _) in enumerate(results) if code == 0)
    _, _, refused = results[1 - winner]
    assert "Traceback" not in refused
    assert refused.strip().splitlines()[-1].startswith(f"error: output_dir={out} is in use by another run (pid ")
    ids = [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["1", "2", "3"]  # each once: no second writer appended
    assert f"summary_examples={winner + 1}" in (out / ".hydra" / "overrides.yaml").read_text()


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

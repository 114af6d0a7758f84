"""The main job's speed as a new user meets it: `make demo`'s command, timed from the outside, in one run.

Two parts, both run `scripts/infer.py` as a subprocess exactly as the Makefile does (embedded default model, the
demo's PopQA file with its static passages, answers printed as their batches finish):

- cold:  the full demo (100 questions, vLLM CPU engine, eager) on an empty model cache, as on a fresh machine: the
         GGUF is converted, the reflection tokens added and the adapter merged inside the timed run. Reported:
         seconds to the first printed answer and to the end.
- same questions, each way: the first `--questions` questions on the transformers backend, on vLLM (compiled) and
  on vLLM in eager mode (the demo's), warm cache, side by side: model load and decoding seconds, questions/second
  and the ratio to transformers (these machines are noisy: compare within a run).

    python benchmarks/demo_bench.py [--questions 20] [--out benchmarks/results/demo_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selfrag.decoding.run import read_timing

ROOT = Path(__file__).resolve().parents[1]


def run_infer(overrides: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run infer with `overrides`; time the first printed answer (`Q: ...` line) and the whole run."""
    command = [sys.executable, str(ROOT / "scripts" / "infer.py"), *overrides]
    started = time.perf_counter()
    first_answer = None
    lines = []
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if first_answer is None and line.startswith("Q: "):
                first_answer = time.perf_counter() - started
    total = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"infer failed ({proc.returncode}): {' '.join(overrides)}\n" + "\n".join(lines[-20:]))
    shown = [x for x in lines if x and x[0] != " " and not x.startswith("predictions:")]  # no machine paths kept
    return {"first_answer_s": first_answer, "total_s": total, "summary": shown[-8:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=20, help="questions for the hf-vs-vllm part")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo_cpu.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="demo-bench-"))
    env = {**os.environ, "SELFRAG_CACHE": str(work / "cache"), "VLLM_CACHE_ROOT": str(work / "vllm-cache"),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    eager = "+backend.engine_options.enforce_eager=true"
    demo = ["backend=vllm", eager, "show_answers=8"]  # the Makefile's demo command (see `make demo`)
    cold = run_infer([*demo, f"output_dir={work / 'cold'}"], env)
    print(f"cold demo (100 questions, vllm, empty cache): first answer after {cold['first_answer_s']:.0f}s, "
          f"done after {cold['total_s']:.0f}s")
    same = {}
    ways = {"hf": ["backend=hf"], "vllm": ["backend=vllm"], "vllm eager (the demo's)": ["backend=vllm", eager]}
    for n, (backend, overrides) in enumerate(ways.items()):
        run = run_infer([*overrides, f"data.limit={args.questions}", "show_answers=1", f"output_dir={work / str(n)}"],
                        env)
        timing = read_timing(work / str(n))  # the run's own account: model load vs decoding
        run.update(load_s=float(timing["load_seconds"]), decode_s=float(timing["seconds"]),
                   questions_per_s=args.questions / float(timing["seconds"]))
        same[backend] = run
    rows = [f"| {b} | {args.questions} | {r['total_s']:.0f} | {r['load_s']:.0f} | {r['decode_s']:.0f} | "
            f"{r['questions_per_s']:.3f} | {r['questions_per_s'] / same['hf']['questions_per_s']:.2f}x |"
            for b, r in same.items()]
    table = "\n".join(["| backend | questions | wall s (whole command) | model load s | decoding s | questions/s "
                       "(decoding) | vs hf |", "|---|---:|---:|---:|---:|---:|---:|", *rows])
    print(table)
    record = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "cold_demo": {k: v for k, v in cold.items() if k != "summary"}, "cold_demo_summary": cold["summary"],
              "same_questions": {b: {k: v for k, v in r.items() if k != "summary"} for b, r in same.items()},
              "table": table}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()

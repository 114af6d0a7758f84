"""Serving throughput against offline decoding, on the same questions and passages, in one run.

Two parts, both as a user runs them (subprocesses, the same model, backend and decoding settings):

- server:  `scripts/serve.py` is started; once it answers `/health`, one warm-up request is sent (not counted), then
           the first `--questions` PopQA questions (data/popqa/popqa_longtail_w_gs_first100.jsonl) are posted to
           `/v1/chat/completions` from `--concurrency` client threads, each with its question's static passages in
           `selfrag.passages` (so the server does exactly the decoding `infer` does: no retriever).
           Reported: questions/s over the wall time of the run, p50/p95 request latency, errors.
- offline: `scripts/infer.py` on the same questions (a temporary jsonl of those rows); its questions/s are its own
           decoding time (`timing.json`, model load excluded, as the server's model is loaded before timing starts).

The ratio server / offline is the cost of serving (target: >= 0.8). Answers are compared too: batching the same
questions differently can move greedy decoding only through floating-point noise of padded batches.

    python benchmarks/serve_bench.py [--questions 32] [--concurrency 16] [--model-path DIR] [--backend hf|vllm]
        [--max-batch 16] [--window-ms 20] [--override KEY=VALUE ...] [--out benchmarks/results/serve_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from selfrag.decoding.run import read_timing
from selfrag.io import read_jsonl
from selfrag.types import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "popqa" / "popqa_longtail_w_gs_first100.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def passages_of(row: dict[str, Any]) -> list[dict[str, str]]:
    """A row's `ctxs` as `selfrag.passages` (the ids kept, so the traces name the same passages as infer's)."""
    return [{"id": str(c.get("id", f"{row['id']}#{j}")), "title": str(c.get("title") or ""), "text": str(c["text"])}
            for j, c in enumerate(row.get("ctxs") or [])]


def run_server(rows: list[dict[str, Any]], common: list[str], args: argparse.Namespace, env: dict[str, str],
               work: Path) -> dict[str, Any]:
    port = free_port()
    command = [sys.executable, str(ROOT / "scripts" / "serve.py"), *common, f"server.port={port}",
               f"server.max_batch={args.max_batch}", f"server.batch_window_ms={args.window_ms}",
               "server.log_level=warning", "server.max_ndocs=50", "server.api_key=null"]
    log_path = work / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            client = httpx.Client(trust_env=False, timeout=args.timeout)
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"serve.py exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            load_s = time.perf_counter() - started

            def ask(row: dict[str, Any]) -> tuple[float, dict[str, Any] | None, str | None]:
                body = {"model": "selfrag", "messages": [{"role": "user", "content": row["question"]}],
                        "selfrag": {"passages": passages_of(row)}}
                began = time.perf_counter()
                try:
                    response = client.post(f"{url}/v1/chat/completions", json=body)
                except httpx.HTTPError as err:
                    return time.perf_counter() - began, None, f"{type(err).__name__}: {err}"
                elapsed = time.perf_counter() - began
                if response.status_code != 200:
                    return elapsed, None, f"{response.status_code}: {response.text[:200]}"
                return elapsed, response.json(), None

            ask(rows[0])  # warm-up (not counted)
            before = client.get(f"{url}/health").json()
            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                results = list(pool.map(ask, rows))
            wall = time.perf_counter() - began
            after = client.get(f"{url}/health").json()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    latencies = [r[0] for r in results if r[2] is None]
    errors = [r[2] for r in results if r[2] is not None]
    calls = after["decoder"]["decoder_calls"] - before["decoder"]["decoder_calls"]
    return {
        "questions": len(rows), "concurrency": args.concurrency, "wall_s": wall, "load_s": load_s,
        "questions_per_s": len(latencies) / wall if wall > 0 else 0.0,
        "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95), "errors": len(errors),
        "error_examples": errors[:3], "decoder_calls": calls,
        "mean_requests_per_call": (after["decoder"]["requests"] - before["decoder"]["requests"]) / calls if calls
        else 0.0,
        "answers": {str(row["id"]): (r[1]["choices"][0]["message"]["content"] if r[1] else None)
                    for row, r in zip(rows, results)},
    }


def run_offline(rows: list[dict[str, Any]], common: list[str], batch_size: int, env: dict[str, str],
                work: Path) -> dict[str, Any]:
    data = work / "questions.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = work / "infer"
    command = [sys.executable, str(ROOT / "scripts" / "infer.py"), *common, f"data.path={data}", f"output_dir={out}",
               f"batch_size={batch_size}", "summary_examples=0"]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    total = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"infer failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    timing = read_timing(out)
    predictions = read_jsonl(out / "predictions.jsonl")
    return {"questions": len(rows), "wall_s": total, "load_s": float(timing["load_seconds"]),
            "decode_s": float(timing["seconds"]), "questions_per_s": len(rows) / float(timing["seconds"]),
            "answers": {str(p["id"]): p["answer"] for p in predictions}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16, help="client threads (default: as many as a batch)")
    parser.add_argument("--model-path", default=None, help="a checkpoint (model=custom); default: the embedded model")
    parser.add_argument("--backend", default="hf", choices=BACKENDS)
    parser.add_argument("--max-batch", type=int, default=16, help="server.max_batch, and infer's batch_size")
    parser.add_argument("--window-ms", type=float, default=20.0, help="server.batch_window_ms")
    parser.add_argument("--override", action="append", default=[], help="a Hydra override for both, e.g. "
                        "decoding.max_new_tokens=50 (repeatable)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    rows = read_jsonl(DATA)[: args.questions]
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SELFRAG_API_KEY", None)
    common = [f"backend={args.backend}", "task=popqa", *args.override]
    if args.model_path:
        common = ["model=custom", f"model.path={args.model_path}", *common]

    server = run_server(rows, common, args, env, work)
    offline = run_offline(rows, common, args.max_batch, env, work)
    ratio = server["questions_per_s"] / offline["questions_per_s"] if offline["questions_per_s"] else 0.0
    same = sum(server["answers"].get(k) == v for k, v in offline["answers"].items())
    table = "\n".join([
        "| way | questions | concurrency | questions/s | p50 s | p95 s | errors | vs offline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| server (scripts/serve.py, max_batch {args.max_batch}, window {args.window_ms:g} ms) | "
        f"{server['questions']} | {args.concurrency} | {server['questions_per_s']:.3f} | {server['p50_s']:.2f} | "
        f"{server['p95_s']:.2f} | {server['errors']} | {ratio:.2f}x |",
        f"| offline (scripts/infer.py, batch_size {args.max_batch}) | {offline['questions']} | – | "
        f"{offline['questions_per_s']:.3f} | – | – | 0 | 1.00x |",
    ])
    print(table)
    print(f"server: {server['decoder_calls']} decoder calls, {server['mean_requests_per_call']:.1f} requests per call; "
          f"same answer as offline for {same}/{len(offline['answers'])} questions; target server >= 0.8x offline: "
          f"{'met' if ratio >= 0.8 else 'NOT met'}")
    if server["errors"]:
        print("errors, e.g.:", *server["error_examples"], sep="\n  ")
    record = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "model": args.model_path or "selfrag_smollm2_135m (embedded)", "backend": args.backend,
              "overrides": args.override, "server": {k: v for k, v in server.items() if k != "answers"},
              "offline": {k: v for k, v in offline.items() if k != "answers"}, "server_over_offline": ratio,
              "same_answers": same, "table": table}
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
        print(f"written {args.out}")
    if server["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()

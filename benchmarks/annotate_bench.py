"""Annotation speed: the critic on the transformers backend (the old path) against the vLLM engine, side by side.

Both ways annotate the same seeds with the same critic, retriever and settings (`critic.annotate.Annotator`: k passages,
row variants); only the engine and the batching differ:

- old:  `backend=hf`, 32 seeds per annotation batch and 64 critic prompts per forward batch (the settings the shipped
        data was annotated with before this benchmark existed);
- new:  `backend=vllm` (the CPU build here) with prefix caching, every seed of the run in one annotation batch and
        every critic prompt of a step in one engine call. The critic prompt puts what items share first
        (`critic.prompts.critic_prompt`), so the engine computes each seed's instruction and each passage once.
        With `VLLM_CPU_NUM_OF_RESERVED_CPU=0` (the model's threads on every core; what
        `selfrag.decoding.vllm_backend` sets on CPU unless the user set it; vLLM's own default reserves one core for
        its scheduler, which on a 2-core machine halves the model's: 2.02x instead of 4.05x in an earlier run).
        Measured twice: in float32 (the critic's training precision) and in bfloat16 (`backend.dtype=bfloat16`
        in annotate; fast on CPUs with AVX512-BF16/AMX; its rounding may flip close critic calls, counted below).

Each way is warmed up on other seeds first (engine start-up and the first call are not counted), then timed.
Reported: rows, seconds, rows/s and s/row of each way in one run, their ratio, and how many rows came out identical
(the engines' float rounding may flip a close critic call).

    python benchmarks/annotate_bench.py --seeds 64 [--critic artifacts/critic-smollm2-135m] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    {"path": str(ROOT / "data/splits/popqa_longtail/train.jsonl"), "dataset": "popqa_longtail_train"},
    {"path": str(ROOT / "data/hotpotqa/hotpotqa_dev_200.jsonl"), "dataset": "hotpotqa", "skip_yes_no": True},
    {"path": str(ROOT / "data/splits/arc_challenge/train.jsonl"), "dataset": "arc_challenge_train"},
]


def _seeds(n: int, warmup: int):
    """`warmup` + `n` seeds, interleaved across the sources (so both parts hold every kind of row)."""
    from critic.sources import read_source_list

    pools = [read_source_list([s]) for s in SOURCES]
    mixed = [seed for group in zip(*pools) for seed in group]
    return mixed[:warmup], mixed[warmup : warmup + n]


def _annotate(critic, search, seeds, *, batch_size: int, k: int) -> tuple[list[dict], float]:
    from critic.annotate import Annotator, RowVariants

    annotator = Annotator(critic, search, k=k, variants=RowVariants(supported=1, rejected=2))
    start = time.perf_counter()
    rows = []
    for i in range(0, len(seeds), batch_size):
        rows += annotator.annotate(seeds[i : i + batch_size])
    return rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--critic", default=str(ROOT / "artifacts/critic-smollm2-135m"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/annotate_bench_cpu.json"))
    args = parser.parse_args()

    from critic.critic_model import open_critic
    from selfrag.models.loading import ModelSpec
    from selfrag.retrieval.factory import open_configured_retriever

    warm, seeds = _seeds(args.seeds, args.warmup)
    search = open_configured_retriever({"name": "bm25"}, str(ROOT / "data/corpus/wiki_passages.tsv")).batch_search
    spec = ModelSpec(name="critic", packaged="smollm2_135m_instruct", add_reflection_tokens=True, adapter=args.critic)
    ways = {
        "old (hf, 32 seeds x 64 prompts)": ("hf", {}, 64, 32, None),
        "new (vllm, prefix cache, one batch)": ("vllm", {}, 1 << 16, len(seeds), "0"),
        "new, bfloat16": ("vllm", {"dtype": "bfloat16"}, 1 << 16, len(seeds), "0"),
    }
    results, outputs = {}, {}
    for name, (backend, options, critic_batch, seed_batch, reserved) in ways.items():
        if reserved is None:
            os.environ.pop("VLLM_CPU_NUM_OF_RESERVED_CPU", None)
        else:
            os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = reserved
        critic = open_critic(spec, backend, options, batch_size=critic_batch)
        _annotate(critic, search, warm, batch_size=seed_batch, k=args.k)
        rows, seconds = _annotate(critic, search, seeds, batch_size=seed_batch, k=args.k)
        critic.backend.close()
        outputs[name] = [r["output"] for r in rows]
        results[name] = {"seeds": len(seeds), "rows": len(rows), "seconds": round(seconds, 2),
                         "rows_per_second": round(len(rows) / seconds, 3),
                         "seconds_per_row": round(seconds / len(rows), 3)}
    names = list(ways)
    old = results[names[0]]
    first = outputs[names[0]]
    speedups = {name: round(results[name]["rows_per_second"] / old["rows_per_second"], 2) for name in names[1:]}
    same = {name: f"{sum(a == b for a, b in zip(first, outputs[name]))}/{len(first)}" for name in names[1:]}
    summary = {"ways": results, "speedup_rows_per_second": speedups, "identical_rows_to_old": same, "k": args.k,
               "critic": Path(args.critic).name}
    print(f"{'way':40s} {'seeds':>5s} {'rows':>5s} {'seconds':>8s} {'rows/s':>7s} {'s/row':>6s}")
    for name, r in results.items():
        print(f"{name:40s} {r['seeds']:5d} {r['rows']:5d} {r['seconds']:8.1f} {r['rows_per_second']:7.2f} "
              f"{r['seconds_per_row']:6.2f}")
    for name in names[1:]:
        print(f"{name} / old: rows/s x{speedups[name]}; rows identical to the old path's: {same[name]}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

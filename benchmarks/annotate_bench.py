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
        its scheduler, which on a 2-core machine halves the model's: 2.02x instead of 4.05x in an earlier run) and
        the backend's `CPU_ENGINE_DEFAULTS` (KV blocks of 32 tokens, so shorter shared prefixes are reused, and
        prefill chunks of 2048 tokens). Measured three times:
        - in bfloat16: what `backend.dtype=auto` gives on vLLM's CPU build (it runs a float32 checkpoint in
          bfloat16; fast on CPUs with AVX512-BF16/AMX; its rounding may flip close critic calls, counted below);
        - in float32 (the old path's and the critic's training precision), for the engine and batching alone;
        - in bfloat16 with vLLM's own CPU engine defaults (blocks of 128 tokens, chunks of 4096), for what the
          backend's defaults add.

Each way is warmed up on other seeds first (engine start-up and the first call are not counted), then timed.
Reported: rows, seconds, rows/s and s/row of each way in one run, their ratio to the old way, and how many row ids
came out with the identical output (the engines' float rounding may flip a close critic call, which can also change
how many variant rows a seed gets).

    python benchmarks/annotate_bench.py --seeds 64 [--critic artifacts/critic-smollm2-135m] [--dev CRITIC_DEV.jsonl]
        [--out FILE]

With --dev, each precision's labels are also compared with the teacher's (Cohen's kappa per aspect on critic dev
rows), so a faster precision's flipped calls are shown to cost agreement or not.
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
    parser.add_argument("--dev", help="critic dev rows (scripts/label.py's critic_dev.jsonl): also report each "
                        "precision's Cohen's kappa against the teacher there")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/annotate_bench_cpu.json"))
    args = parser.parse_args()

    from critic.critic_model import open_critic
    from critic.evaluation import evaluate_critic
    from selfrag.io import read_jsonl
    from selfrag.models.loading import ModelSpec
    from selfrag.retrieval.factory import open_configured_retriever

    warm, seeds = _seeds(args.seeds, args.warmup)
    search = open_configured_retriever({"name": "bm25"}, str(ROOT / "data/corpus/wiki_passages.tsv")).batch_search
    spec = ModelSpec(name="critic", packaged="smollm2_135m_instruct", add_reflection_tokens=True, adapter=args.critic)
    # name: (backend, backend options, critic prompts per call, seeds per annotation batch, reserved CPUs, whether
    # to measure the critic's agreement with its teacher on --dev: once per precision, as the engine settings do not
    # change labels and the old path's float32 labels equal the new float32 way's)
    ways = {
        "old (hf float32, 32 seeds x 64 prompts)": ("hf", {}, 64, 32, None, False),
        "new (vllm bfloat16 = CPU auto, one batch)": ("vllm", {"dtype": "bfloat16"}, 1 << 16, len(seeds), "0", True),
        "new, float32": ("vllm", {"dtype": "float32"}, 1 << 16, len(seeds), "0", True),
        "new, vLLM's CPU engine defaults": ("vllm", {"dtype": "bfloat16", "engine_options": {
            "block_size": 128, "max_num_batched_tokens": 4096}}, 1 << 16, len(seeds), "0", False),
    }
    dev = list(read_jsonl(args.dev)) if args.dev else []
    results, outputs = {}, {}
    for name, (backend, options, critic_batch, seed_batch, reserved, agree) in ways.items():
        if reserved is None:
            os.environ.pop("VLLM_CPU_NUM_OF_RESERVED_CPU", None)
        else:
            os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = reserved
        critic = open_critic(spec, backend, options, batch_size=critic_batch)
        _annotate(critic, search, warm, batch_size=seed_batch, k=args.k)
        rows, seconds = _annotate(critic, search, seeds, batch_size=seed_batch, k=args.k)
        outputs[name] = {r["id"]: r["output"] for r in rows}
        results[name] = {"seeds": len(seeds), "rows": len(rows), "seconds": round(seconds, 2),
                         "rows_per_second": round(len(rows) / seconds, 3),
                         "seconds_per_row": round(seconds / len(rows), 3)}
        if dev and agree:
            results[name]["kappa_vs_teacher_on_dev"] = {
                aspect: None if a.cohen_kappa is None else round(a.cohen_kappa, 3)
                for aspect, a in evaluate_critic(critic, dev, progress=False).items()}
        critic.backend.close()
    names = list(ways)
    old = results[names[0]]
    first = outputs[names[0]]
    speedups = {name: round(results[name]["rows_per_second"] / old["rows_per_second"], 2) for name in names[1:]}
    same = {}
    for name in names[1:]:
        equal = sum(first.get(row_id) == output for row_id, output in outputs[name].items())
        same[name] = f"{equal}/{len(set(first) | set(outputs[name]))}"
    summary = {"ways": results, "speedup_rows_per_second": speedups, "same_output_as_old_by_row_id": same, "k": args.k,
               "critic": Path(args.critic).name}
    print(f"{'way':40s} {'seeds':>5s} {'rows':>5s} {'seconds':>8s} {'rows/s':>7s} {'s/row':>6s}")
    for name, r in results.items():
        print(f"{name:40s} {r['seeds']:5d} {r['rows']:5d} {r['seconds']:8.1f} {r['rows_per_second']:7.2f} "
              f"{r['seconds_per_row']:6.2f}")
    for name, r in results.items():
        if "kappa_vs_teacher_on_dev" in r:
            print(f"{name}: kappa against the teacher on {len(dev)} dev rows: {r['kappa_vs_teacher_on_dev']}")
    for name in names[1:]:
        print(f"{name} / old: rows/s x{speedups[name]}; row ids with the old path's output: {same[name]}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

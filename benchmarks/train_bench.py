"""Training speed and memory: our SFT trainer against a plain transformers `Trainer`, side by side in one run.

Both ways fine-tune the same model fully (all weights, AdamW, lr 2e-5, linear schedule, no warmup, grad-norm clip
1.0, one micro-batch per step) on the same tokenised rows (`load_sft_dataset`: prompt and passages masked to -100)
with the same batch size and precision (bf16 autocast over fp32 weights where CUDA supports it, else fp32):

- ours: `selfrag.training.trainer.train` (length-grouped batches, loss computed at supervised positions only);
- hf_trainer: `transformers.Trainer` with `DataCollatorForSeq2Seq` padding (labels padded with -100) and its default
  random sampler (`--hf-sampler group_by_length` gives it length grouping too), computing the usual full-sequence
  logits and loss.

Reported per way: tokens/second (unpadded tokens of the steps after the first, over their wall time: the first step
pays for warm-up), seconds per step, peak memory (GPU: `torch.cuda.max_memory_allocated`; CPU: peak resident memory
minus the resident memory before the model was loaded), and the last logged loss; then the ratios ours / hf_trainer.
Each way runs in a fresh subprocess, so neither sees the other's memory or accelerate's process-wide state.

    python benchmarks/train_bench.py --steps 2 --batch-size 2 --max-length 256 --random-init   # a smoke run on CPU
    python benchmarks/train_bench.py --steps 30 --batch-size 8 --max-length 2048 --random-init  # on a GPU

Results go to `benchmarks/results/train_bench_<device>.json` (device: `cpu`, or the GPU's short name, e.g. `h100`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rss import PeakMemory  # benchmarks/rss.py (this folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data/selfrag_train/selfrag_train_sample50.jsonl"
DEFAULT_DATA = ROOT / "artifacts/generator-data/train.jsonl"
WAYS = ("ours", "hf_trainer")
LEARNING_RATE = 2e-5
SEED = 42


# --- setup (parent process) -------------------------------------------------------------------------------------------


def device_name() -> tuple[str, str]:
    """(short name for file names, full name): `cpu`, or e.g. `h100` for "NVIDIA H100 80GB HBM3"."""
    import torch

    if not torch.cuda.is_available():
        return "cpu", "cpu"
    full = torch.cuda.get_device_name(0)
    words = full.lower().replace("nvidia", " ").replace("-", " ").split()
    short = next((w for w in words if w.isalnum() and any(c.isdigit() for c in w)), "cuda")
    return short, full


def _checkpoint(args: argparse.Namespace) -> str:
    """The model to train, with the reflection tokens (both ways then share one vocabulary)."""
    from selfrag.models.loading import ModelSpec, resolve_checkpoint

    if args.model:
        return resolve_checkpoint(ModelSpec("bench", path=args.model, add_reflection_tokens=True))
    return resolve_checkpoint(ModelSpec("s", packaged="smollm2_135m_instruct", add_reflection_tokens=True))


def _random_init_copy(checkpoint: str, out: Path) -> str:
    """The same config and tokenizer with seeded random weights (for machines the real weights cannot reach)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(checkpoint), dtype=torch.float32)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(out)
    return str(out)


def _data_file(args: argparse.Namespace, workdir: Path) -> tuple[Path, str]:
    """(the released-format file to train on, where it came from)."""
    if args.data:
        return Path(args.data), args.data
    if DEFAULT_DATA.is_file():
        return DEFAULT_DATA, str(DEFAULT_DATA.relative_to(ROOT))
    # Synthetic: the 50 released rows cycled (with fresh ids) to at least one row per sample of the run.
    from selfrag.io import read_jsonl, write_jsonl_atomic

    sample = read_jsonl(SAMPLE)
    wanted = max(len(sample), args.steps * args.batch_size)
    rows = [{**sample[i % len(sample)], "id": f"bench-{i}"} for i in range(wanted)]
    path = workdir / "bench_train.jsonl"
    write_jsonl_atomic(path, rows)
    return path, f"synthetic: {len(rows)} rows cycled from {SAMPLE.relative_to(ROOT)}"


def _load_dataset(model: str, data: Path, max_length: int, cache: Path) -> tuple[Any, Any, Any]:
    from selfrag.training.sft_data import load_sft_dataset, load_training_tokenizer

    tokenizer = load_training_tokenizer(model)
    dataset, stats = load_sft_dataset(data, tokenizer, max_length=max_length, cache_dir=cache)
    return tokenizer, dataset, stats


# --- measurement (worker processes) -----------------------------------------------------------------------------------


class _PeakMemory:
    """Peak memory a way adds: CUDA allocator peak on GPU, else `rss.PeakMemory` (peak RSS over the RSS at `start()`),
    in MB."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda

    def start(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.base_kb = torch.cuda.memory_allocated() / 1024
            return
        self.rss = PeakMemory().__enter__()

    def peak_mb(self) -> float:
        import torch

        if self.cuda:
            return (torch.cuda.max_memory_allocated() / 1024 - self.base_kb) / 1024
        return self.rss.mb()


def _steady(step_tokens: list[int], step_seconds: list[float]) -> dict[str, Any]:
    """Throughput over the steps after the first (all steps when there is only one)."""
    skip = 1 if len(step_tokens) > 1 else 0
    tokens, seconds = sum(step_tokens[skip:]), sum(step_seconds[skip:])
    return {"timed_steps": len(step_tokens) - skip, "timed_tokens": tokens, "tokens_per_s": tokens / seconds,
            "seconds_per_step": seconds / max(1, len(step_tokens) - skip), "warmup_step_s": step_seconds[0]}


def run_ours(args: argparse.Namespace, memory: _PeakMemory, workdir: Path) -> dict[str, Any]:
    from selfrag.training.config import TrainConfig
    from selfrag.training.trainer import train

    _, dataset, _ = _load_dataset(args.model, Path(args.data), args.max_length, Path(args.cache))
    config = TrainConfig(finetune="full", learning_rate=LEARNING_RATE, warmup_ratio=0.0, lr_scheduler="linear",
                         max_steps=args.steps, batch_size=args.batch_size, grad_accum=1, max_grad_norm=1.0,
                         max_length=args.max_length, precision="auto", seed=SEED, save_every_steps=None,
                         log_every_steps=1, resume=False)
    memory.start()
    result = train(args.model, dataset, config, output_dir=workdir / "ours", progress=False)
    peak = memory.peak_mb()
    rows = [h for h in result.history if "loss" in h]
    # One log row per step: `tokens` (unpadded) over `tokens / tokens_per_s` seconds.
    measured = _steady([r["tokens"] for r in rows], [r["tokens"] / r["tokens_per_s"] for r in rows])
    return {**measured, "peak_memory_mb": peak, "final_loss": rows[-1]["loss"], "precision": result.stats["precision"]}


def run_hf_trainer(args: argparse.Namespace, memory: _PeakMemory, workdir: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    tokenizer, dataset, _ = _load_dataset(args.model, Path(args.data), args.max_length, Path(args.cache))
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    keep = {"input_ids", "labels"}
    dataset = dataset.remove_columns([c for c in dataset.column_names if c not in keep | {"length"}])
    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100,
                                 pad_to_multiple_of=8 if cuda else None)
    batch_tokens: list[int] = []

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = pad([{k: v for k, v in f.items() if k in keep} for f in features])
        batch_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    step_ends: list[float] = []

    class StepTimer(TrainerCallback):
        def on_train_begin(self, *_, **__):
            step_ends.append(time.perf_counter())

        def on_step_end(self, *_, **__):
            if cuda:
                torch.cuda.synchronize()
            step_ends.append(time.perf_counter())

    memory.start()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    training_args = TrainingArguments(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
        max_steps=args.steps, learning_rate=LEARNING_RATE, lr_scheduler_type="linear", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=1.0, bf16=bf16, logging_steps=1, save_strategy="no", eval_strategy="no",
        report_to=[], dataloader_num_workers=0, seed=SEED, use_cpu=not cuda, disable_tqdm=True,
        optim="adamw_torch_fused" if cuda else "adamw_torch", remove_unused_columns=False,
        train_sampling_strategy=args.hf_sampler, length_column_name="length",
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=collate)
    trainer.add_callback(StepTimer())
    trainer.train()
    peak = memory.peak_mb()
    # Batches are collated in step order (the loader may fetch one ahead, so there can be one extra).
    seconds = [b - a for a, b in zip(step_ends, step_ends[1:])]
    measured = _steady(batch_tokens[: len(seconds)], seconds)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {**measured, "peak_memory_mb": peak, "final_loss": losses[-1], "precision": "bf16" if bf16 else "fp32"}


def worker(args: argparse.Namespace) -> None:
    import torch

    memory = _PeakMemory(cuda=torch.cuda.is_available())
    with tempfile.TemporaryDirectory(prefix=f"train-bench-{args.worker}-") as tmp:
        run = run_ours if args.worker == "ours" else run_hf_trainer
        result = run(args, memory, Path(tmp))
    Path(args.worker_out).write_text(json.dumps(result) + "\n")


# --- report -----------------------------------------------------------------------------------------------------------


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'way':<12} {'tokens/s':>10} {'s/step':>8} {'peak MB':>9} {'final loss':>10}"]
    for name, way in result["ways"].items():
        lines.append(f"{name:<12} {way['tokens_per_s']:>10.1f} {way['seconds_per_step']:>8.3f} "
                     f"{way['peak_memory_mb']:>9.1f} {way['final_loss']:>10.4f}")
    lines.append(f"ours / hf_trainer: tokens/s x{result['ours_over_hf_tokens_per_s']:.2f}, "
                 f"peak memory x{result['ours_over_hf_peak_memory']:.2f} "
                 f"({result['memory']}; {result['ways']['ours']['timed_steps']} timed step(s) each)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint dir (default: packaged SmolLM2-135M-Instruct + reflection tokens)")
    parser.add_argument("--data", help=f"released-format jsonl (default: {DEFAULT_DATA.relative_to(ROOT)} if present, "
                                       f"else rows cycled from {SAMPLE.relative_to(ROOT)})")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per way (the first is not timed)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per step")
    parser.add_argument("--max-length", type=int, default=2048, help="rows are cut to this many tokens")
    parser.add_argument("--random-init", action="store_true", help="the model's config and tokenizer, random weights")
    parser.add_argument("--hf-sampler", default="random", choices=["random", "group_by_length"],
                        help="the transformers Trainer's sampler (ours always groups by length)")
    parser.add_argument("--json", help="results file (default: benchmarks/results/train_bench_<device>.json)")
    parser.add_argument("--worker", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be >= 1")

    short, full = device_name()
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        workdir = Path(tmp)
        checkpoint = _checkpoint(args)
        model = _random_init_copy(checkpoint, workdir / "model") if args.random_init else checkpoint
        data, data_origin = _data_file(args, workdir)
        cache = workdir / "sft-cache"
        _, _, stats = _load_dataset(model, data, args.max_length, cache)  # tokenised once, loaded by both workers
        ways = {}
        for way in WAYS:
            out = workdir / f"{way}.json"
            command = [sys.executable, __file__, "--worker", way, "--worker-out", str(out), "--model", model,
                       "--data", str(data), "--cache", str(cache), "--steps", str(args.steps),
                       "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
                       "--hf-sampler", args.hf_sampler]
            env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
            subprocess.run(command, check=True, env=env)
            ways[way] = json.loads(out.read_text())

    ours, hf = ways["ours"], ways["hf_trainer"]
    result = {
        "device": short, "device_name": full, "model": Path(checkpoint).name, "random_init": args.random_init,
        "data": data_origin, "rows": stats.kept, "steps": args.steps, "batch_size": args.batch_size,
        "max_length": args.max_length, "hf_sampler": args.hf_sampler,
        "memory": "torch.cuda.max_memory_allocated" if short != "cpu" else "peak RSS delta",
        "ways": ways,
        "ours_over_hf_tokens_per_s": ours["tokens_per_s"] / hf["tokens_per_s"],
        "ours_over_hf_peak_memory": ours["peak_memory_mb"] / max(hf["peak_memory_mb"], 1e-9),
    }
    print(format_table(result))
    path = Path(args.json) if args.json else ROOT / "benchmarks" / "results" / f"train_bench_{short}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()

"""The SFT training loop: full or LoRA fine-tuning of a causal LM on masked SFT data, on `accelerate`, resumable.

One loop serves the critic and the generator. It runs on one device by default and unchanged under
`accelerate launch` (DDP; FSDP/DeepSpeed through accelerate's configs). What it does beyond a plain loop:

- The 15 reflection tokens are added to the base if missing (rows initialised from descriptions of the tokens) and
  their embedding rows, input and output side, are trained in both modes; in LoRA mode through peft's
  `trainable_token_indices` (see `build_model`), everything else of the base frozen.
- The loss is computed at supervised positions only: the decoder's hidden states at positions whose next label is not
  -100 are gathered and only those go through the LM head, so the [batch, seq, vocab] logits tensor (the main cost for
  a large vocabulary when prompts and passages are masked) is never materialised. The loss is the token-weighted mean
  over a whole optimizer step (all micro-batches, all processes), optionally with per-token loss weights.
- Batches are grouped by length (sorted within shuffled mega-batches) to cut padding; the order is a pure function of
  the seed and the epoch, so a resumed run sees exactly the batches an uninterrupted run would.
- Checkpoints (`output_dir/checkpoints/step-N`: weights or adapter weights, optimizer, scheduler, RNG states, step)
  are written to a temporary directory and renamed; a re-run with the same output_dir resumes from the latest one
  and ends with the same weights as an uninterrupted run.

The parts have their own modules in `selfrag.training`: `config` (`TrainConfig`), `batching` (the data order and the
padded batches), `loss` (the supervised-positions loss) and `checkpoints` (checkpoints, the settings a resumption must
match, `final/`). This module builds the model and runs the loop.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfrag.io import InputError, append_jsonl, read_jsonl, write_jsonl_atomic, write_text_atomic
from selfrag.models.reflection import add_reflection_tokens, reflection_token_ids
from selfrag.training.batching import Schedule, collate, row_stats
from selfrag.training.checkpoints import (
    StateFilter,
    check_or_write_run,
    dataset_fingerprint,
    list_checkpoints,
    run_settings,
    save_checkpoint,
    save_final,
)
from selfrag.training.config import TrainConfig, resolve_precision
from selfrag.training.loss import SupervisedLossModule

log = logging.getLogger(__name__)

_LOG_FILE = "train_log.jsonl"
_SUMMARY_FILE = "train_summary.json"


# --------------------------------------------------------------------------------------------------------------------
# Model


def _base_dtype(base_model_dir: str | os.PathLike[str]) -> torch.dtype:
    """The dtype the base checkpoint is stored in (float32 when the config does not say)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_model_dir)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _module_name(model: Any, module: Any) -> str:
    return next(name for name, candidate in model.named_modules() if candidate is module)


def build_model(base_model_dir: str | os.PathLike[str], config: TrainConfig) -> tuple[Any, Any, list[int]]:
    """Load the base for training: reflection tokens added if missing, LoRA applied in LoRA mode.

    Returns (model, tokenizer, trainable token ids). The trainable token ids are the 15 reflection tokens' ids; their
    rows of the input embedding and of the LM head are trained in both modes.

    LoRA mode uses peft's `trainable_token_indices`, which wraps the embedding in a `TrainableTokensWrapper` holding
    a trainable copy of just those rows. With tied embeddings peft wraps the LM head too and makes that wrapper share
    the embedding's row parameter, so one set of rows is trained and used on both sides (as tying means). With untied
    embeddings both modules are named explicitly and each gets its own trainable rows. All other base weights are
    frozen; LoRA adapters and token rows are kept in float32 even on a bf16 base.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    precision = resolve_precision(config.precision)
    # Full fine-tuning keeps fp32 master weights (autocast does the bf16 compute); a frozen LoRA base can stay bf16.
    load_dtype = torch.bfloat16 if config.finetune == "lora" and precision == "bf16" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=load_dtype)
    added = add_reflection_tokens(model, tokenizer)
    if added:
        log.info("added %d reflection tokens to %s", added, base_model_dir)
    token_ids = sorted(reflection_token_ids(tokenizer, source=str(base_model_dir)).values())
    model.config.use_cache = False
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.finetune == "full":
        model.requires_grad_(True)
        return model, tokenizer, token_ids

    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("finetune=lora needs peft: pip install peft") from err
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    if head is None or head.weight is embedding.weight:
        token_indices: list[int] | dict[str, list[int]] = token_ids
    else:
        token_indices = {_module_name(model, embedding): token_ids, _module_name(model, head): token_ids}
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules, trainable_token_indices=token_indices, task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    if config.init_adapter:
        _start_from_adapter(model, Path(config.init_adapter).expanduser())
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    return model, tokenizer, token_ids


def _start_from_adapter(model: Any, adapter: Path) -> None:
    """Load `adapter`'s LoRA weights and reflection-token rows into the fresh peft `model` (`init_adapter`).

    The adapter's LoRA shape must be the run's (r, alpha, target modules) and every tensor it holds must land in the
    model: anything else is refused by name, before training starts. Its tensors are stored in the base's dtype, so
    on a bf16 base the run starts from the bf16-rounded weights (as the adapter is evaluated).
    """
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    saved = json.loads((adapter / "adapter_config.json").read_text())  # its presence checked by TrainConfig
    ours = model.peft_config["default"]

    def comparable(value: Any) -> Any:  # target modules: a list in the file, a set once peft resolved them
        return sorted(value) if isinstance(value, (list, set, tuple)) else value

    differ = [f"{key} {saved.get(key)!r} vs {value!r}" for key, value in
              (("r", ours.r), ("lora_alpha", ours.lora_alpha), ("target_modules", ours.target_modules))
              if comparable(saved.get(key)) != comparable(value)]
    if differ:
        raise InputError(f"finetune.init_adapter={adapter}: its LoRA settings are not this run's ({'; '.join(differ)});"
                         " set finetune.lora_r / lora_alpha / lora_target_modules to the adapter's")
    try:
        loaded = set_peft_model_state_dict(model, load_peft_weights(str(adapter), device="cpu"))
    except RuntimeError as err:  # a shape mismatch: another base or vocabulary
        raise InputError(f"finetune.init_adapter={adapter}: its tensors do not fit this base ({err}); continue from "
                         "an adapter trained on the same base") from None
    except KeyError as err:  # peft looks up some tensors (the token rows) by name
        raise InputError(f"finetune.init_adapter={adapter}: it does not hold this run's trained tensors (e.g. "
                         f"{err.args[0]}); continue from an adapter of the same setup") from None
    unset = sorted({name for name, p in model.named_parameters() if p.requires_grad} & set(loaded.missing_keys))
    stray = loaded.unexpected_keys
    if unset or stray:
        raise InputError(f"finetune.init_adapter={adapter}: it does not hold this run's trained tensors "
                         f"({len(unset)} missing, {len(stray)} without a place, e.g. {(unset or stray)[0]}); continue "
                         "from an adapter of the same setup")
    log.info("starting from the adapter %s", adapter)


# --------------------------------------------------------------------------------------------------------------------
# The loop's parts


def _make_accelerator(mixed_precision: str) -> Any:
    """An `Accelerator` for this run (scheduler stepped once per optimizer step: our steps are global steps).

    accelerate keeps its state in a per-process singleton that refuses a second, different precision. In a single,
    non-distributed process (a notebook or a test session training twice) that state is reset so each `train` call
    gets the precision it asks for; under `accelerate launch` it is left alone.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    state = AcceleratorState._shared_state
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if state and not distributed and str(state.get("_mixed_precision", mixed_precision)) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return Accelerator(mixed_precision=mixed_precision, step_scheduler_with_optimizer=False)


def _configure_deepspeed(accelerator: Any, config: TrainConfig) -> bool:
    """Under DeepSpeed, fill the config values the loop decides; return whether DeepSpeed is in use.

    The loop makes its own micro-batches and accumulates `grad_accum` of them per step, telling DeepSpeed where each
    step ends, so DeepSpeed's `gradient_accumulation_steps` must stay 1 (any other value would also scale the loss a
    second time). `train_micro_batch_size_per_gpu` only feeds DeepSpeed's bookkeeping; gradient clipping, which
    DeepSpeed does itself, follows `max_grad_norm`. Values the config file sets explicitly are kept.
    """
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None:
        return False
    ds = plugin.deepspeed_config
    if ds.get("gradient_accumulation_steps", "auto") not in ("auto", 1):
        raise InputError(
            f"the DeepSpeed config sets gradient_accumulation_steps={ds['gradient_accumulation_steps']}; set it to "
            "auto (or 1) and use finetune.grad_accum: the trainer accumulates gradients itself"
        )
    ds["gradient_accumulation_steps"] = 1
    if ds.get("train_micro_batch_size_per_gpu", "auto") == "auto":
        ds["train_micro_batch_size_per_gpu"] = config.batch_size or 1
    if ds.get("train_batch_size", "auto") == "auto":
        ds["train_batch_size"] = ds["train_micro_batch_size_per_gpu"] * accelerator.num_processes
    if ds.get("gradient_clipping", "auto") == "auto":
        ds["gradient_clipping"] = float(config.max_grad_norm or 0.0)
    return True


#: Name fragment of peft's trainable reflection-token rows (`trainable_token_indices` in `build_model`).
TOKEN_ROWS = "trainable_tokens_delta"


def _make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW over the trainable weights: matrices with weight decay, vectors without, and the reflection-token rows
    in a group of their own at `token_learning_rate` when set (the scheduler scales every group alike)."""
    decay, no_decay, token_rows = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if config.token_learning_rate is not None and TOKEN_ROWS in name:
            token_rows.append(parameter)
        else:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if token_rows:
        groups.append({"params": token_rows, "weight_decay": 0.0, "lr": config.token_learning_rate})
    groups = [g for g in groups if g["params"]]
    # The fused kernel is the fastest where it exists (CUDA); elsewhere the multi-tensor (foreach) one.
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8, **fast)


def _evaluate(accelerator: Any, model: Any, dataset: Any, config: TrainConfig, pad_id: int, multiple: int) -> float:
    """Mean token cross-entropy (unweighted) on `dataset`, computed in length-sorted batches across processes."""
    lengths, _, _ = row_stats(dataset, max_length=config.max_length)
    order = np.argsort(-lengths, kind="stable").tolist()
    size = config.batch_size or max(1, config.max_batch_tokens // max(1, int(lengths.max())))
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    processes, rank = accelerator.num_processes, accelerator.process_index
    per_process = -(-len(batches) // processes)
    totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    model.eval()
    with torch.no_grad():
        for k in range(per_process):
            j = rank + k * processes
            # Processes with fewer batches run a dummy one (counted 0) so collective ops stay in step.
            batch = collate(dataset[batches[j if j < len(batches) else 0]], pad_id, config.max_length, multiple,
                             accelerator.device)
            batch["loss_weights"] = None
            _, _, ce_sum, count = model(**batch)
            if j < len(batches):
                totals += torch.stack([ce_sum.double(), count.double()])
    model.train()
    totals = accelerator.reduce(totals, reduction="sum")
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


# --------------------------------------------------------------------------------------------------------------------
# The loop


@dataclass
class TrainResult:
    """What `train` produced: the final model directory, the logged history and summary statistics."""

    final_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Paths:
    """Where a run in `output_dir` writes."""

    output_dir: Path

    @property
    def checkpoints(self) -> Path:
        return self.output_dir / "checkpoints"

    @property
    def snapshots(self) -> Path:
        return self.output_dir / "snapshots"

    @property
    def log(self) -> Path:
        return self.output_dir / _LOG_FILE

    @property
    def final(self) -> Path:
        return self.output_dir / "final"

    @property
    def summary(self) -> Path:
        return self.output_dir / _SUMMARY_FILE

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.log) if self.log.is_file() else []


@dataclass
class _Run:
    """What the loop works with, set up once by `_prepare`: the prepared model, optimizer and schedule, the data."""

    accelerator: Any
    config: TrainConfig
    dataset: Any
    lengths: np.ndarray
    row_weights: np.ndarray
    row_counts: np.ndarray
    model: Any  # the trained model itself (for parameter counts); `wrapped` is what accelerate prepared
    wrapped: Any
    optimizer: Any
    scheduler: Any
    schedule: Schedule
    total_steps: int
    deepspeed: bool
    pad_id: int
    multiple: int

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


class _Window:
    """Totals of the steps since the last `train_log.jsonl` row."""

    def __init__(self, device: Any) -> None:
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.reset()

    def reset(self) -> None:
        self.loss = torch.zeros_like(self.loss)
        self.weight, self.tokens, self.supervised, self.start = 0.0, 0, 0, time.perf_counter()


def train(
    base_model_dir: str | os.PathLike[str],
    train_dataset: Any,
    config: TrainConfig,
    *,
    output_dir: str | os.PathLike[str],
    eval_dataset: Any = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune `base_model_dir` on `train_dataset` (from `load_sft_dataset`) and write `output_dir/final/`.

    The dataset must be tokenised with the base's tokenizer plus the reflection tokens
    (`selfrag.training.sft_data.load_training_tokenizer`), whose ids this function gives the model.

    Output: full mode -> `final/` is a normal HF checkpoint with its tokenizer; LoRA -> `final/` is a peft adapter
    (LoRA weights and the trained reflection-token rows, in the base dtype), the tokenizer, and `selfrag_adapter.json`
    naming the base directory (`selfrag.models.adapters.merged_checkpoint` turns it into a plain checkpoint).
    Also written: `train_log.jsonl` (one row per `log_every_steps`: step, epoch, loss, lr, tokens_per_s, tokens (the
    unpadded tokens of the steps since the previous row), supervised_tokens; eval rows: step, eval_loss),
    `checkpoints/step-N/`, `train_run.json` (settings a resumption must match), `train_summary.json`.

    Raises:
        InputError: bad config, empty data, or an output_dir holding a run with other settings.
    """
    from accelerate.utils import set_seed

    base_model_dir = Path(base_model_dir).expanduser().resolve()
    paths = _Paths(Path(output_dir))
    if not (base_model_dir / "config.json").is_file():
        raise InputError(f"{base_model_dir}: not a model checkpoint directory (no config.json); check the base path")
    if len(train_dataset) == 0:
        raise InputError("the training dataset is empty (every row was dropped?); check the data and max_length")
    precision = resolve_precision(config.precision)
    accelerator = _make_accelerator("bf16" if precision == "bf16" else "no")

    lengths, row_weights, row_counts = row_stats(train_dataset, max_length=config.max_length)
    settings = run_settings(base_model_dir, config, dataset_fingerprint(train_dataset, lengths, row_weights))
    latest = _claim_output_dir(accelerator, paths, settings, config)
    if config.resume and paths.summary.is_file() and paths.final.is_dir():
        log.info("%s already holds the finished run; nothing to do", paths.output_dir)
        return TrainResult(final_dir=paths.final, history=paths.history(), stats=json.loads(paths.summary.read_text()))

    set_seed(config.seed)
    base_dtype = _base_dtype(base_model_dir)
    model, tokenizer, token_ids = build_model(base_model_dir, config)
    _check_vocabulary(train_dataset, tokenizer)
    run = _prepare(accelerator, model, tokenizer, config, train_dataset, (lengths, row_weights, row_counts))
    start_step = _resume(run, latest, paths)
    started = time.perf_counter()

    def snapshot(step: int) -> None:
        save_final(accelerator, run.wrapped, tokenizer, config, base_model_dir, base_dtype, token_ids,
                   paths.snapshots / f"step-{step}")

    eval_loss = _loop(run, paths, start_step, eval_dataset, progress, snapshot)

    if eval_dataset is not None:
        eval_loss = _evaluate(accelerator, run.wrapped, eval_dataset, config, run.pad_id, run.multiple)
        if run.main:
            append_jsonl(paths.log, [{"step": run.total_steps, "eval_loss": eval_loss}])
    save_final(accelerator, run.wrapped, tokenizer, config, base_model_dir, base_dtype, token_ids, paths.final)
    history = paths.history()
    stats = {
        "steps": run.total_steps, "resumed_from_step": start_step, "seconds": time.perf_counter() - started,
        "examples": len(train_dataset), "epochs": run.schedule.locate(run.total_steps - 1)[0] + 1,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_parameters": sum(p.numel() for p in model.parameters()), "eval_loss": eval_loss,
        "precision": precision, "processes": accelerator.num_processes,
    }
    if run.main:
        write_text_atomic(paths.summary, json.dumps(stats, indent=2) + "\n")
    accelerator.free_memory()
    return TrainResult(final_dir=paths.final, history=history, stats=stats)


def _claim_output_dir(
    accelerator: Any, paths: _Paths, settings: dict[str, Any], config: TrainConfig
) -> tuple[int, Path] | None:
    """Make `output_dir` this run's: start over there unless resuming, check or record the run's settings.

    Returns the latest complete checkpoint as (step, path) when resuming from one, else None.
    """
    checkpoints = list_checkpoints(paths.checkpoints) if config.resume else []
    latest = checkpoints[-1] if checkpoints else None
    if accelerator.is_main_process:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        if not config.resume:
            shutil.rmtree(paths.checkpoints, ignore_errors=True)
            paths.log.unlink(missing_ok=True)
            paths.summary.unlink(missing_ok=True)
        finished = (paths.final / "config.json").is_file() or (paths.final / "adapter_config.json").is_file()
        check_or_write_run(paths.output_dir, settings, resuming=config.resume and (latest is not None or finished))
    accelerator.wait_for_everyone()
    return latest


def _check_vocabulary(dataset: Any, tokenizer: Any) -> None:
    """Refuse data tokenised for another vocabulary (checked on its first 64 rows)."""
    vocab = len(tokenizer)
    sample_max = max(max(dataset[i]["input_ids"]) for i in range(min(len(dataset), 64)))
    if sample_max >= vocab:
        raise InputError(f"the training data has token id {sample_max} but the model's vocabulary has {vocab}; "
                         "tokenise with load_training_tokenizer(base_model_dir) of this base")


def _prepare(
    accelerator: Any,
    model: Any,
    tokenizer: Any,
    config: TrainConfig,
    dataset: Any,
    stats: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> _Run:
    """Put the model, its optimizer and LR schedule through `accelerator.prepare`; plan the steps."""
    from transformers import get_scheduler

    model.to(accelerator.device)
    model.train()
    wrapped = SupervisedLossModule(model)
    schedule = Schedule(stats[0], config, accelerator.num_processes)
    total_steps = schedule.total_steps()
    optimizer = _make_optimizer(wrapped, config, accelerator.device)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=math.ceil(config.warmup_ratio
                              * total_steps), num_training_steps=total_steps)
    deepspeed = _configure_deepspeed(accelerator, config)
    wrapped, optimizer, scheduler = accelerator.prepare(wrapped, optimizer, scheduler)
    state_filter = StateFilter(trainable_only=config.finetune == "lora")
    accelerator.register_save_state_pre_hook(state_filter.save)
    accelerator.register_load_state_pre_hook(state_filter.load)
    return _Run(
        accelerator=accelerator, config=config, dataset=dataset, lengths=stats[0], row_weights=stats[1],
        row_counts=stats[2], model=model, wrapped=wrapped, optimizer=optimizer, scheduler=scheduler,
        schedule=schedule, total_steps=total_steps, deepspeed=deepspeed,
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        multiple=8 if accelerator.device.type == "cuda" else 1,
    )


def _resume(run: _Run, latest: tuple[int, Path] | None, paths: _Paths) -> int:
    """Load the checkpoint `latest` (if any) and return the step to start from."""
    start_step = 0
    if latest is not None:
        start_step, path = latest
        log.info("resuming from %s", path)
        run.accelerator.load_state(str(path))
        if run.main and paths.log.is_file():  # rows logged after that checkpoint by the interrupted run are redone
            write_jsonl_atomic(paths.log, [r for r in read_jsonl(paths.log) if r["step"] <= start_step])
    return min(start_step, run.total_steps)


def _loop(run: _Run, paths: _Paths, start_step: int, eval_dataset: Any, progress: bool,
          snapshot: Callable[[int], None]) -> float | None:
    """Run the optimizer steps from `start_step` on, logging, evaluating, checkpointing and calling `snapshot(step)`
    at `config.snapshot_steps` on the way.

    Returns the latest eval loss (None when there was no evaluation during the loop).
    """
    from tqdm.auto import tqdm

    config, total_steps = run.config, run.total_steps
    bar = tqdm(total=total_steps, initial=start_step, disable=not (progress and run.main), desc="training",
               unit="step")
    window = _Window(run.accelerator.device)
    eval_loss = None
    for step in range(start_step, total_steps):
        epoch, index = run.schedule.locate(step)
        micro_batches = run.schedule.steps_of(epoch)[index]
        lr = _optimizer_step(run, micro_batches, window)
        done = step + 1
        window.tokens += int(sum(run.lengths[i] for mb in micro_batches for i in mb))
        window.supervised += int(sum(run.row_counts[i] for mb in micro_batches for i in mb))
        bar.update(1)
        if done % config.log_every_steps == 0 or done == total_steps:
            epoch_position = round(epoch + (index + 1) / len(run.schedule.steps_of(epoch)), 4)
            row = _log_row(run, window, done, epoch_position, lr)
            if run.main:
                append_jsonl(paths.log, [row])
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
            window.reset()
        if eval_dataset is not None and config.eval_every_steps and done % config.eval_every_steps == 0 \
                and done < total_steps:
            eval_loss = _evaluate(run.accelerator, run.wrapped, eval_dataset, config, run.pad_id, run.multiple)
            if run.main:
                append_jsonl(paths.log, [{"step": done, "eval_loss": eval_loss}])
        if done in (config.snapshot_steps or ()) and done < total_steps:
            snapshot(done)
        if config.save_every_steps and done % config.save_every_steps == 0 and done < total_steps:
            save_checkpoint(run.accelerator, paths.checkpoints, done, (epoch, index + 1), config.keep_checkpoints)
    bar.close()
    return eval_loss


def _optimizer_step(run: _Run, micro_batches: list[list[int]], window: _Window) -> float:
    """One optimizer step over this process's share of `micro_batches`; returns the learning rate it used.

    The loss is the token-weighted mean over the whole step (all micro-batches, all processes), optionally with
    per-token loss weights; the step's weight and loss are added to `window`.
    """
    accelerator, wrapped, config = run.accelerator, run.wrapped, run.config
    processes, rank = accelerator.num_processes, accelerator.process_index
    step_weight = float(sum(run.row_weights[i] for mb in micro_batches for i in mb))
    for j, rows in enumerate(mine := micro_batches[rank::processes]):
        if run.deepspeed:
            # DeepSpeed steps its engine inside `backward` unless told the micro-batch is not the step's last one
            # (accelerate's own flag, the one `Accelerator.accumulate` sets).
            accelerator.gradient_state._set_sync_gradients(j == len(mine) - 1)
        batch = collate(run.dataset[rows], run.pad_id, config.max_length, run.multiple, accelerator.device)
        # Gradients are all-reduced once per step, after the last micro-batch.
        with nullcontext() if j == len(mine) - 1 else accelerator.no_sync(wrapped):
            weighted, _, _, _ = wrapped(**batch)
            # DDP averages gradients over processes; scaling by their count makes the result the gradient of
            # the token-weighted mean over the whole step.
            accelerator.backward(weighted * (processes / max(step_weight, 1e-12)))
        window.loss += weighted.detach().double()
    if config.max_grad_norm:
        accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm)
    lr = run.scheduler.get_last_lr()[0]  # the rate this step used (logged), before the schedule moves on
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    window.weight += step_weight
    return lr


def _log_row(run: _Run, window: _Window, done: int, epoch: float, lr: float) -> dict[str, Any]:
    """The `train_log.jsonl` row of the steps in `window` (the loss summed over all processes)."""
    loss = float(run.accelerator.reduce(window.loss, reduction="sum")) / max(window.weight, 1e-12)
    seconds = time.perf_counter() - window.start
    return {"step": done, "epoch": epoch, "loss": loss, "lr": lr, "tokens_per_s": window.tokens / seconds,
            "tokens": window.tokens, "supervised_tokens": window.supervised}

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
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfrag.io import InputError, append_jsonl, read_jsonl, write_jsonl_atomic, write_text_atomic
from selfrag.models.adapters import ADAPTER_INFO
from selfrag.models.reflection import add_reflection_tokens, reflection_token_ids
from selfrag.training.sft_data import IGNORE_INDEX

log = logging.getLogger(__name__)

FINETUNE_MODES = ("full", "lora")
LR_SCHEDULERS = ("linear", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")

#: Config fields that may change between a run and its resumption (they do not change the weights).
_RESUMABLE_CHANGES = ("save_every_steps", "keep_checkpoints", "log_every_steps", "eval_every_steps", "resume")

_STATE_FILE = "trainer_state.json"
_RUN_FILE = "train_run.json"
_LOG_FILE = "train_log.jsonl"


@dataclass
class TrainConfig:
    """Settings of one SFT run (defaults follow the paper's generator recipe where it has one).

    Attributes:
        finetune: "full" (all weights) or "lora" (peft LoRA adapters + the reflection-token rows).
        lora_r, lora_alpha, lora_dropout, lora_target_modules: LoRA settings ("all-linear": every linear layer but
            the LM head).
        learning_rate, weight_decay, warmup_ratio, lr_scheduler: AdamW and its schedule (warmup = ceil(ratio * steps)).
        num_epochs: passes over the data; ignored when `max_steps` is set (the data is then cycled as needed).
        max_steps: optimizer steps to run, or None for `num_epochs` epochs.
        batch_size: sequences per micro-batch (None: limited by `max_batch_tokens` only).
        max_batch_tokens: padded tokens per micro-batch (None: limited by `batch_size` only).
        grad_accum: micro-batches per optimizer step and process.
        max_grad_norm: gradient clipping (None: off).
        max_length: sequences longer than this are cut from the right when batched (the data is normally already
            built with this limit by `load_sft_dataset`).
        gradient_checkpointing: recompute activations in backward to save memory.
        precision: "bf16" (autocast; fp32 master weights in full mode), "fp32", or "auto" (bf16 where CUDA supports
            it, else fp32).
        seed: seeds the weights' random init (LoRA), dropout and the data order.
        save_every_steps: checkpoint interval (None: no intermediate checkpoints).
        keep_checkpoints: how many of the latest checkpoints to keep.
        log_every_steps: interval of `train_log.jsonl` rows.
        eval_every_steps: evaluate on `eval_dataset` every N steps (None: only at the end).
        length_group_size: micro-batches per length-sorted mega-batch.
        resume: continue from the latest checkpoint in output_dir (False: start over, deleting old checkpoints).
    """

    finetune: str = "full"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = "all-linear"
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: str = "linear"
    num_epochs: int = 3
    max_steps: int | None = None
    batch_size: int | None = 8
    max_batch_tokens: int | None = None
    grad_accum: int = 16
    max_grad_norm: float | None = 1.0
    max_length: int = 2048
    gradient_checkpointing: bool = False
    precision: str = "auto"
    seed: int = 42
    save_every_steps: int | None = 500
    keep_checkpoints: int = 2
    log_every_steps: int = 10
    eval_every_steps: int | None = None
    length_group_size: int = 64
    resume: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.finetune in FINETUNE_MODES, f"finetune={self.finetune!r}; choose one of {FINETUNE_MODES}"),
            (self.lr_scheduler in LR_SCHEDULERS, f"lr_scheduler={self.lr_scheduler!r}; choose one of {LR_SCHEDULERS}"),
            (self.precision in PRECISIONS, f"precision={self.precision!r}; choose one of {PRECISIONS}"),
            (self.batch_size is not None or self.max_batch_tokens is not None,
             "set batch_size and/or max_batch_tokens"),
            (self.batch_size is None or self.batch_size >= 1, f"batch_size={self.batch_size}: must be >= 1"),
            (self.max_batch_tokens is None or self.max_batch_tokens >= 1,
             f"max_batch_tokens={self.max_batch_tokens}: must be >= 1"),
            (self.grad_accum >= 1, f"grad_accum={self.grad_accum}: must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps={self.max_steps}: must be >= 1 or null"),
            (self.max_steps is not None or self.num_epochs >= 1, f"num_epochs={self.num_epochs}: must be >= 1"),
            (self.save_every_steps is None or self.save_every_steps >= 1,
             f"save_every_steps={self.save_every_steps}: must be >= 1 or null"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints={self.keep_checkpoints}: must be >= 1"),
            (self.log_every_steps >= 1, f"log_every_steps={self.log_every_steps}: must be >= 1"),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio={self.warmup_ratio}: must be in [0, 1)"),
            (self.max_length >= 2, f"max_length={self.max_length}: must be >= 2"),
            (self.length_group_size >= 1, f"length_group_size={self.length_group_size}: must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"training config: {message}")


@dataclass
class TrainResult:
    """What `train` produced: the final model directory, the logged history and summary statistics."""

    final_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------------
# The loss


def supervised_loss(
    causal_lm: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    loss_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy of `causal_lm` at the supervised positions only.

    Labels are unshifted (`labels[:, t]` is the target of the prediction made at position t-1), -100 where ignored.
    Runs the decoder, gathers the hidden states at positions whose next label is supervised, and applies the LM head
    to those rows only. `causal_lm` is a transformers `*ForCausalLM` (for a peft model, its `get_base_model()`).

    Returns:
        (Σ w·CE, Σ w, Σ CE, number of supervised positions), w = `loss_weights` (1 where not given).
        `Σ w·CE / Σ w` equals `causal_lm(input_ids, attention_mask=..., labels=labels).loss` when no weights are given.
    """
    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][keep]).float()
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if softcap:  # models whose forward caps logits (e.g. Gemma 2) must be scored the same way here
        logits = torch.tanh(logits / softcap) * softcap
    ce = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="none")
    weights = loss_weights[:, 1:][keep].to(ce.dtype) if loss_weights is not None else torch.ones_like(ce)
    return (ce * weights).sum(), weights.sum(), ce.detach().sum(), keep.sum()


class _SupervisedLossModule(torch.nn.Module):
    """Wraps the trained model so `accelerate.prepare` (DDP/FSDP/autocast) sees one forward that returns the loss."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels, loss_weights=None):
        causal_lm = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return supervised_loss(causal_lm, input_ids, attention_mask, labels, loss_weights)


# --------------------------------------------------------------------------------------------------------------------
# Model


def _resolve_precision(precision: str) -> str:
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return precision


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

    precision = _resolve_precision(config.precision)
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
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    return model, tokenizer, token_ids


# --------------------------------------------------------------------------------------------------------------------
# Data order


def plan_epoch(
    lengths: np.ndarray,
    *,
    seed: int,
    epoch: int,
    batch_size: int | None,
    max_batch_tokens: int | None,
    group_size: int,
) -> list[list[int]]:
    """The micro-batches (lists of row indices) of one epoch, a pure function of the arguments.

    Rows are shuffled, cut into mega-batches of about `group_size` micro-batches, sorted by length (longest first)
    within each, and packed greedily into micro-batches of at most `batch_size` rows and `max_batch_tokens` padded
    tokens (a single longer row forms its own batch). The micro-batches are then shuffled so consecutive steps mix
    lengths.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    rows_per_batch = batch_size or max(1, max_batch_tokens // max(1, int(np.mean(lengths))))
    mega = rows_per_batch * group_size
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        current: list[int] = []
        longest = 0
        for index in chunk.tolist():
            longest_with = max(longest, int(lengths[index]))
            full = (batch_size is not None and len(current) + 1 > batch_size) or (
                max_batch_tokens is not None and (len(current) + 1) * longest_with > max_batch_tokens
            )
            if current and full:
                batches.append(current)
                current, longest_with = [], int(lengths[index])
            current.append(index)
            longest = longest_with
        if current:
            batches.append(current)
    return [batches[k] for k in rng.permutation(len(batches)).tolist()]


class _Schedule:
    """Maps a global optimizer step to its epoch and micro-batches; identical on every process."""

    def __init__(self, lengths: np.ndarray, config: TrainConfig, num_processes: int) -> None:
        self.lengths = lengths
        self.config = config
        self.num_processes = num_processes
        self.per_step = config.grad_accum * num_processes
        self._epochs: dict[int, list[list[list[int]]]] = {}

    def steps_of(self, epoch: int) -> list[list[list[int]]]:
        if epoch not in self._epochs:
            c = self.config
            micro = plan_epoch(self.lengths, seed=c.seed, epoch=epoch, batch_size=c.batch_size,
                               max_batch_tokens=c.max_batch_tokens, group_size=c.length_group_size)
            # Every process must run the same number of micro-batches per step; the few left over are skipped.
            micro = micro[: len(micro) - len(micro) % self.num_processes]
            if not micro:
                raise InputError(f"the training data ({len(self.lengths)} rows) is smaller than one micro-batch per "
                                 f"process ({self.num_processes} processes)")
            self._epochs[epoch] = [micro[i : i + self.per_step] for i in range(0, len(micro), self.per_step)]
        return self._epochs[epoch]

    def total_steps(self) -> int:
        if self.config.max_steps is not None:
            return self.config.max_steps
        return sum(len(self.steps_of(e)) for e in range(self.config.num_epochs))

    def locate(self, step: int) -> tuple[int, int]:
        """(epoch, index within the epoch) of global step `step` (0-based)."""
        epoch = 0
        while step >= len(self.steps_of(epoch)):
            step -= len(self.steps_of(epoch))
            epoch += 1
        return epoch, step


def _row_stats(dataset: Any, max_length: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row length, loss-weight total and supervised count (of predicted positions, i.e. labels[1:]), for rows cut
    to `max_length` as `_collate` cuts them.

    Read from the `length`/`weight_sum`/`n_supervised` columns that `load_sft_dataset` writes, else computed.
    """

    def of(row: dict[str, Any]) -> tuple[int, float, int]:
        end = len(row["input_ids"]) if max_length is None else min(len(row["input_ids"]), max_length)
        supervised = np.asarray(row["labels"][1:end]) != IGNORE_INDEX
        weight = np.asarray(row["loss_weights"][1:end])[supervised].sum() if "loss_weights" in row else supervised.sum()
        return end, float(weight), int(supervised.sum())

    if {"length", "weight_sum", "n_supervised"} <= set(dataset.column_names):
        lengths = np.asarray(dataset["length"], dtype=np.int64)
        weights = np.asarray(dataset["weight_sum"], dtype=np.float64)
        counts = np.asarray(dataset["n_supervised"], dtype=np.int64)
        # Only rows longer than the batching limit need a second look.
        for i in np.flatnonzero(lengths > max_length).tolist() if max_length is not None else []:
            lengths[i], weights[i], counts[i] = of(dataset[i])
        return lengths, weights, counts
    stats = [of(row) for row in dataset]
    return (np.asarray([s[0] for s in stats], dtype=np.int64), np.asarray([s[1] for s in stats], dtype=np.float64),
            np.asarray([s[2] for s in stats], dtype=np.int64))


def _collate(rows: dict[str, list], pad_id: int, max_length: int, multiple: int, device: Any) -> dict[str, Any]:
    """Right-pad a batch (`dataset[indices]`) to its longest row (rounded up to `multiple`)."""
    sequences = [ids[:max_length] for ids in rows["input_ids"]]
    width = max(len(s) for s in sequences)
    width = min(max_length, -(-width // multiple) * multiple) if multiple > 1 else width
    n = len(sequences)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    weights = torch.zeros((n, width), dtype=torch.float32) if "loss_weights" in rows else None
    for i, ids in enumerate(sequences):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(ids)] = torch.tensor(rows["labels"][i][: len(ids)])
        attention[i, : len(ids)] = 1
        if weights is not None:
            weights[i, : len(ids)] = torch.tensor(rows["loss_weights"][i][: len(ids)])
    batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "loss_weights": weights}
    return {k: (v.to(device) if v is not None else None) for k, v in batch.items()}


# --------------------------------------------------------------------------------------------------------------------
# Checkpoints


def _checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under `root`, oldest first (a complete one has its state file)."""
    found = []
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith("step-") and path.name[5:].isdigit() and (path / _STATE_FILE).is_file():
                found.append((int(path.name[5:]), path))
    return sorted(found)


def _fingerprint_dir(directory: Path) -> str:
    """A cheap fingerprint of a checkpoint directory (file names and sizes), to notice a changed base on resume."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(directory)}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _dataset_fingerprint(dataset: Any, lengths: np.ndarray, weights: np.ndarray) -> str:
    import hashlib

    digest = hashlib.sha256(str(getattr(dataset, "_fingerprint", "")).encode())
    digest.update(lengths.tobytes())
    digest.update(weights.tobytes())
    return digest.hexdigest()[:16]


class _StateFilter:
    """accelerate save/load hooks that store only the parameters being trained, each tensor once.

    In LoRA mode that is the adapters and token rows (the frozen base is the base checkpoint, not copied into every
    checkpoint); in full mode all parameters, with tied aliases (embedding = LM head) stored once.
    """

    def __init__(self, trainable_only: bool) -> None:
        self.trainable_only = trainable_only

    def _names(self, model: torch.nn.Module) -> set[str]:
        # named_parameters() lists a tied tensor once; the state dict lists every alias, and persistent buffers.
        names = {n for n, p in model.named_parameters() if p.requires_grad or not self.trainable_only}
        if not self.trainable_only:
            aliases = {n for n, _ in model.named_parameters(remove_duplicate=False)}
            names |= {k for k in model.state_dict() if k not in aliases}
        return names

    def save(self, models: list, weights: list, output_dir: str) -> None:
        for i, model in enumerate(models[: len(weights)]):
            keep = self._names(model)
            weights[i] = OrderedDict((k, v) for k, v in weights[i].items() if k in keep)

    def load(self, models: list, input_dir: str) -> None:
        from safetensors.torch import load_file

        for i, model in enumerate(models):
            path = Path(input_dir) / ("model.safetensors" if i == 0 else f"model_{i}.safetensors")
            state = load_file(str(path), device=str(next(model.parameters()).device))
            missing = self._names(model) - set(state)
            if missing:
                raise InputError(f"{input_dir}: checkpoint lacks {len(missing)} trained tensors (e.g. "
                                 f"{sorted(missing)[0]}); it was written by another setup: delete it or use a new "
                                 "output_dir")
            model.load_state_dict(state, strict=False)
        models.clear()  # loaded here; accelerate must not load them again (strictly) after this hook


# --------------------------------------------------------------------------------------------------------------------
# The loop


def _run_settings(base_model_dir: Path, config: TrainConfig, data_fingerprint: str) -> dict[str, Any]:
    settings = {k: v for k, v in asdict(config).items() if k not in _RESUMABLE_CHANGES}
    return {"base_model_dir": str(base_model_dir), "base_fingerprint": _fingerprint_dir(base_model_dir),
            "data_fingerprint": data_fingerprint, "config": settings}


def _check_or_write_run(output_dir: Path, settings: dict[str, Any], resuming: bool) -> None:
    """Refuse to resume a run whose weights-relevant settings, base or data differ from the saved ones."""
    path = output_dir / _RUN_FILE
    if resuming and path.is_file():
        previous = json.loads(path.read_text())
        if previous != settings:
            old, new = previous.get("config", {}), settings["config"]
            changed = sorted(k for k in new if old.get(k) != new[k])
            changed += [k for k in ("base_model_dir", "base_fingerprint", "data_fingerprint")
                        if previous.get(k) != settings[k]]
            raise InputError(
                f"{output_dir} holds a run with other settings ({', '.join(changed)} differ); use a new output_dir, "
                "or set resume=false to start over there"
            )
    write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def _evaluate(accelerator: Any, model: Any, dataset: Any, config: TrainConfig, pad_id: int, multiple: int) -> float:
    """Mean token cross-entropy (unweighted) on `dataset`, computed in length-sorted batches across processes."""
    lengths, _, _ = _row_stats(dataset, max_length=config.max_length)
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
            batch = _collate(dataset[batches[j if j < len(batches) else 0]], pad_id, config.max_length, multiple,
                             accelerator.device)
            batch["loss_weights"] = None
            _, _, ce_sum, count = model(**batch)
            if j < len(batches):
                totals += torch.stack([ce_sum.double(), count.double()])
    model.train()
    totals = accelerator.reduce(totals, reduction="sum")
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


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


def _make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    # The fused kernel is the fastest where it exists (CUDA); elsewhere the multi-tensor (foreach) one.
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8, **fast)


def _save_final(
    accelerator: Any,
    wrapped: Any,
    tokenizer: Any,
    config: TrainConfig,
    base_model_dir: Path,
    base_dtype: torch.dtype,
    token_ids: list[int],
    target: Path,
) -> None:
    """Write `target` (via a temporary directory and rename): an HF checkpoint, or a peft adapter + its info file."""
    model = accelerator.unwrap_model(wrapped).model
    state = accelerator.get_state_dict(wrapped)  # gathers shards under FSDP/DeepSpeed
    tmp = target.parent / f".tmp-{target.name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        state = {k.removeprefix("model."): v for k, v in state.items()}
        if config.finetune == "full":
            state = {k: (v.to(base_dtype) if v.is_floating_point() else v) for k, v in state.items()}
            model.config.use_cache = True
            model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        else:
            # Only the trained tensors are cast (to the base dtype, so adapters stay small); peft picks them out.
            trained = {p.data_ptr() for p in model.parameters() if p.requires_grad}
            state = {k: (v.to(base_dtype) if v.data_ptr() in trained else v) for k, v in state.items()}
            model.save_pretrained(tmp, state_dict=state, save_embedding_layers=False, safe_serialization=True)
            info = {"base_model_dir": str(base_model_dir), "base_fingerprint": _fingerprint_dir(base_model_dir),
                    "trainable_token_ids": token_ids, "vocab_size": len(tokenizer), "dtype": str(base_dtype)}
            (tmp / ADAPTER_INFO).write_text(json.dumps(info, indent=2) + "\n")
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    accelerator.wait_for_everyone()


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
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    base_model_dir = Path(base_model_dir).expanduser().resolve()
    output_dir = Path(output_dir)
    if not (base_model_dir / "config.json").is_file():
        raise InputError(f"{base_model_dir}: not a model checkpoint directory (no config.json); check the base path")
    if len(train_dataset) == 0:
        raise InputError("the training dataset is empty (every row was dropped?); check the data and max_length")
    precision = _resolve_precision(config.precision)
    accelerator = _make_accelerator("bf16" if precision == "bf16" else "no")
    main = accelerator.is_main_process
    checkpoint_root = output_dir / "checkpoints"
    log_path = output_dir / _LOG_FILE
    final_dir = output_dir / "final"

    lengths, row_weights, row_counts = _row_stats(train_dataset, max_length=config.max_length)
    settings = _run_settings(base_model_dir, config, _dataset_fingerprint(train_dataset, lengths, row_weights))
    latest = _checkpoints(checkpoint_root)[-1] if config.resume and _checkpoints(checkpoint_root) else None
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not config.resume:
            shutil.rmtree(checkpoint_root, ignore_errors=True)
            log_path.unlink(missing_ok=True)
            (output_dir / "train_summary.json").unlink(missing_ok=True)
        finished = (final_dir / "config.json").is_file() or (final_dir / "adapter_config.json").is_file()
        _check_or_write_run(output_dir, settings, resuming=config.resume and (latest is not None or finished))
    accelerator.wait_for_everyone()
    summary_path = output_dir / "train_summary.json"
    if config.resume and summary_path.is_file() and final_dir.is_dir():
        log.info("%s already holds the finished run; nothing to do", output_dir)
        return TrainResult(final_dir=final_dir, history=read_jsonl(log_path) if log_path.is_file() else [],
                           stats=json.loads(summary_path.read_text()))

    set_seed(config.seed)
    base_dtype = _base_dtype(base_model_dir)
    model, tokenizer, token_ids = build_model(base_model_dir, config)
    vocab = len(tokenizer)
    sample_max = max(max(train_dataset[i]["input_ids"]) for i in range(min(len(train_dataset), 64)))
    if sample_max >= vocab:
        raise InputError(f"the training data has token id {sample_max} but the model's vocabulary has {vocab}; "
                         "tokenise with load_training_tokenizer(base_model_dir) of this base")
    model.to(accelerator.device)
    model.train()
    wrapped = _SupervisedLossModule(model)
    schedule = _Schedule(lengths, config, accelerator.num_processes)
    total_steps = schedule.total_steps()
    optimizer = _make_optimizer(wrapped, config, accelerator.device)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=math.ceil(config.warmup_ratio
                              * total_steps), num_training_steps=total_steps)
    deepspeed = _configure_deepspeed(accelerator, config)
    wrapped, optimizer, scheduler = accelerator.prepare(wrapped, optimizer, scheduler)
    state_filter = _StateFilter(trainable_only=config.finetune == "lora")
    accelerator.register_save_state_pre_hook(state_filter.save)
    accelerator.register_load_state_pre_hook(state_filter.load)

    start_step = 0
    if latest is not None:
        start_step, path = latest
        log.info("resuming from %s", path)
        accelerator.load_state(str(path))
        if main and log_path.is_file():  # rows logged after that checkpoint by the interrupted run are redone
            write_jsonl_atomic(log_path, [r for r in read_jsonl(log_path) if r["step"] <= start_step])
    start_step = min(start_step, total_steps)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    multiple = 8 if accelerator.device.type == "cuda" else 1
    processes, rank = accelerator.num_processes, accelerator.process_index
    bar = tqdm(total=total_steps, initial=start_step, disable=not (progress and main), desc="training", unit="step")
    window = {"loss": torch.zeros((), dtype=torch.float64, device=accelerator.device), "weight": 0.0,
              "tokens": 0, "supervised": 0, "start": time.perf_counter()}
    eval_loss = None
    started = time.perf_counter()
    for step in range(start_step, total_steps):
        epoch, index = schedule.locate(step)
        micro_batches = schedule.steps_of(epoch)[index]
        step_weight = float(sum(row_weights[i] for mb in micro_batches for i in mb))
        for j, rows in enumerate(mine := micro_batches[rank::processes]):
            if deepspeed:
                # DeepSpeed steps its engine inside `backward` unless told the micro-batch is not the step's last one
                # (accelerate's own flag, the one `Accelerator.accumulate` sets).
                accelerator.gradient_state._set_sync_gradients(j == len(mine) - 1)
            batch = _collate(train_dataset[rows], pad_id, config.max_length, multiple, accelerator.device)
            # Gradients are all-reduced once per step, after the last micro-batch.
            with nullcontext() if j == len(mine) - 1 else accelerator.no_sync(wrapped):
                weighted, _, _, _ = wrapped(**batch)
                # DDP averages gradients over processes; scaling by their count makes the result the gradient of
                # the token-weighted mean over the whole step.
                accelerator.backward(weighted * (processes / max(step_weight, 1e-12)))
            window["loss"] += weighted.detach().double()
        if config.max_grad_norm:
            accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm)
        lr = scheduler.get_last_lr()[0]  # the rate this step used (logged), before the schedule moves on
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        window["weight"] += step_weight
        window["tokens"] += int(sum(lengths[i] for mb in micro_batches for i in mb))
        window["supervised"] += int(sum(row_counts[i] for mb in micro_batches for i in mb))
        bar.update(1)
        if done % config.log_every_steps == 0 or done == total_steps:
            loss = float(accelerator.reduce(window["loss"], reduction="sum")) / max(window["weight"], 1e-12)
            seconds = time.perf_counter() - window["start"]
            row = {"step": done, "epoch": round(epoch + (index + 1) / len(schedule.steps_of(epoch)), 4),
                   "loss": loss, "lr": lr, "tokens_per_s": window["tokens"] / seconds,
                   "tokens": window["tokens"], "supervised_tokens": window["supervised"]}
            if main:
                append_jsonl(log_path, [row])
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{row['lr']:.2e}")
            window.update(loss=torch.zeros_like(window["loss"]), weight=0.0, tokens=0, supervised=0,
                          start=time.perf_counter())
        if eval_dataset is not None and config.eval_every_steps and done % config.eval_every_steps == 0 \
                and done < total_steps:
            eval_loss = _evaluate(accelerator, wrapped, eval_dataset, config, pad_id, multiple)
            if main:
                append_jsonl(log_path, [{"step": done, "eval_loss": eval_loss}])
        if config.save_every_steps and done % config.save_every_steps == 0 and done < total_steps:
            _save_checkpoint(accelerator, checkpoint_root, done, (epoch, index + 1), config.keep_checkpoints)
    bar.close()

    if eval_dataset is not None:
        eval_loss = _evaluate(accelerator, wrapped, eval_dataset, config, pad_id, multiple)
        if main:
            append_jsonl(log_path, [{"step": total_steps, "eval_loss": eval_loss}])
    _save_final(accelerator, wrapped, tokenizer, config, base_model_dir, base_dtype, token_ids, final_dir)
    history = read_jsonl(log_path) if log_path.is_file() else []
    stats = {
        "steps": total_steps, "resumed_from_step": start_step, "seconds": time.perf_counter() - started,
        "examples": len(train_dataset), "epochs": schedule.locate(total_steps - 1)[0] + 1,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_parameters": sum(p.numel() for p in model.parameters()), "eval_loss": eval_loss,
        "precision": precision, "processes": processes,
    }
    if main:
        write_text_atomic(summary_path, json.dumps(stats, indent=2) + "\n")
    accelerator.free_memory()
    return TrainResult(final_dir=final_dir, history=history, stats=stats)


def _save_checkpoint(accelerator: Any, root: Path, step: int, position: tuple[int, int], keep: int) -> None:
    """Write `root/step-N` atomically (temporary directory, then rename) and prune all but the latest `keep`."""
    tmp = root / f".tmp-step-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # The data position follows from the step (the order is a function of the seed); recorded for people.
        state = {"step": step, "epoch": position[0], "steps_done_in_epoch": position[1]}
        write_text_atomic(tmp / _STATE_FILE, json.dumps(state) + "\n")
        target = root / f"step-{step}"
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        for _, old in _checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def checkpoint_steps(output_dir: str | os.PathLike[str]) -> Sequence[int]:
    """Steps of the complete checkpoints in `output_dir/checkpoints`, oldest first."""
    return [step for step, _ in _checkpoints(Path(output_dir) / "checkpoints")]

"""The settings of one SFT run (`TrainConfig`, built from the Hydra `finetune` group), checked when constructed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfrag.io import InputError

FINETUNE_MODES = ("full", "lora")
LR_SCHEDULERS = ("linear", "cosine", "constant_with_warmup")
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class TrainConfig:
    """Settings of one SFT run (defaults follow the paper's generator recipe where it has one).

    Attributes:
        finetune: "full" (all weights) or "lora" (peft LoRA adapters + the reflection-token rows).
        lora_r, lora_alpha, lora_dropout, lora_target_modules: LoRA settings ("all-linear": every linear layer but
            the LM head).
        learning_rate, weight_decay, warmup_ratio, lr_scheduler: AdamW and its schedule (warmup = ceil(ratio * steps)).
        token_learning_rate: LoRA mode: the learning rate of the reflection-token rows (None: `learning_rate`). The
            rows start untrained, so a low `learning_rate` that keeps the base's weights close (less forgetting)
            would leave the new tokens barely learnt; this lets them move faster on the same schedule.
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
        snapshot_steps: steps after which a loadable copy of the model is written to `output_dir/snapshots/step-N`
            (like `final/`, never pruned): a learning curve from one run. A constant schedule
            (`lr_scheduler=constant_with_warmup`) makes each snapshot what a shorter run would have produced.
        length_group_size: micro-batches per length-sorted mega-batch.
        resume: continue from the latest checkpoint in output_dir (False: start over, deleting old checkpoints).
        init_adapter: LoRA mode: an adapter directory (a LoRA run's `final/`, or a checkpoint made loadable with
            `adapter_from_checkpoint`) whose LoRA weights and reflection-token rows the run starts from instead of
            peft's fresh init; its r, alpha and target modules must be this run's. A new schedule and optimizer start
            with it: a second run continues a first one past its schedule (None: fresh adapters).
    """

    finetune: str = "full"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = "all-linear"
    learning_rate: float = 2e-5
    token_learning_rate: float | None = None
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
    snapshot_steps: list[int] | None = None
    length_group_size: int = 64
    resume: bool = True
    init_adapter: str | None = None

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
            (self.token_learning_rate is None or self.finetune == "lora",
             "token_learning_rate applies to finetune=lora only (full fine-tuning trains every row at learning_rate)"),
            (self.init_adapter is None or self.finetune == "lora",
             "init_adapter applies to finetune=lora only (a full fine-tune starts from its base: point the base at the "
             "model to continue from)"),
            (self.init_adapter is None or (Path(self.init_adapter).expanduser() / "adapter_config.json").is_file(),
             f"init_adapter={self.init_adapter}: not a LoRA adapter directory (no adapter_config.json); point it at "
             "the final/ directory of a finetune=lora run"),
            (self.grad_accum >= 1, f"grad_accum={self.grad_accum}: must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps={self.max_steps}: must be >= 1 or null"),
            (self.max_steps is not None or self.num_epochs >= 1, f"num_epochs={self.num_epochs}: must be >= 1"),
            (self.save_every_steps is None or self.save_every_steps >= 1,
             f"save_every_steps={self.save_every_steps}: must be >= 1 or null"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints={self.keep_checkpoints}: must be >= 1"),
            (self.log_every_steps >= 1, f"log_every_steps={self.log_every_steps}: must be >= 1"),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio={self.warmup_ratio}: must be in [0, 1)"),
            (self.max_length >= 2, f"max_length={self.max_length}: must be >= 2"),
            (all(isinstance(n, int) and n >= 1 for n in self.snapshot_steps or []),
             f"snapshot_steps={self.snapshot_steps}: a list of steps >= 1, or null"),
            (self.length_group_size >= 1, f"length_group_size={self.length_group_size}: must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"training config: {message}")


def resolve_precision(precision: str) -> str:
    """The precision a run uses: `precision`, with "auto" resolved to "bf16" where CUDA supports it, else "fp32"."""
    import torch

    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return precision

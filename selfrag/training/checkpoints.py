"""Checkpoints and the run's record: atomic `checkpoints/step-N` with keep-last-N pruning, the state kept in them,
the settings file a resumption must match (`train_run.json`), and the final model (`final/`).

Checkpoints (`output_dir/checkpoints/step-N`: weights or adapter weights, optimizer, scheduler, RNG states, step) are
written to a temporary directory and renamed; a re-run with the same output_dir resumes from the latest one and ends
with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfrag.fingerprint import FINGERPRINT_MEMO, content_fingerprint, layout_fingerprint
from selfrag.io import InputError, write_text_atomic
from selfrag.models.adapters import ADAPTER_INFO
from selfrag.models.packaged import cache_root
from selfrag.training.config import TrainConfig

#: Config fields that may change between a run and its resumption (they do not change the weights): bookkeeping, and
#: gradient checkpointing (it recomputes the same forward, dropout masks included: a run that ran out of memory
#: resumes with it on).
_RESUMABLE_CHANGES = ("save_every_steps", "keep_checkpoints", "log_every_steps", "eval_every_steps", "snapshot_steps",
                      "resume", "gradient_checkpointing")

_STATE_FILE = "trainer_state.json"
_RUN_FILE = "train_run.json"


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under `root`, oldest first (a complete one has its state file)."""
    found = []
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith("step-") and path.name[5:].isdigit() and (path / _STATE_FILE).is_file():
                found.append((int(path.name[5:]), path))
    return sorted(found)


def checkpoint_steps(output_dir: str | os.PathLike[str]) -> Sequence[int]:
    """Steps of the complete checkpoints in `output_dir/checkpoints`, oldest first."""
    return [step for step, _ in list_checkpoints(Path(output_dir) / "checkpoints")]


def save_checkpoint(accelerator: Any, root: Path, step: int, position: tuple[int, int], keep: int) -> None:
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
        for _, old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


class StateFilter:
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


def dataset_fingerprint(dataset: Any, lengths: np.ndarray, weights: np.ndarray) -> str:
    """A fingerprint of the training data: its `datasets` fingerprint and the rows' lengths and loss weights."""
    import hashlib

    digest = hashlib.sha256(str(getattr(dataset, "_fingerprint", "")).encode())
    digest.update(lengths.tobytes())
    digest.update(weights.tobytes())
    return digest.hexdigest()[:16]


def run_settings(base_model_dir: Path, config: TrainConfig, data_fingerprint: str) -> dict[str, Any]:
    """What `train_run.json` records: the base, its fingerprint, the data's and the weights-relevant config."""
    settings = {k: v for k, v in asdict(config).items() if k not in _RESUMABLE_CHANGES}
    recorded = {"base_model_dir": str(base_model_dir), "base_fingerprint": layout_fingerprint(base_model_dir),
                "data_fingerprint": data_fingerprint, "config": settings}
    if config.init_adapter:  # the weights it starts from, by content: a retrained adapter at the same path differs
        recorded["init_adapter_fingerprint"] = content_fingerprint(Path(config.init_adapter).expanduser(),
                                                                   keep=lambda p: p.name == ADAPTER_WEIGHTS)
    return recorded


def check_or_write_run(output_dir: Path, settings: dict[str, Any], resuming: bool) -> None:
    """Refuse to resume a run whose weights-relevant settings, base or data differ from the saved ones."""
    path = output_dir / _RUN_FILE
    if resuming and path.is_file():
        previous = json.loads(path.read_text())
        # A file written before a setting joined _RESUMABLE_CHANGES still records it: compare without it.
        previous["config"] = {k: v for k, v in previous.get("config", {}).items() if k not in _RESUMABLE_CHANGES}
        if previous != settings:
            old, new = previous.get("config", {}), settings["config"]
            changed = sorted(k for k in new if old.get(k) != new[k])
            recorded = ("base_model_dir", "base_fingerprint", "data_fingerprint", "init_adapter_fingerprint")
            changed += [k for k in recorded if previous.get(k) != settings.get(k)]
            raise InputError(
                f"{output_dir} holds a run with other settings ({', '.join(changed)} differ); use a new output_dir, "
                "or set resume=false to start over there"
            )
    write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def save_final(
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
            # adapter_config.json names the base by its directory name, not this machine's path (the card travels)
            for peft_config in model.peft_config.values():
                peft_config.base_model_name_or_path = base_model_dir.name
            model.save_pretrained(tmp, state_dict=state, save_embedding_layers=False, safe_serialization=True)
            # The base by name and by the hash of its bytes, not by path: merged_checkpoint on another machine checks
            # the base it is given against this fingerprint.
            base_bytes = content_fingerprint(base_model_dir, memo=cache_root() / FINGERPRINT_MEMO)
            info = {"base_model": base_model_dir.name, "base_content_fingerprint": base_bytes,
                    "trainable_token_ids": token_ids, "vocab_size": len(tokenizer), "dtype": str(base_dtype)}
            (tmp / ADAPTER_INFO).write_text(json.dumps(info, indent=2) + "\n")
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    accelerator.wait_for_everyone()


#: The weights file of a peft adapter directory (what `save_final` writes for LoRA).
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def adapter_from_checkpoint(checkpoint: Path, template: Path, target: Path) -> Path:
    """Write `target`: a loadable adapter directory holding a LoRA run's `checkpoints/step-N` weights.

    `template` is an adapter of the same configuration (normally the run's own `final/`); its config, tokenizer and
    `selfrag_adapter.json` are copied, and its tensors say which names and dtypes the adapter file needs. A checkpoint
    keeps the trainable tensors under the training wrapper's names (`model.` + peft's name, with the adapter name
    `.default` in it), in the training precision; they are renamed and cast to the template's dtypes, as `save_final`
    would have written them at that step. Lets a mid-run checkpoint be evaluated like a finished run.

    Raises:
        InputError: `checkpoint` is not a checkpoint, `template` not an adapter, their tensor names or shapes
            differ (another configuration or a full fine-tune), or `target` exists.
    """
    from safetensors.torch import load_file, save_file

    checkpoint, template, target = Path(checkpoint), Path(template), Path(target)
    for path, what in ((checkpoint / "model.safetensors", "a training checkpoint (checkpoints/step-N)"),
                       (template / ADAPTER_WEIGHTS, "an adapter directory (a LoRA run's final/)")):
        if not path.is_file():
            raise InputError(f"{path.parent}: not {what}; no {path.name} in it")
    if target.exists():
        raise InputError(f"{target}: already exists; choose a new directory for the adapter")
    expected = load_file(template / ADAPTER_WEIGHTS)
    state = {k.removeprefix("model.").replace(".default", ""): v
             for k, v in load_file(checkpoint / "model.safetensors").items()}
    differ = sorted(set(state) ^ set(expected)) or sorted(k for k in state if state[k].shape != expected[k].shape)
    if differ:
        raise InputError(f"{checkpoint}: its tensors do not match the adapter {template} ({len(differ)} differ, e.g. "
                         f"{differ[0]}); pass an adapter of the same LoRA run (its final/) as the template")
    state = {k: v.to(expected[k].dtype).contiguous() for k, v in state.items()}
    tmp = target.parent / f".tmp-{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(template, tmp, ignore=shutil.ignore_patterns(ADAPTER_WEIGHTS, "README.md", "train_metrics.json"))
    save_file(state, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    os.replace(tmp, target)
    return target

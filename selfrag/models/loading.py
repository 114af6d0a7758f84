"""Resolving a model setting to a checkpoint directory both backends can load, plus its tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfrag.io import InputError
from selfrag.models.adapters import merged_checkpoint
from selfrag.models.packaged import cache_root, smollm2_checkpoint
from selfrag.models.reflection import checkpoint_with_reflection_tokens

#: Models that ship inside Python packages, by the name `model.packaged` uses.
PACKAGED_MODELS = {"smollm2_135m_instruct": smollm2_checkpoint}


@dataclass(frozen=True)
class ModelSpec:
    """What `conf/model/*.yaml` describes.

    Attributes:
        name: a label for messages and outputs.
        path: a local checkpoint directory or a hub id; None to use `packaged`.
        packaged: a model shipped in a Python package (see PACKAGED_MODELS), used when `path` is None.
        add_reflection_tokens: add the 15 tokens (cached copy of the checkpoint) if the model lacks them; a Self-RAG
            generator already has them, a plain base needs this to be decoded at all.
        adapter: a LoRA adapter directory from `finetune=lora` training (relative paths are relative to the current
            directory); it is merged once into the base given by `path`/`packaged` and the merged checkpoint is
            loaded.
        prompt: the prompt style the model was fine-tuned with ("selfrag" or "chat"), which `prompt=auto` then
            uses; None when unknown (auto then picks the tokenizer's chat template if it has one).
    """

    name: str
    path: str | None = None
    packaged: str | None = None
    add_reflection_tokens: bool = False
    adapter: str | None = None
    prompt: str | None = None


def resolve_checkpoint(spec: ModelSpec, *, cache_dir: Path | None = None) -> str:
    """Return the directory (or hub id) to load for `spec`, converting/adding tokens/merging an adapter once as needed.

    Raises:
        InputError: neither a usable path nor a known packaged model is given.
    """
    cache = cache_dir or cache_root()
    if spec.path:
        source = Path(spec.path).expanduser()
        if not source.is_dir():
            if spec.path.count("/") == 1 and not spec.path.startswith((".", "/", "~")) and not spec.adapter:
                return spec.path  # a hub id: loads where a hub is reachable
            raise InputError(f"model.path={spec.path!r}: no such checkpoint directory")
    elif spec.packaged:
        if spec.packaged not in PACKAGED_MODELS:
            raise InputError(f"model.packaged={spec.packaged!r} is unknown; choose one of {sorted(PACKAGED_MODELS)}")
        source = PACKAGED_MODELS[spec.packaged](cache)
    else:
        raise InputError(f"model {spec.name!r} has neither model.path nor model.packaged; set model.path=DIR")
    if spec.add_reflection_tokens:
        source = checkpoint_with_reflection_tokens(source, cache)
    if spec.adapter:
        adapter = Path(spec.adapter).expanduser()
        if not adapter.is_dir():
            raise InputError(f"model.adapter={spec.adapter!r}: no such directory (relative paths are relative to "
                             f"{Path.cwd()}); point it at the `final` directory of a finetune=lora training run")
        source = merged_checkpoint(source, adapter, cache)
    return str(source)


def load_tokenizer(checkpoint: str) -> Any:
    """The checkpoint's tokenizer (pad set to EOS when it has none, for batching)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer

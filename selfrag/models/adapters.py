"""Turning a trained LoRA adapter (with its reflection-token rows) plus its base into one plain checkpoint, cached.

Backends (transformers and vLLM) load plain checkpoints only; the merge runs once per (base, adapter) pair and the
result is reused until either changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from selfrag import tokens as T
from selfrag.fingerprint import FINGERPRINT_MEMO, content_fingerprint
from selfrag.io import InputError

log = logging.getLogger(__name__)

#: Written by `selfrag.training.trainer.train` next to a LoRA adapter (names the base it was trained on).
ADAPTER_INFO = "selfrag_adapter.json"
_MERGED_INFO = "selfrag_merged.json"


#: Files of an adapter directory that change the merged model; notes and metrics written beside them do not.
_ADAPTER_FILES = ("adapter_", "tokenizer", "special_tokens_map", "added_tokens", "vocab", "merges", ADAPTER_INFO)


def _is_adapter_file(path: Path) -> bool:
    return path.name.startswith(_ADAPTER_FILES)


def base_matches(info: dict, base: Path, cache_dir: Path) -> bool | None:
    """Whether `base` is bit-identical to the base an adapter was trained on, by the content fingerprint its
    `selfrag_adapter.json` recorded (`info`); None when it recorded none (adapters trained before it was recorded)."""
    recorded = info.get("base_content_fingerprint")
    if not recorded:
        return None
    return recorded == content_fingerprint(base, memo=cache_dir / FINGERPRINT_MEMO)


def merged_checkpoint(
    base_dir: str | os.PathLike[str], adapter_dir: str | os.PathLike[str], cache_dir: str | os.PathLike[str]
) -> Path:
    """Return a plain checkpoint equal to `base_dir` with the LoRA adapter in `adapter_dir` merged in.

    The adapter's trained reflection-token rows replace the base's rows (the tokens are first added to the base,
    exactly as in training, when it lacks them), the LoRA deltas are folded into the weights, and the result is saved
    with the adapter's tokenizer under `cache_dir`, keyed by fingerprints of both directories, via a temporary
    directory and rename. A later call with unchanged inputs returns the cached directory at once.

    Raises:
        InputError: `adapter_dir` is not a peft adapter, or the base's vocabulary does not fit the adapter's.
    """
    base = Path(base_dir).expanduser()
    adapter = Path(adapter_dir).expanduser()
    if not (adapter / "adapter_config.json").is_file():
        raise InputError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json); set model.adapter to the "
                         "`final` directory of a finetune=lora training run")
    if not (base / "config.json").is_file():
        raise InputError(f"{base}: not a base checkpoint directory (no config.json); set model.path to the base the "
                         f"adapter was trained on (see {adapter / ADAPTER_INFO})")
    cache = Path(cache_dir).expanduser()
    base_key = content_fingerprint(base, memo=cache / FINGERPRINT_MEMO)
    adapter_key = content_fingerprint(adapter, keep=_is_adapter_file)
    key = hashlib.sha256(f"{base_key}:{adapter_key}".encode()).hexdigest()[:16]
    target = cache / f"{adapter.resolve().parent.name}-{adapter.name}-merged-{key}"
    if (target / "config.json").is_file():
        return target

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfrag.models.reflection import add_reflection_tokens, reflection_token_ids

    info_path = adapter / ADAPTER_INFO
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    recorded = info.get("base_model") or info.get("base_model_dir")
    matches = base_matches(info, base, cache)
    if matches is False:
        log.warning("adapter %s was trained on another base than %s (its recorded base_content_fingerprint %s is not "
                    "this base's): the merged model is not the one its card describes", adapter, base,
                    info["base_content_fingerprint"])
    elif matches is None:
        log.info("adapter %s records no content fingerprint of its base; merging into %s unchecked", adapter, base)
    log.info("merging adapter %s into %s -> %s (once)", adapter, base, target)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base_tokenizer = AutoTokenizer.from_pretrained(base)
    dtype = getattr(torch, info["dtype"].removeprefix("torch.")) if "dtype" in info else "auto"
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    add_reflection_tokens(model, base_tokenizer)
    want = reflection_token_ids(tokenizer, source=f"the adapter's tokenizer ({adapter})")
    have = reflection_token_ids(base_tokenizer, source=str(base))
    if want != have or len(base_tokenizer) != len(tokenizer):
        raise InputError(
            f"{adapter} was trained with another vocabulary than {base} has ({len(tokenizer)} vs {len(base_tokenizer)} "
            f"tokens, or other ids for {', '.join(t for t in T.REFLECTION_TOKENS if want.get(t) != have.get(t))}); "
            f"merge it into the base it was trained on ({recorded or 'see its adapter_config.json'})"
        )
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.config.use_cache = True
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".merge-"))
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        record = {"base": str(base.resolve()), "adapter": str(adapter.resolve()), "key": key}
        (tmp / _MERGED_INFO).write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if (target / "config.json").is_file():  # another process finished the same merge first
            return target
        raise
    return target

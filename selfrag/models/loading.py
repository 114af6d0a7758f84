"""Resolving a model setting to a checkpoint directory both backends can load, plus its tokenizer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from selfrag.fingerprint import FINGERPRINT_MEMO, content_fingerprint
from selfrag.io import InputError
from selfrag.models.adapters import merged_checkpoint
from selfrag.models.packaged import cache_root, smollm2_checkpoint
from selfrag.models.reflection import checkpoint_with_reflection_tokens
from selfrag.prompts import PROMPT_STYLES
from selfrag.values import as_bool, as_choice, as_str, check_keys

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
        writes_reflection: the model was trained to write reflection tokens and passages (a Self-RAG generator): it
            is decoded with Self-RAG, and the plain-answer baselines refuse it (its answers would be the markup).
        judges_only: the model was trained on judgements alone (rows that end after the reflection tokens, e.g. the
            answer judge): it writes no answers of its own, so Self-RAG decodes it only with `decoding.reader=base`
            (`recipe=judge`); anything else is refused (`selfrag.decoding.factory.answer_reader`).
    """

    name: str
    path: str | None = None
    packaged: str | None = None
    add_reflection_tokens: bool = False
    adapter: str | None = None
    prompt: str | None = None
    writes_reflection: bool = False
    judges_only: bool = False


def model_spec(values: Mapping[str, Any], *, key: str = "model") -> ModelSpec:
    """A `ModelSpec` from a config node (`conf/model/*.yaml`), every value checked by type and name.

    Raises:
        InputError: an unknown key or a value of the wrong type (naming `model.<key>`).
    """
    check_keys(values, key, [f.name for f in fields(ModelSpec)])
    spec = ModelSpec(
        name=str(as_str(values.get("name"), f"{key}.name")),
        path=as_str(values.get("path"), f"{key}.path", allow_none=True),
        packaged=as_str(values.get("packaged"), f"{key}.packaged", allow_none=True),
        add_reflection_tokens=as_bool(values.get("add_reflection_tokens", False), f"{key}.add_reflection_tokens"),
        adapter=as_str(values.get("adapter"), f"{key}.adapter", allow_none=True),
        prompt=as_choice(values.get("prompt"), f"{key}.prompt", PROMPT_STYLES, allow_none=True),
        writes_reflection=as_bool(values.get("writes_reflection", False), f"{key}.writes_reflection"),
        judges_only=as_bool(values.get("judges_only", False), f"{key}.judges_only"),
    )
    check_model_spec(spec, key=key)
    return spec


def model_files(model: Mapping[str, Any]) -> dict[str, str]:
    """Content fingerprints (`selfrag.fingerprint.content_fingerprint`) of the local directories a model node
    (`conf/model/*.yaml`, as a plain mapping) names, `path` and `adapter`: what a job's outputs came from, beyond the
    names, for the run records that must notice a model replaced in place. A packaged base or a hub id has no local
    directory here and is known by its name alone."""
    found = {}
    for key in ("path", "adapter"):
        value = model.get(key)
        if isinstance(value, str) and Path(value).expanduser().is_dir():
            found[key] = content_fingerprint(Path(value).expanduser(), memo=cache_root() / FINGERPRINT_MEMO)
    return found


def _is_hub_id(path: str) -> bool:
    return path.count("/") == 1 and not path.startswith((".", "/", "~"))


def check_model_spec(spec: ModelSpec, *, key: str = "model") -> None:
    """Check, without loading or converting anything, that `spec` names something `resolve_checkpoint` can load.

    Raises:
        InputError: a path that is neither a directory nor a hub id, an unknown packaged model, no model at all, or
            an adapter directory that does not exist.
    """
    if spec.path:
        if not Path(spec.path).expanduser().is_dir() and (not _is_hub_id(spec.path) or spec.adapter):
            raise InputError(f"{key}.path={spec.path!r}: no such checkpoint directory")
    elif spec.packaged:
        if spec.packaged not in PACKAGED_MODELS:
            raise InputError(f"{key}.packaged={spec.packaged!r} is unknown; choose one of {sorted(PACKAGED_MODELS)}")
    else:
        raise InputError(f"model {spec.name!r} has neither {key}.path nor {key}.packaged; set {key}.path=DIR")
    if spec.adapter and not Path(spec.adapter).expanduser().is_dir():
        raise InputError(f"{key}.adapter={spec.adapter!r}: no such directory (relative paths are relative to "
                         f"{Path.cwd()}); point it at the `final` directory of a finetune=lora training run")


def base_model_spec(spec: ModelSpec, *, key: str = "model") -> ModelSpec:
    """The model `spec`'s adapter was trained from, as it was before training: the same `path` or `packaged` base,
    without the adapter and the added reflection tokens (what `decoding.reader=base` reads with).

    Raises:
        InputError: `spec` has no adapter, so no base to tell apart from it.
    """
    if not spec.adapter:
        raise InputError(f"decoding.reader=base reads with the base model a generator's adapter was trained from, but "
                         f"model {spec.name!r} has no {key}.adapter; set {key}.adapter=DIR (the final/ directory of a "
                         "finetune=lora run) or decoding.reader=generator")
    return ModelSpec(name=f"{spec.name} base", path=spec.path, packaged=spec.packaged)


def resolve_checkpoint(spec: ModelSpec, *, cache_dir: Path | None = None) -> str:
    """Return the directory (or hub id) to load for `spec`, converting/adding tokens/merging an adapter once as needed.

    Raises:
        InputError: neither a usable path nor a known packaged model is given (see `check_model_spec`).
    """
    check_model_spec(spec)
    cache = cache_dir or cache_root()
    if spec.path:
        source = Path(spec.path).expanduser()
        if not source.is_dir():
            return spec.path  # a hub id: loads where a hub is reachable
    else:
        source = PACKAGED_MODELS[str(spec.packaged)](cache)
    if spec.add_reflection_tokens:
        source = checkpoint_with_reflection_tokens(source, cache)
    if spec.adapter:
        source = merged_checkpoint(source, Path(spec.adapter).expanduser(), cache)
    return str(source)


def load_tokenizer(checkpoint: str) -> Any:
    """The checkpoint's tokenizer (pad set to EOS when it has none, for batching)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer

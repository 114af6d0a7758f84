"""Building a ready `SelfRAG` decoder from plain settings (what the scripts do after reading their config)."""

from __future__ import annotations

import logging
from typing import Any

from selfrag.decoding.backend import BACKENDS, make_backend
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.context import ContextGuard, context_limit
from selfrag.decoding.pipeline import SelfRAG
from selfrag.decoding.reader import PlainReader
from selfrag.io import InputError
from selfrag.models.loading import ModelSpec, base_model_spec, load_tokenizer, resolve_checkpoint
from selfrag.models.reflection import reflection_token_ids
from selfrag.prompts import PROMPT_STYLES, PromptFormatter, chat_renderer
from selfrag.retrieval.base import Retriever
from selfrag.values import as_choice

log = logging.getLogger(__name__)


#: What `prompt=` accepts: a style, or `auto` (see `prompt_formatter`).
PROMPT_CHOICES = ("auto", *PROMPT_STYLES)


def check_backend(name: Any, options: dict[str, Any]) -> None:
    """Check a backend name and its options (`backend.*`) before anything is loaded: a bad dtype, an unknown option
    or a device this machine lacks fails in a second, not after a model load or an engine boot.

    Raises:
        InputError: naming the key.
    """
    as_choice(name, "backend", BACKENDS)
    if name == "hf":
        from selfrag.decoding.hf_backend import check_options
    else:
        from selfrag.decoding.vllm_backend import check_options
    check_options(options)


def answer_reader(model: ModelSpec, decoding: DecodingConfig) -> ModelSpec | None:
    """Who writes the candidates' answers when it is not the model itself: the base the adapter was trained from
    (`decoding.reader=base`), else None (the generator writes them). Checked before anything loads.

    Raises:
        InputError: `decoding.reader=base` for a model without an adapter (no base to read with), or a
            `model.judges_only` model asked to write its own answers (it was trained to stop after its judgements:
            its answers are empty).
    """
    if decoding.reader == "base":
        return base_model_spec(model)
    if model.judges_only:
        raise InputError(
            f"model {model.name!r} only judges (model.judges_only): it was trained on judgements alone and writes no "
            "answers of its own (they come out empty), so Self-RAG decodes it with decoding.reader=base, the base "
            "model answering from each passage and this model judging: use recipe=judge (or decoding.reader=base)"
        )
    return None


def prompt_formatter(style: str, tokenizer: Any, trained_style: str | None = None) -> PromptFormatter:
    """`auto` picks the style the model was trained with (`trained_style`, from its model config) when known, else the
    tokenizer's chat template when it has one, else the official format."""
    render = chat_renderer(tokenizer)
    if style == "auto":
        style = trained_style or ("chat" if render else "selfrag")
    return PromptFormatter(style=style, render_chat=render if style == "chat" else None)


def build_selfrag(
    model: ModelSpec,
    *,
    backend: str,
    backend_options: dict[str, Any],
    prompt_style: str,
    decoding: DecodingConfig,
    retriever: Retriever | None = None,
) -> SelfRAG:
    """Resolve the checkpoint, check its reflection tokens, start the backend and wrap it in a decoder.

    The token check runs before the backend starts, so a model without reflection tokens fails in seconds with a
    message saying how to fix it, not after a vLLM engine boots. The backend is wrapped in a `ContextGuard` when the
    model's context is known (`selfrag.decoding.context`), so no request longer than the context reaches it. With
    `decoding.reader=base` a second backend of the same kind and options runs the adapter's base model, which writes
    the answers (`open_reader`).
    """
    checkpoint = resolve_checkpoint(model)
    tokenizer = load_tokenizer(checkpoint)
    source = f"model {model.name!r} ({checkpoint})"
    reflection_token_ids(tokenizer, source=source)
    try:
        formatter = prompt_formatter(prompt_style, tokenizer, model.prompt)
    except ValueError as err:  # prompt=chat for a tokenizer without a chat template
        raise InputError(str(err)) from None
    limit = context_limit(checkpoint, backend_options)
    log.info("model %s, backend %s, prompt %s, context %s tokens", checkpoint, backend, formatter.style, limit)
    reader_spec = answer_reader(model, decoding)  # refused before anything loads
    engine = make_backend(backend, checkpoint, **backend_options)
    if limit is not None:
        engine = ContextGuard(engine, limit)
    reader = None
    if reader_spec is not None:
        reader = open_reader(reader_spec, backend=backend, backend_options=backend_options,
                             max_new_tokens=decoding.max_new_tokens)
    return SelfRAG(engine, tokenizer, decoding, prompt=formatter, retriever=retriever, reader=reader, source=source)


def open_reader(spec: ModelSpec, *, backend: str, backend_options: dict[str, Any], max_new_tokens: int,
                prompt_style: str = "auto", label: str = "reader prompt") -> PlainReader:
    """Load `spec` as a `PlainReader` (no reflection tokens needed) on a backend of its own: the generator's base for
    `decoding.reader=base`, the model of a `method=standard_rag` / `no_retrieval` baseline. `auto` reads in the
    prompt style the model was trained with, else its chat template when it has one (an instruct base reads best in
    it), else the official format (`prompt_formatter`).

    Raises:
        InputError: `prompt_style=chat` for a tokenizer without a chat template.
    """
    checkpoint = resolve_checkpoint(spec)
    tokenizer = load_tokenizer(checkpoint)
    try:
        formatter = prompt_formatter(prompt_style, tokenizer, spec.prompt)
    except ValueError as err:  # prompt=chat for a tokenizer without a chat template
        raise InputError(str(err)) from None
    limit = context_limit(checkpoint, backend_options)
    log.info("reader %s, prompt %s, context %s tokens", checkpoint, formatter.style, limit)
    return PlainReader(make_backend(backend, checkpoint, **backend_options), tokenizer, prompt=formatter,
                       max_new_tokens=max_new_tokens, context_limit=limit, label=label)

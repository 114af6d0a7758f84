"""Building a ready `SelfRAG` decoder from plain settings (what the scripts do after reading their config)."""

from __future__ import annotations

import logging
from typing import Any

from selfrag.decoding.backend import make_backend
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.pipeline import SelfRAG
from selfrag.models.loading import ModelSpec, load_tokenizer, resolve_checkpoint
from selfrag.models.reflection import reflection_token_ids
from selfrag.prompts import PromptFormatter
from selfrag.retrieval.base import Retriever

log = logging.getLogger(__name__)


def prompt_formatter(style: str, tokenizer: Any, trained_style: str | None = None) -> PromptFormatter:
    """`auto` picks the style the model was trained with (`trained_style`, from its model config) when known, else the
    tokenizer's chat template when it has one, else the official format."""
    template = getattr(tokenizer, "chat_template", None)
    if style == "auto":
        style = trained_style or ("chat" if template else "selfrag")
    render = None
    if style == "chat" and template:

        def render(messages: list[dict[str, str]]) -> str:
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    return PromptFormatter(style=style, render_chat=render)


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
    message saying how to fix it, not after a vLLM engine boots.
    """
    checkpoint = resolve_checkpoint(model)
    tokenizer = load_tokenizer(checkpoint)
    source = f"model {model.name!r} ({checkpoint})"
    reflection_token_ids(tokenizer, source=source)
    formatter = prompt_formatter(prompt_style, tokenizer, model.prompt)
    log.info("model %s, backend %s, prompt %s", checkpoint, backend, formatter.style)
    engine = make_backend(backend, checkpoint, **backend_options)
    return SelfRAG(engine, tokenizer, decoding, prompt=formatter, retriever=retriever, source=source)

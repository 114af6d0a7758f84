"""Inputs against the model's context window: refused with the row id before decoding, never left to hang.

A prompt longer than the model's context does not fail cleanly on its own: the transformers backend runs attention
over all of it (a 42k-token question on an 8k model ran for hours) and vLLM rejects it mid-batch. The rule, applied
before anything is generated:

- the **context** is the checkpoint's `max_position_embeddings` (or `n_positions` / `max_sequence_length` /
  `seq_length`, whichever it declares), lowered to `backend.max_model_len` (or `backend.engine_options.max_model_len`)
  when that is set; a checkpoint that declares none is not checked;
- a question **fits** when its prompt + its longest passage block among the top `decoding.ndocs` static passages
  (`[Retrieval]<paragraph>title\ntext</paragraph>`; one `[No Retrieval]` token when it has none) +
  `decoding.max_new_tokens` tokens is at most the context. `check_queries` refuses the first question that does not
  fit, naming its id, the token counts and the fixes. Nothing is truncated: a cut question or passage would be a
  different input, silently.
- what cannot be known up front (live-retrieved passages, later long-form segments whose prefixes grow) is checked
  per request by `ContextGuard`, a backend wrapper that refuses any generation whose prompt + `max_new_tokens`, or any
  scoring position, exceeds the context, with the same kind of message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from selfrag.decoding.backend import Backend
from selfrag.io import InputError
from selfrag.prompts import passage_block
from selfrag.types import Completion, Query, ScoreRequest

#: Config attributes that declare a checkpoint's maximum sequence length, in order of preference.
_LENGTH_ATTRIBUTES = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def context_limit(checkpoint: str, backend_options: Mapping[str, Any] | None = None) -> int | None:
    """The number of tokens (prompt + generated) the model can take (see the module docstring); None if unknown."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(checkpoint)
    config = getattr(config, "get_text_config", lambda: config)()
    declared = next((v for a in _LENGTH_ATTRIBUTES if isinstance(v := getattr(config, a, None), int) and v > 0), None)
    options = dict(backend_options or {})
    engine = options.get("engine_options") or {}
    limits = [v for v in (declared, options.get("max_model_len"), engine.get("max_model_len"))
              if isinstance(v, int) and v > 0]
    return min(limits) if limits else None


def _fixes() -> str:
    return ("shorten the question or its passages, drop the row (or data.limit), or lower decoding.max_new_tokens / "
            "decoding.ndocs")


def check_queries(decoder: Any, queries: Sequence[Query], limit: int | None) -> None:
    """Refuse the first query whose first decoding step does not fit `limit` tokens (see the module docstring).

    Args:
        decoder: a `selfrag.decoding.pipeline.SelfRAG` (its prompt format, codec and decoding settings are used).
        queries: the queries about to be decoded.
        limit: the context size (None: nothing is checked).

    Raises:
        InputError: naming the query id, the token counts and the limit.
    """
    if limit is None:
        return
    config = decoder.config
    for query in queries:
        prompt = len(decoder.prompt_ids(query))
        passages = query.passages[: config.ndocs]
        block = max((len(decoder.codec.encode(passage_block(p))) for p in passages), default=1)
        longest = f" + its longest passage {block}" if passages else ""
        refuse_if_too_long(query.id, limit, prompt + block + config.max_new_tokens,
                           f"its prompt is {prompt} tokens{longest} + decoding.max_new_tokens={config.max_new_tokens}")


def refuse_if_too_long(query_id: str, limit: int | None, total: int, breakdown: str) -> None:
    """Refuse a question whose first step needs `total` tokens, over the context `limit` (None: not checked).

    Raises:
        InputError: naming the question id, `breakdown` (where the tokens come from), the total and the limit.
    """
    if limit is not None and total > limit:
        raise InputError(f"question id={query_id!r} does not fit the model's context of {limit} tokens: {breakdown} "
                         f"= {total}; {_fixes()}")


class ContextGuard:
    """A `Backend` wrapper that refuses requests longer than the context instead of passing them on.

    Args:
        backend: the backend to wrap (every call is forwarded unchanged when it fits).
        limit: the context size in tokens.
    """

    def __init__(self, backend: Backend, limit: int) -> None:
        self.backend = backend
        self.limit = limit

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        stop_token_ids: Sequence[int] = (),
        track_token_ids: Sequence[int] = (),
    ) -> list[Completion]:
        """See `Backend.generate`; raises InputError first if a prompt + max_new_tokens exceeds the context."""
        longest = max((len(p) for p in prompts), default=0)
        if longest + max_new_tokens > self.limit:
            raise InputError(
                f"a decoding step needs {longest} prompt tokens + decoding.max_new_tokens={max_new_tokens}, over the "
                f"model's context of {self.limit} tokens (a live-retrieved passage or a long-form prefix grew too "
                f"long); lower decoding.max_depth, decoding.max_new_tokens or decoding.ndocs, or use shorter passages"
            )
        return self.backend.generate(prompts, max_new_tokens=max_new_tokens, stop_token_ids=stop_token_ids,
                                     track_token_ids=track_token_ids)

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[list[float]]]:
        """See `Backend.score`; raises InputError first if a scored position lies beyond the context."""
        furthest = max((position for r in requests for position, _ in r.queries), default=0)
        if furthest > self.limit:
            raise InputError(f"a scoring request reads position {furthest}, beyond the model's context of "
                             f"{self.limit} tokens; {_fixes()}")
        return self.backend.score(requests)

    def close(self) -> None:
        self.backend.close()

    def __getattr__(self, name: str) -> Any:
        # Anything else (e.g. a test reading `backend.llm`) is the wrapped backend's.
        return getattr(self.backend, name)

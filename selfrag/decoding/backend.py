"""The protocol every generation backend implements, and how to build one by name.

A backend works on token ids only (the pipeline tokenises once with the model's tokenizer), so two backends over the
same checkpoint see identical inputs and can be compared token for token. Two verbs:

- `generate`: greedy continuations with the log-probability of every generated token and, at every position,
  the exact log-probabilities of a few tracked tokens (the reflection tokens), gathered from the full distribution
  the token was chosen from;
- `score`: exact next-token log-probabilities of a few chosen tokens at chosen positions inside a sequence. This is
  how reflection-token group probabilities are read: from the full distribution at that position, without ever
  asking for vocabulary-sized or top-k logprob lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from selfrag.types import BACKENDS, Completion, ScoreRequest


@runtime_checkable
class Backend(Protocol):
    """A greedy decoder over one model."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        stop_token_ids: Sequence[int] = (),
        track_token_ids: Sequence[int] = (),
    ) -> list[Completion]:
        """Greedy-decode each prompt; stop at EOS, at any of `stop_token_ids` (kept in the output), or at the limit.

        Returns one Completion per prompt, in input order, with `tracked` filled for `track_token_ids`.
        """
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[list[float]]]:
        """For each request and each of its (position, token_ids) queries, log p(t | sequence[:position]) per t.

        Result shape: [request][query][token]. Positions are >= 1.
        """
        ...

    def close(self) -> None:
        """Release the model (and, for vLLM, its engine processes)."""
        ...


def make_backend(name: str, model_dir: str, **options: Any) -> Backend:
    """Build the backend `name` ("hf" or "vllm") over the checkpoint in `model_dir`; options go to its constructor."""
    if name == "hf":
        from selfrag.decoding.hf_backend import HFBackend

        return HFBackend(model_dir, **options)
    if name == "vllm":
        from selfrag.decoding.vllm_backend import VLLMBackend

        return VLLMBackend(model_dir, **options)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")

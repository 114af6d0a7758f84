"""A plain reader: a model without reflection tokens that answers a question from the passages it is shown.

Two users: the standard-RAG and no-retrieval baselines (`eval.baselines`, all of a question's passages in one
prompt), and Self-RAG with `decoding.reader=base` (`selfrag.decoding.pipeline`), where the generator's base model
writes each passage candidate's answer from that passage alone and the generator only critiques it.

The prompt is `selfrag.prompts.rag_prompt` (what `method=standard_rag` shows a model); generation is greedy and
stops at any special token but the reflection tokens (`answer_stop_ids`); the output is decoded with those stop
tokens dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selfrag import tokens as T
from selfrag.decoding.backend import Backend
from selfrag.decoding.context import refuse_if_too_long
from selfrag.prompts import PromptFormatter, rag_prompt
from selfrag.types import Passage


def answer_stop_ids(tokenizer: Any) -> tuple[int, ...]:
    """EOS and every other special token except the reflection tokens (which a Self-RAG model emits mid-answer):
    a response never legitimately contains a turn marker, BOS or padding, so generation ends there."""
    vocab_ids = tokenizer.convert_tokens_to_ids(list(T.REFLECTION_TOKENS))
    reflection = {i for i in vocab_ids if i is not None and i != tokenizer.unk_token_id}
    specials = {i for i in (*tokenizer.all_special_ids, tokenizer.eos_token_id) if i is not None}
    return tuple(sorted(specials - reflection))


@dataclass(frozen=True)
class Reading:
    """One answer a reader wrote.

    Attributes:
        output: the generated text, stop tokens dropped (reflection tokens, should a model write them, kept).
        logprobs: log p of each generated token (the stop token included when generation ended on one).
    """

    output: str
    logprobs: tuple[float, ...]

    @property
    def answer(self) -> str:
        """The output with reflection tokens, passages and end markers removed (`selfrag.tokens.strip_reflection`):
        what a baseline reports and what Self-RAG's critique reads."""
        return T.strip_reflection(self.output)


class PlainReader:
    """Greedy answers from a model's own prompt format, one backend call per batch.

    Args:
        backend: any `Backend` (the model needs no reflection tokens).
        tokenizer: the model's Hugging Face tokenizer.
        prompt: the model's prompt format (chat template for an instruct base).
        max_new_tokens: generation limit per answer.
        context_limit: the model's context in tokens (`selfrag.decoding.context.context_limit`); a prompt +
            `max_new_tokens` over it is refused with its question id before anything is generated (None: not
            checked).
        label: how refusals name the prompt ("standard_rag prompt", "reader prompt").
    """

    def __init__(self, backend: Backend, tokenizer: Any, *, prompt: PromptFormatter, max_new_tokens: int,
                 context_limit: int | None = None, label: str = "reader prompt") -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.context_limit = context_limit
        self.label = label
        self.stop_ids = answer_stop_ids(tokenizer)
        self._drop = set(self.stop_ids)

    def prompt_ids(self, instruction: str, passages: Sequence[Passage]) -> list[int]:
        """Token ids of the prompt (BOS added for the official format; chat templates carry their own)."""
        text = rag_prompt(self.prompt, instruction, passages)
        return list(self.tokenizer(text, add_special_tokens=self.prompt.style != "chat")["input_ids"])

    def read(self, ids: Sequence[str], instructions: Sequence[str],
             passages: Sequence[Sequence[Passage]]) -> list[Reading]:
        """One greedy answer per (question id, instruction, passages shown), in order, from one `generate` call.

        Raises:
            InputError: a prompt + `max_new_tokens` over the context, naming the question id.
        """
        prompts = [self.prompt_ids(i, p) for i, p in zip(instructions, passages, strict=True)]
        for query_id, prompt in zip(ids, prompts, strict=True):
            refuse_if_too_long(query_id, self.context_limit, len(prompt) + self.max_new_tokens,
                               f"its {self.label} is {len(prompt)} tokens + "
                               f"decoding.max_new_tokens={self.max_new_tokens}")
        completions = self.backend.generate(prompts, max_new_tokens=self.max_new_tokens, stop_token_ids=self.stop_ids)
        return [Reading(self.tokenizer.decode([i for i in c.token_ids if i not in self._drop],
                                              skip_special_tokens=False), c.logprobs)
                for c in completions]

    def close(self) -> None:
        """Release the model."""
        self.backend.close()

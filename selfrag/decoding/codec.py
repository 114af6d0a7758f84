"""Text <-> token ids for the decoder, with the reflection-token ids looked up (and checked) once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selfrag.models.reflection import reflection_token_ids


class TokenCodec:
    """Wraps a Hugging Face tokenizer for the decoder.

    Raises `MissingReflectionTokens` at construction when the tokenizer lacks any of the 15 reflection tokens, so a
    plain base model is refused before any work is done.
    """

    def __init__(self, tokenizer: Any, *, source: str = "the model") -> None:
        self.tokenizer = tokenizer
        self.ids = reflection_token_ids(tokenizer, source=source)
        self.eos_token_id: int = tokenizer.eos_token_id
        reflection = set(self.ids.values())
        #: Special tokens that end a response: EOS and every other non-reflection special token (a chat model's
        #: turn markers, BOS, padding). A response never legitimately contains them, and an instruct base that
        #: emits one has left its answer.
        self.stop_ids: tuple[int, ...] = tuple(
            sorted({i for i in (*tokenizer.all_special_ids, tokenizer.eos_token_id) if i is not None} - reflection)
        )
        self._drop = set(self.stop_ids)

    def group(self, group: Sequence[str]) -> tuple[int, ...]:
        """Token ids of a reflection group, in group order."""
        return tuple(self.ids[t] for t in group)

    def encode_prompt(self, text: str, *, add_special_tokens: bool = True) -> tuple[int, ...]:
        """Ids of a whole prompt (with the tokenizer's BOS when `add_special_tokens`)."""
        return tuple(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def encode(self, text: str) -> tuple[int, ...]:
        """Ids of a text fragment appended to a prompt (no BOS/EOS added)."""
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, reflection tokens kept, stop tokens (EOS, padding, turn markers) dropped."""
        return self.tokenizer.decode([i for i in ids if i not in self._drop], skip_special_tokens=False)

    def first_position(self, ids: Sequence[int], group: Sequence[str]) -> int | None:
        """Index of the first id in `ids` that belongs to `group`, or None."""
        wanted = set(self.group(group))
        for index, token_id in enumerate(ids):
            if token_id in wanted:
                return index
        return None


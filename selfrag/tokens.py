"""The Self-RAG reflection-token vocabulary: the 15 exact strings, their groups, parsing and stripping.

This module owns the token *strings* only (stdlib, no tokenizer). Adding the tokens to a tokenizer/model lives in
`selfrag.models.reflection`; turning token probabilities into scores lives in `selfrag.decoding.critique`.
The strings and their order are those of the released Self-RAG checkpoints and training data and must not change.
"""

from __future__ import annotations

import re

RETRIEVAL = "[Retrieval]"
NO_RETRIEVAL = "[No Retrieval]"
CONTINUE = "[Continue to Use Evidence]"
RELEVANT = "[Relevant]"
IRRELEVANT = "[Irrelevant]"
PARAGRAPH_OPEN = "<paragraph>"
PARAGRAPH_CLOSE = "</paragraph>"
UTILITY = tuple(f"[Utility:{i}]" for i in range(1, 6))
FULLY_SUPPORTED = "[Fully supported]"
PARTIALLY_SUPPORTED = "[Partially supported]"
NO_SUPPORT = "[No support / Contradictory]"

#: The 15 added tokens, in the order the official training scripts add them.
REFLECTION_TOKENS: tuple[str, ...] = (
    NO_RETRIEVAL,
    RETRIEVAL,
    CONTINUE,
    IRRELEVANT,
    RELEVANT,
    PARAGRAPH_OPEN,
    PARAGRAPH_CLOSE,
    *UTILITY,
    FULLY_SUPPORTED,
    PARTIALLY_SUPPORTED,
    NO_SUPPORT,
)

#: Token groups whose probabilities are renormalised against each other when scoring.
RETRIEVE_GROUP: tuple[str, ...] = (RETRIEVAL, NO_RETRIEVAL)
RETRIEVE_GROUP_3WAY: tuple[str, ...] = (RETRIEVAL, NO_RETRIEVAL, CONTINUE)
ISREL_GROUP: tuple[str, ...] = (RELEVANT, IRRELEVANT)
ISSUP_GROUP: tuple[str, ...] = (FULLY_SUPPORTED, PARTIALLY_SUPPORTED, NO_SUPPORT)
ISUSE_GROUP: tuple[str, ...] = UTILITY

#: Control tokens that are not part of an answer: everything except the passage markup, which is removed with its
#: content by `strip_reflection`.
_CONTROL_TOKENS = tuple(t for t in REFLECTION_TOKENS if t not in (PARAGRAPH_OPEN, PARAGRAPH_CLOSE))
_PARAGRAPH_SPAN = re.compile(re.escape(PARAGRAPH_OPEN) + r".*?" + re.escape(PARAGRAPH_CLOSE), re.DOTALL)
_ANY_TOKEN = re.compile("|".join(re.escape(t) for t in sorted(REFLECTION_TOKENS, key=len, reverse=True)))

#: End-of-text markers that decoders of various base models leave in raw text.
_END_MARKERS = ("</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>")


def strip_reflection(text: str) -> str:
    """Return `text` as a clean answer: passages (with their markup), reflection tokens and end markers removed.

    Whitespace left where tokens stood is collapsed to one space, and a space is inserted between sentences that the
    tokens had glued together ("Paris.[No Retrieval]It is" -> "Paris. It is"), which is the reference code's
    `fix_spacing` done where the tokens are removed instead of guessed afterwards.
    """
    text = _PARAGRAPH_SPAN.sub(" ", text)
    # An unterminated passage (generation cut mid-passage) is removed to the end.
    if PARAGRAPH_OPEN in text:
        text = text[: text.index(PARAGRAPH_OPEN)]
    text = _ANY_TOKEN.sub(" ", text)
    for marker in _END_MARKERS:
        text = text.replace(marker, " ")
    return re.sub(r"\s+", " ", text).strip()


def find_tokens(text: str) -> list[str]:
    """Return the reflection tokens in `text`, in order of appearance (passage contents are not searched)."""
    return _ANY_TOKEN.findall(_PARAGRAPH_SPAN.sub(PARAGRAPH_OPEN + PARAGRAPH_CLOSE, text))


def first_of(text: str, group: tuple[str, ...]) -> str | None:
    """Return the first token of `group` that occurs in `text` (outside passages), or None."""
    for token in find_tokens(text):
        if token in group:
            return token
    return None


def utility_value(token: str) -> int:
    """Return k for `[Utility:k]`; raise ValueError for any other string."""
    if token not in UTILITY:
        raise ValueError(f"not a utility token: {token!r}; expected one of {', '.join(UTILITY)}")
    return UTILITY.index(token) + 1

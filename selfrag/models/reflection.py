"""Adding the reflection tokens to a tokenizer and model, and checking that a model has them.

New embedding rows are initialised from the model's own embeddings of a short description of each token (e.g.
`[Utility:5]` -> "utility 5", `[Irrelevant]` -> "irrelevant"), averaged over the description's sub-word pieces, for
both the input and (if untied) output matrices. That starts each token near words with the same meaning rather than
at random or at the global mean, so an untrained base already gives the tokens ordered, meaningful probabilities.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from selfrag import tokens as T
from selfrag.fingerprint import FINGERPRINT_MEMO, content_fingerprint
from selfrag.io import InputError

log = logging.getLogger(__name__)

#: Plain-words description of each token, used to initialise its embedding rows.
TOKEN_DESCRIPTIONS: dict[str, str] = {
    T.NO_RETRIEVAL: "no retrieval",
    T.RETRIEVAL: "retrieval",
    T.CONTINUE: "continue to use evidence",
    T.IRRELEVANT: "irrelevant",
    T.RELEVANT: "relevant",
    T.PARAGRAPH_OPEN: "paragraph",
    T.PARAGRAPH_CLOSE: "end of paragraph",
    **{tok: f"utility {i}" for i, tok in enumerate(T.UTILITY, start=1)},
    T.FULLY_SUPPORTED: "fully supported",
    T.PARTIALLY_SUPPORTED: "partially supported",
    T.NO_SUPPORT: "no support contradictory",
}


class MissingReflectionTokens(InputError):
    """The model's tokenizer lacks (some of) the 15 reflection tokens."""


def reflection_token_ids(tokenizer: Any, *, source: str = "the model") -> dict[str, int]:
    """Map each reflection token to its single id in `tokenizer`.

    Raises:
        MissingReflectionTokens: a token is absent or splits into several pieces; the message says how to fix it.
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in T.REFLECTION_TOKENS if t not in vocab]
    if missing:
        raise MissingReflectionTokens(
            f"{source} has no reflection tokens ({len(missing)} of 15 missing, e.g. {missing[0]!r}). Use a Self-RAG "
            f"generator (model=selfrag_smollm2_135m, or a released selfrag/selfrag_llama2_* checkpoint), or add the "
            f"tokens to a base model with model.add_reflection_tokens=true"
        )
    return {t: vocab[t] for t in T.REFLECTION_TOKENS}


def add_reflection_tokens(model: Any, tokenizer: Any) -> int:
    """Add the 15 tokens (as special tokens) to `tokenizer`, resize `model`, and initialise the new rows.

    Returns the number of tokens actually added (0 when all were already there). A pad token is set to EOS when the
    tokenizer has none, so batched generation can pad.
    """
    import torch

    vocab = tokenizer.get_vocab()
    new = [t for t in T.REFLECTION_TOKENS if t not in vocab]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not new:
        return 0
    descriptions = {t: tokenizer(TOKEN_DESCRIPTIONS[t], add_special_tokens=False)["input_ids"] for t in new}
    tokenizer.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    ids = reflection_token_ids(tokenizer, source="the tokenizer after adding tokens")
    matrices = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight.data_ptr() != matrices[0].data_ptr():
        matrices.append(output.weight)
    with torch.no_grad():
        for weight in matrices:
            for token in new:
                pieces = torch.tensor(descriptions[token], dtype=torch.long)
                weight[ids[token]] = weight[pieces].mean(dim=0)
    return len(new)


def checkpoint_with_reflection_tokens(source: Path, cache_dir: Path) -> Path:
    """Return a checkpoint directory equal to `source` plus the reflection tokens, created once and cached.

    A checkpoint that already has all 15 tokens is returned unchanged. Backends then load the returned directory, so
    the transformers and vLLM backends see the very same weights and vocabulary.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if all(t in tokenizer.get_vocab() for t in T.REFLECTION_TOKENS):
        return source
    # named by the source's bytes, so every machine builds (and finds) the same directory for the same base
    source_fingerprint = content_fingerprint(source, memo=cache_dir / FINGERPRINT_MEMO)
    target = cache_dir / f"{source.name}-reflection-{source_fingerprint}"
    if (target / "config.json").is_file():
        return target
    log.info("adding reflection tokens to %s -> %s (once)", source, target)
    model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    added = add_reflection_tokens(model, tokenizer)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tokens-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # no absolute path here: the directory's bytes must not depend on the machine that built it
        record = {"source": source.name, "source_fingerprint": source_fingerprint, "added": added}
        (tmp / "selfrag_tokens.json").write_text(json.dumps(record, indent=2))
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if (target / "config.json").is_file():
            return target
        raise
    return target

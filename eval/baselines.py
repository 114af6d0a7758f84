"""The two non-Self-RAG methods evaluated beside Self-RAG, over the same `Backend`, queries and passages:
`no_retrieval` (the model answers the bare prompt) and `standard_rag` (the top-`ndocs` passages prepended).

Both decode greedily for `max_new_tokens`, batched across the queries of a call (one backend `generate`), and return
rows with the `predictions.jsonl` fields of `infer` (`p_retrieve` null, `candidates` and `segments` empty), so
scoring, comparison and reports treat every method alike. The answer is the output with reflection tokens, passages
and end markers removed (`selfrag.tokens.strip_reflection`), so a Self-RAG checkpoint can serve as its own baseline.

Standard-RAG prompt: the reference code's retrieval baseline numbers the passages `[i] {title}\\n{text}`, one after
the other, before the instruction (`selfrag.prompts.rag_prompt`); the answers are written by
`selfrag.decoding.reader.PlainReader`, the reader `decoding.reader=base` gives Self-RAG. A query with no passages
(none in its `ctxs` and no live retriever, or no hit) gets the bare prompt and `retrieved: false`. Passages are
static `ctxs` first, else the live retriever's, exactly as Self-RAG finds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selfrag.decoding.factory import open_reader
from selfrag.decoding.pipeline import top_passages
from selfrag.decoding.reader import PlainReader
from selfrag.decoding.records import passage_to_json
from selfrag.decoding.run import DecodeSettings
from selfrag.io import InputError
from selfrag.models.loading import ModelSpec
from selfrag.retrieval.base import Retriever
from selfrag.retrieval.factory import close_retriever, with_search_queries
from selfrag.types import Passage, Query

#: Every `method=` value; the first is decoded by `selfrag.decoding`, the others here.
METHODS = ("selfrag", "no_retrieval", "standard_rag")
BASELINES = METHODS[1:]


class Baseline:
    """A non-Self-RAG method as a `selfrag.decoding.run.Predictor`.

    Args:
        method: "no_retrieval" or "standard_rag".
        reader: the model's `PlainReader` (its backend, prompt format, `max_new_tokens` and context limit: a query
            whose prompt + max_new_tokens exceeds the context is refused with its id before anything is generated).
        ndocs: passages prepended by standard_rag.
        retriever: live retriever for queries without static passages (standard_rag only).

    Raises:
        InputError: unknown method.
    """

    def __init__(self, method: str, reader: PlainReader, *, ndocs: int = 5,
                 retriever: Retriever | None = None) -> None:
        if method not in BASELINES:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r} (method=...)")
        self.method = method
        self.reader = reader
        self.ndocs = ndocs
        self.retriever = retriever

    def passages(self, queries: Sequence[Query]) -> list[list[Passage]]:
        """The passages each query's prompt shows (none for no_retrieval)."""
        if self.method == "no_retrieval":
            return [[] for _ in queries]
        return top_passages(queries, self.ndocs, self.retriever)

    def prompt_ids(self, query: Query, passages: Sequence[Passage]) -> list[int]:
        """Token ids of the prompt (BOS added for the official format; chat templates carry their own)."""
        return self.reader.prompt_ids(query.instruction, passages)

    def predict(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """Answer every query greedily in one batched backend call; one `predictions.jsonl` row each."""
        found = self.passages(queries)
        readings = self.reader.read([q.id for q in queries], [q.instruction for q in queries], found)
        rows = []
        for query, passages, reading in zip(queries, found, readings):
            rows.append({
                "id": query.id,
                "question": query.question,
                "answer": reading.answer,
                "output": reading.output,
                "retrieved": bool(passages),
                "p_retrieve": None,
                "options": list(query.options) if query.options else None,
                "candidates": [],
                "segments": [],
                "docs": [passage_to_json(p) for p in passages],
            })
        return with_search_queries(rows, self.retriever)

    def close(self) -> None:
        self.reader.close()
        close_retriever(self.retriever)


def check_baseline_model(method: str, model: ModelSpec) -> None:
    """Refuse a plain-answer baseline on a model trained to write reflection tokens: its output is
    `[Retrieval]<paragraph>...` markup, the stripped answer is empty and the baseline would silently score ~0.

    Raises:
        InputError: `method` is a baseline and `model.writes_reflection` is set.
    """
    if method in BASELINES and model.writes_reflection:
        raise InputError(
            f"method={method} reads the model's plain answer, but model {model.name!r} was trained to write reflection "
            "tokens and passages (its answers would be that markup, scored as empty); evaluate a baseline on "
            "model=sft_smollm2_135m_notokens (the same rows without tokens) or model=smollm2_135m_instruct (the "
            "base), or set model.writes_reflection=false to run it anyway"
        )


def open_baseline(method: str, settings: DecodeSettings) -> Baseline:
    """Load the model of `settings` (reflection tokens not required) and, for standard_rag, its live retriever.

    `settings.decoding` supplies `max_new_tokens` and `ndocs`; the Self-RAG-only settings (threshold, weights, beam)
    do not apply.
    """
    if method not in BASELINES:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r} (method=...)")
    retriever = settings.open_retriever() if method == "standard_rag" else None
    reader = open_reader(settings.model, backend=settings.backend, backend_options=dict(settings.backend_options),
                         max_new_tokens=settings.decoding.max_new_tokens, prompt_style=settings.prompt_style,
                         label=f"{method} prompt")
    return Baseline(method, reader, ndocs=settings.decoding.ndocs, retriever=retriever)

"""Frozen value types shared by retrieval, decoding, evaluation and the scripts (stdlib only).

Everything the decoder produces is one of these; `selfrag.decoding.records` turns them into the JSON objects of
`predictions.jsonl` and back, so saved predictions can be re-ranked without the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The generation backends a model can run on, by the name `backend=` (and the front-ends' `backend` keys) use.
#: Lives here, below both retrieval and decoding, so the query writer and reranker check the same names the decoder
#: builds (`selfrag.decoding.backend.make_backend`).
BACKENDS = ("hf", "vllm")

#: Full-vocabulary probabilities of the tokens of one reflection group at one position, keyed by token string.
GroupProbs = dict[str, float]


@dataclass(frozen=True)
class Passage:
    """One retrievable passage. `id` is the corpus id as a string; `score` the retriever's score, if any."""

    id: str
    title: str
    text: str
    score: float | None = None


@dataclass(frozen=True)
class Query:
    """One input to the decoder.

    Attributes:
        id: the input row's id (stringified).
        question: the user-facing question or claim, as in the input file (used as the retrieval query).
        instruction: what goes into the prompt's instruction slot (task instruction + question + options).
        passages: static passages from the input file (`ctxs`), best first; empty when a live retriever is used.
        options: the normalised answer options of a closed-set task (ARC letters, "true"/"false"), else None.
    """

    id: str
    question: str
    instruction: str
    passages: tuple[Passage, ...] = ()
    options: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Completion:
    """One greedy continuation from a backend.

    Attributes:
        token_ids: the generated ids, including the stop/EOS token when generation ended on one.
        logprobs: log p of each generated token under the model's full (unprocessed) distribution.
        stopped: True when generation ended on EOS or a stop token, False when it hit the length limit.
        tracked: for each generated position, the exact log-probabilities of the `track_token_ids` the backend was
            asked to follow (in that order), read from the same full distribution the token was chosen from.
    """

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    stopped: bool
    tracked: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class ScoreRequest:
    """Ask a backend for exact next-token log-probabilities inside one token sequence.

    For each `(position, token_ids)` in `queries`, the answer is `log p(t | sequence[:position])` for every `t` in
    `token_ids`, computed from the full-vocabulary distribution (never from a truncated top-k list).
    """

    sequence: tuple[int, ...]
    queries: tuple[tuple[int, tuple[int, ...]], ...]


@dataclass(frozen=True)
class Candidate:
    """One scored continuation: a short-form answer candidate or one long-form segment.

    The raw group probabilities are kept so that final scores can be recomputed with other reward weights.
    `rel_probs` is None when no passage preceded the continuation; `sup_probs`/`use_probs` are None when the model
    did not emit a support / utility token in it.
    """

    text: str
    answer: str
    passage: Passage | None
    seq: float
    rel_probs: GroupProbs | None = None
    sup_probs: GroupProbs | None = None
    use_probs: GroupProbs | None = None
    finished: bool = True


@dataclass(frozen=True)
class Segment:
    """One segment of a long-form answer, with the citation index of its passage in the prediction's `docs`."""

    candidate: Candidate
    citation: int | None


@dataclass(frozen=True)
class Beam:
    """A path of segments through the long-form search tree."""

    segments: tuple[Candidate, ...] = ()
    finished: bool = False


@dataclass(frozen=True)
class Prediction:
    """The decoder's result for one query (short or long form)."""

    query: Query
    answer: str
    output: str
    retrieved: bool
    p_retrieve: float | None
    candidates: tuple[Candidate, ...]
    segments: tuple[Segment, ...] = ()
    docs: tuple[Passage, ...] = ()
    beams: tuple[Beam, ...] = field(default=())
    corrective: dict[str, Any] | None = None  # what the corrective retry did (query, passage ids), if it ran

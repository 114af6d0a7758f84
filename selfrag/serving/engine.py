"""A batch of chat requests -> decoder calls -> one `predictions.jsonl` record (the trace) per request.

Requests carry their own decoding settings, and one decoder call runs under one `DecodingConfig`. The batch is
therefore grouped, and each group is one `SelfRAGPredictor.predict` call (the same call `infer` makes, so a trace
is exactly a `predictions.jsonl` record):

- **Short form**: the reward weights (`w_rel`, `w_sup`, `w_use`, `use_seqscore`) do not change what is generated,
  only which candidate is chosen. Requests that differ only in their weights share a group: the group is decoded
  once, and each request's record is re-decided under its own weights by `selfrag.decoding.records.rerank` (the
  saved decision kept), which is exactly what decoding under those weights gives (same candidates, same choice
  rule). Everything else (mode, threshold, ndocs, max_new_tokens, score_all_paths) changes the work and splits
  groups.
- **Long form**: the weights prune the beams during the search, so every setting splits groups.

Each request is first checked alone against the model's context (`SelfRAGPredictor.check`), so a too-long question
is refused by itself; a group whose call still fails on a request's input is retried one request at a time, so only
the offending request fails. Everything here runs in the batcher's single worker thread: the model and its
tokenizer are never used from two threads.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from selfrag.decoding.config import DEFAULT_WEIGHTS, DecodingConfig
from selfrag.decoding.records import rerank
from selfrag.decoding.run import SelfRAGPredictor
from selfrag.io import InputError
from selfrag.serving.config import RequestError
from selfrag.types import Query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatJob:
    """One chat request for the decoder: its query (question, static passages) and its decoding settings."""

    query: Query
    config: DecodingConfig


@dataclass(frozen=True)
class ChatResult:
    """The trace (a `predictions.jsonl` record) of one request and approximate token counts for `usage`."""

    row: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int


@dataclass
class DecoderStats:
    """Decoder calls made and how many requests each served (the point of batching)."""

    calls: int = 0
    requests: int = 0
    largest: int = 0
    shared: int = 0  # calls that served more than one request
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, size: int) -> None:
        with self._lock:
            self.calls += 1
            self.requests += size
            self.largest = max(self.largest, size)
            self.shared += size > 1

    def as_json(self) -> dict[str, Any]:
        return {"decoder_calls": self.calls, "requests": self.requests, "largest_call": self.largest,
                "shared_calls": self.shared}


def _input_refused(err: InputError) -> RequestError:
    """A request the decoder refused (e.g. longer than the model's context), told in the request's words."""
    return RequestError(400, str(err).replace("decoding.", "selfrag."), "messages")


def group_key(config: DecodingConfig) -> DecodingConfig:
    """The settings a group of requests is decoded under: short form ignores the weights (see the module
    docstring), long form keeps them."""
    if config.long_form:
        return config
    return replace(config, w_rel=DEFAULT_WEIGHTS.w_rel, w_sup=DEFAULT_WEIGHTS.w_sup, w_use=DEFAULT_WEIGHTS.w_use,
                   use_seqscore=DEFAULT_WEIGHTS.use_seqscore)


class ServingEngine:
    """The loaded decoder and what the server does with it (`process` is the batcher's worker function).

    Args:
        predictor: an opened `SelfRAGPredictor` (its decoder's own config is the server's default).
    """

    def __init__(self, predictor: SelfRAGPredictor) -> None:
        self.predictor = predictor
        self.stats = DecoderStats()

    def predictor_for(self, config: DecodingConfig) -> SelfRAGPredictor:
        """A predictor over the same model, tokenizer, prompt and retriever under `config` (a shallow copy of the
        decoder: nothing is loaded)."""
        decoder = self.predictor.decoder
        if decoder.config == config:
            return self.predictor
        clone = copy.copy(decoder)
        clone.config = config
        return SelfRAGPredictor(clone)

    def process(self, jobs: Sequence[ChatJob]) -> list[ChatResult | BaseException]:
        """Decode a batch: one result (or the request's own error) per job, in order."""
        results: list[ChatResult | BaseException | None] = [None] * len(jobs)
        groups: dict[DecodingConfig, list[int]] = {}
        for i, job in enumerate(jobs):
            try:
                self.predictor_for(job.config).check([job.query])
            except InputError as err:
                results[i] = _input_refused(err)
                continue
            groups.setdefault(group_key(job.config), []).append(i)
        for key, members in groups.items():
            self._decode(key, members, jobs, results)
        return [r if r is not None else RuntimeError("no result") for r in results]

    def _decode(self, key: DecodingConfig, members: list[int], jobs: Sequence[ChatJob],
                results: list[ChatResult | BaseException | None]) -> None:
        predictor = self.predictor_for(key)
        try:
            rows = predictor.predict([jobs[i].query for i in members])
        except InputError as err:
            if len(members) > 1:  # find the request that caused it: the others still get answers
                for i in members:
                    self._decode(key, [i], jobs, results)
                return
            results[members[0]] = _input_refused(err)
            return
        except Exception as err:
            log.exception("decoding %d requests failed", len(members))
            for i in members:
                results[i] = err
            return
        self.stats.record(len(members))
        for i, row in zip(members, rows):
            weights = jobs[i].config.weights
            if weights != key.weights:  # short form only: re-decide the shared decode under this request's weights
                row = rerank(row, weights)
            results[i] = ChatResult(row, *self._usage(predictor, jobs[i].query, row))

    @staticmethod
    def _usage(predictor: SelfRAGPredictor, query: Query, row: dict[str, Any]) -> tuple[int, int]:
        """(prompt tokens, tokens of the candidates' generated texts): approximate, for OpenAI's `usage`."""
        decoder = predictor.decoder
        prompt = len(decoder.prompt_ids(query))
        generated = sum(len(decoder.codec.encode(c["text"])) for c in row["candidates"])
        return prompt, generated

    def close(self) -> None:
        """Release the model."""
        self.predictor.close()

"""The Self-RAG decoder: adaptive retrieval, per-passage candidates with exact critique scores, and the choice.

`SelfRAG.predict` batches all work across the queries it is given: one one-token scoring call for every first
retrieval decision, then one generation call for every candidate of every query, which also yields all critique
scores (the backend tracks the reflection tokens' log-probabilities at every position). Long form hands the same
operations to `selfrag.decoding.beam`, which sees this decoder only through the `selfrag.decoding.expansion.Expander`
protocol (so beam never imports this module).

With a reader (`decoding.reader=base`) the short-form candidates' answers are written by another model, one per
passage, and the generator critiques each by teacher forcing (`SelfRAG.critique`): three scoring calls, no
generation by the generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from selfrag import tokens as T
from selfrag.decoding.backend import Backend
from selfrag.decoding.beam import long_form_search
from selfrag.decoding.codec import TokenCodec
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.critique import (
    RewardWeights,
    aggregate_options,
    isrel_score,
    option_key,
    retrieve_probability,
    score_candidate,
    sequence_score,
    should_retrieve,
)
from selfrag.decoding.expansion import Continuation, Expansion
from selfrag.decoding.grammar import candidate_problem
from selfrag.decoding.reader import PlainReader, Reading
from selfrag.prompts import PromptFormatter, passage_block, response_text
from selfrag.retrieval.base import Retriever
from selfrag.types import Candidate, Completion, GroupProbs, Passage, Prediction, Query, ScoreRequest


def choose_short_form(
    candidates: Sequence[Candidate], *, retrieve: bool, weights: RewardWeights, options: Sequence[str] | None
) -> tuple[int, str]:
    """Pick the short-form answer: (index of the chosen candidate, answer text).

    With `retrieve`, only candidates with a passage compete (the no-retrieval draft never does, as in the paper);
    otherwise only the no-retrieval candidate. Among those, well-formed candidates (`selfrag.decoding.grammar`) come
    first: an ill-formed one (markup inside the answer, no critique, cut off) competes only when no candidate is
    well-formed, so it cannot win on scores it did not earn. For a closed set, final scores are summed per normalised
    option and the answer is the winning option; the chosen candidate is the best-scored one naming it.

    Raises:
        ValueError: the path asked for was not decoded (e.g. re-thresholding without `score_all_paths`).
    """
    pool = [i for i, c in enumerate(candidates) if (c.passage is not None) == retrieve]
    if not pool:
        path = "passage" if retrieve else "no-retrieval"
        raise ValueError(f"no {path} candidate was decoded for this question")
    well_formed = [i for i in pool if candidate_problem(candidates[i].text, with_passage=retrieve,
                                                        finished=candidates[i].finished) is None]
    pool = well_formed or pool
    finals = {i: score_candidate(candidates[i], weights).final for i in pool}
    if options:
        best_key, _ = aggregate_options([candidates[i].answer for i in pool], [finals[i] for i in pool], options)
        naming = [i for i in pool if option_key(candidates[i].answer, options) == best_key]
        chosen = max(naming, key=lambda i: finals[i])
        return chosen, best_key
    chosen = max(pool, key=lambda i: finals[i])  # max keeps the first of equal scores: passage order breaks ties
    return chosen, candidates[chosen].answer


def top_passages(
    queries: Sequence[Query], ndocs: int, retriever: Retriever | None, contexts: Sequence[str] | None = None
) -> list[list[Passage]]:
    """Top-`ndocs` passages per query: its static passages (`ctxs`) when it has any, else the live retriever's for
    the query text joined with its context (the previous segment in long form), else none."""
    result: list[list[Passage]] = [list(q.passages[:ndocs]) for q in queries]
    live = [i for i, q in enumerate(queries) if not q.passages]
    if live and retriever is not None:
        contexts = contexts if contexts is not None else [""] * len(queries)
        texts = [" ".join(x for x in (queries[i].question, contexts[i]) if x) for i in live]
        for i, found in zip(live, retriever.batch_search(texts, ndocs)):
            result[i] = list(found[:ndocs])
    return result


class SelfRAG:
    """Self-RAG inference over one backend.

    Args:
        backend: a `Backend` over a model that has the reflection tokens.
        tokenizer: that model's Hugging Face tokenizer.
        config: decoding settings.
        prompt: how an instruction becomes a prompt (official format by default).
        retriever: live retriever for queries without static passages (and per segment in long form).
        rewriter: questions -> search queries, for `config.corrective`'s one retry (None: no corrective step).
        reader: writes the short-form candidates' answers instead of the generator (`decoding.reader=base`; None: the
            generator writes them).
        source: how to name the model in error messages.
    """

    def __init__(
        self,
        backend: Backend,
        tokenizer: object,
        config: DecodingConfig,
        *,
        prompt: PromptFormatter | None = None,
        retriever: Retriever | None = None,
        rewriter: Callable[[Sequence[str]], list[str]] | None = None,
        reader: PlainReader | None = None,
        source: str = "the model",
    ) -> None:
        if reader is not None and config.long_form:
            raise ValueError("a reader writes short-form answers only (decoding.long_form=false)")
        self.backend = backend
        self.codec = TokenCodec(tokenizer, source=source)
        self.config = config
        self.prompt = prompt or PromptFormatter()
        self.retriever = retriever
        self.rewriter = rewriter
        self.reader = reader

    # ---- shared operations (short and long form) -------------------------------------------------------------

    def prompt_ids(self, query: Query) -> tuple[int, ...]:
        """Token ids of the prompt for `query` (BOS added for the official format; chat templates carry their own)."""
        return self.codec.encode_prompt(self.prompt(query.instruction), add_special_tokens=self.prompt.style != "chat")

    def retrieve_probabilities(self, prefixes: Sequence[tuple[int, ...]]) -> list[float]:
        """p_ret at the end of each prefix, from the exact probabilities of [Retrieval] and [No Retrieval]."""
        return [retrieve_probability(p) for p in self._probs_after(prefixes, T.RETRIEVE_GROUP)]

    def _probs_after(self, sequences: Sequence[tuple[int, ...]], group: Sequence[str]) -> list[GroupProbs]:
        """Full-vocabulary probabilities of `group`'s tokens right after each sequence, in one scoring call."""
        if not sequences:
            return []
        ids = self.codec.group(group)
        answers = self.backend.score([ScoreRequest(s, ((len(s), ids),)) for s in sequences])
        return [dict(zip(group, map(math.exp, a[0]), strict=True)) for a in answers]

    def _greedy(self, probs: GroupProbs) -> int:
        """The id of the group's most probable token (the first of equal ones): what greedy decoding would write."""
        return self.codec.ids[max(probs, key=lambda t: probs[t])]

    def find_passages(self, queries: Sequence[Query], contexts: Sequence[str]) -> list[list[Passage]]:
        """Top-`ndocs` passages per query: its static passages, else the live retriever's (query text + context)."""
        return top_passages(queries, self.config.ndocs, self.retriever, contexts)

    def expand(self, expansions: Sequence[Expansion], *, stop_at_retrieval: bool) -> list[Continuation]:
        """Generate one greedy continuation per expansion and critique it, all in one backend call.

        The backend follows the 15 reflection tokens at every generated position, so IsRel (first position after
        `</paragraph>`), IsSup and IsUse (where their first token was emitted) and, when a segment ends on
        `[Retrieval]`, the next retrieval decision are all read from the generation itself.
        """
        prompts = [self._start(e) for e in expansions]
        retrieval_id = self.codec.ids[T.RETRIEVAL]
        completions = self.backend.generate(
            prompts,
            max_new_tokens=self.config.max_new_tokens,
            stop_token_ids=self.codec.stop_ids + ((retrieval_id,) if stop_at_retrieval else ()),
            track_token_ids=self._tracked_ids,
        )
        continuations = []
        for prompt, completion, expansion in zip(prompts, completions, expansions):
            generated, logprobs = completion.token_ids, completion.logprobs
            asked = bool(stop_at_retrieval and generated and generated[-1] == retrieval_id)
            next_p_retrieve = None
            if asked:
                next_p_retrieve = retrieve_probability(self._group_probs(completion, len(generated) - 1,
                                                                         T.RETRIEVE_GROUP))
                generated, logprobs = generated[:-1], logprobs[:-1]
            text = self.codec.decode(generated)
            sup_at = self.codec.first_position(generated, T.ISSUP_GROUP)
            use_at = self.codec.first_position(generated, T.ISUSE_GROUP)
            candidate = Candidate(
                text=text,
                answer=T.strip_reflection(text),
                passage=expansion.passage,
                seq=sequence_score(logprobs),
                rel_probs=self._group_probs(completion, 0, T.ISREL_GROUP) if expansion.passage and completion.tracked\
                else None,
                sup_probs=self._group_probs(completion, sup_at, T.ISSUP_GROUP) if sup_at is not None else None,
                use_probs=self._group_probs(completion, use_at, T.ISUSE_GROUP) if use_at is not None else None,
                finished=not asked,
            )
            continuations.append(Continuation(candidate, prompt, tuple(generated), next_p_retrieve))
        return continuations

    def _start(self, expansion: Expansion) -> tuple[int, ...]:
        """Where a candidate's own tokens begin: the prefix, then the passage block or `[No Retrieval]`."""
        if expansion.passage is None:
            return expansion.prefix + (self.codec.ids[T.NO_RETRIEVAL],)
        return expansion.prefix + self.codec.encode(passage_block(expansion.passage))

    def critique(self, expansions: Sequence[Expansion], readings: Sequence[Reading]) -> list[Continuation]:
        """Candidates whose answers another model wrote (`readings[k]` for `expansions[k]`), critiqued by the generator
        by teacher forcing: each answer is put where the generator would have written its own, and the reflection
        tokens are read from the full distribution there, in three scoring calls for all expansions:

        1. IsRel right after the passage block (the same position `expand` reads it at);
        2. after the more probable IsRel token and the answer's tokens, IsSup (passage candidates only);
        3. after the more probable IsSup token (passage candidates) or right after the answer (none), IsUse.

        The candidate's text is the answer between those greedy tokens (`[Relevant]answer[Fully supported]
        [Utility:5]`, the generator's own layout), its answer the reader's (reflection markup removed, as the
        standard-RAG baseline reports it) and its sequence score the reader's likelihood of that answer. It counts as
        finished: its critique is read whatever the answer's length, and an answer that reached `max_new_tokens` is
        kept as the reader wrote it, as `method=standard_rag` keeps it.
        """
        starts = [self._start(e) for e in expansions]
        answers = [r.answer for r in readings]
        with_passage = [k for k, e in enumerate(expansions) if e.passage is not None]
        rel = dict(zip(with_passage, self._probs_after([starts[k] for k in with_passage], T.ISREL_GROUP),
                       strict=True))
        bodies = [starts[k] + ((self._greedy(rel[k]),) if k in rel else ()) + self.codec.encode(answers[k])
                  for k in range(len(expansions))]
        sup = dict(zip(with_passage, self._probs_after([bodies[k] for k in with_passage], T.ISSUP_GROUP),
                       strict=True))
        ends = [bodies[k] + ((self._greedy(sup[k]),) if k in sup else ()) for k in range(len(expansions))]
        use = self._probs_after(ends, T.ISUSE_GROUP)
        continuations = []
        for k, (expansion, reading) in enumerate(zip(expansions, readings, strict=True)):
            generated = ends[k][len(starts[k]):] + (self._greedy(use[k]),)
            candidate = Candidate(text=self.codec.decode(generated), answer=answers[k], passage=expansion.passage,
                                  seq=sequence_score(reading.logprobs), rel_probs=rel.get(k), sup_probs=sup.get(k),
                                  use_probs=use[k], finished=True)
            continuations.append(Continuation(candidate, starts[k], generated, None))
        return continuations

    def _candidates(self, expansions: Sequence[Expansion], queries: Sequence[Query]) -> list[Continuation]:
        """Short form's candidates, `queries[k]` asking `expansions[k]`: written and critiqued by the generator
        (`expand`), or with a reader written by it from the expansion's passage alone and critiqued (`critique`)."""
        if not expansions:  # e.g. a corrective retry that found only passages already tried: no model call
            return []
        if self.reader is None:
            return self.expand(expansions, stop_at_retrieval=False)
        readings = self.reader.read([q.id for q in queries], [q.instruction for q in queries],
                                    [[e.passage] if e.passage is not None else [] for e in expansions])
        return self.critique(expansions, readings)

    def close(self) -> None:
        """Release the generator's backend and the reader's."""
        self.backend.close()
        if self.reader is not None:
            self.reader.close()

    @property
    def _tracked_ids(self) -> tuple[int, ...]:
        return self.codec.group(T.REFLECTION_TOKENS)

    def _group_probs(self, completion: Completion, position: int, group: Sequence[str]) -> dict[str, float]:
        """Full-vocabulary probabilities of `group`'s tokens at a generated position, from the tracked log-probs."""
        row = completion.tracked[position]
        return {token: math.exp(row[T.REFLECTION_TOKENS.index(token)]) for token in group}

    # ---- short form ----------------------------------------------------------------------------------------------

    def predict(self, queries: Sequence[Query]) -> list[Prediction]:
        """Answer every query (short form, or long form when `config.long_form`)."""
        if self.config.long_form:
            return long_form_search(self, queries)
        return self._short_form(queries)

    def _short_form(self, queries: Sequence[Query]) -> list[Prediction]:
        config = self.config
        prompts = [self.prompt_ids(q) for q in queries]
        p_ret = self.retrieve_probabilities(prompts)
        decide = [should_retrieve(p, mode=config.mode, threshold=config.threshold) for p in p_ret]
        # Retrieve after deciding: only queries that will use passages reach the retriever.
        wanted = [i for i, d in enumerate(decide) if d or config.score_all_paths]
        passages: list[list[Passage]] = [[] for _ in queries]
        for i, found in zip(wanted, self.find_passages([queries[i] for i in wanted], [""] * len(wanted))):
            passages[i] = found
        expansions: list[Expansion] = []
        owners: list[int] = []
        for i, prompt in enumerate(prompts):
            found = passages[i]
            for passage in found:
                expansions.append(Expansion(prompt, passage))
                owners.append(i)
            # Without passages a retrieving query falls back to answering without retrieval.
            if not decide[i] or not found or config.score_all_paths:
                expansions.append(Expansion(prompt, None))
                owners.append(i)
        per_query: list[list[Continuation]] = [[] for _ in queries]
        for owner, item in zip(owners, self._candidates(expansions, [queries[o] for o in owners])):
            per_query[owner].append(item)
        corrective = self._corrective_retry(queries, prompts, decide, passages, per_query)
        predictions = []
        for i, query in enumerate(queries):
            candidates = tuple(e.candidate for e in per_query[i])
            retrieved = decide[i] and any(c.passage is not None for c in candidates)
            chosen, answer = choose_short_form(
                candidates, retrieve=retrieved, weights=config.weights, options=query.options
            )
            predictions.append(
                Prediction(
                    query=query,
                    answer=answer,
                    output=response_text([candidates[chosen]]),
                    retrieved=retrieved,
                    p_retrieve=p_ret[i],
                    candidates=candidates,
                    corrective=corrective.get(i),
                )
            )
        return predictions

    def _corrective_retry(self, queries: Sequence[Query], prompts: Sequence[tuple[int, ...]], decide: Sequence[bool],
                          passages: Sequence[Sequence[Passage]], per_query: list[list[Continuation]]
                          ) -> dict[int, dict[str, Any]]:
        """CRAG's corrective step, at most once per question: where a retrieving question's passage candidates all
        have IsRel below `config.corrective_threshold`, rewrite the question, retrieve `ndocs` passages for the
        rewrite and decode those not already tried, adding them to `per_query`. Returns what each retry did."""
        config = self.config
        if not config.corrective or self.rewriter is None or self.retriever is None:
            return {}
        weak = [i for i, found in enumerate(passages) if decide[i] and found and all(
            (isrel_score(c.candidate.rel_probs) if c.candidate.rel_probs else 0.0) < config.corrective_threshold
            for c in per_query[i] if c.candidate.passage is not None)]
        if not weak:
            return {}
        rewritten = self.rewriter([queries[i].question for i in weak])
        record: dict[int, dict[str, Any]] = {}
        expansions, owners = [], []
        for i, query, found in zip(weak, rewritten, self.retriever.batch_search(rewritten, config.ndocs)):
            tried = {p.id for p in passages[i]}
            fresh = [p for p in found if p.id not in tried]
            record[i] = {"query": query, "passage_ids": [p.id for p in fresh]}
            expansions += [Expansion(prompts[i], p) for p in fresh]
            owners += [i] * len(fresh)
        for owner, item in zip(owners, self._candidates(expansions, [queries[o] for o in owners])):
            per_query[owner].append(item)
        return record

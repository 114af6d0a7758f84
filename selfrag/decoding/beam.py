"""Long-form Self-RAG: segment-level beam search with a retrieval decision at every segment boundary.

At each depth every live beam of every query is advanced in one batch:
1. p_ret is read at the beam's end (the segment boundary): for the first segment by one scoring request per query,
   later from the generation that stopped on `[Retrieval]`; `adaptive` retrieves iff p_ret > threshold;
2. a retrieving beam gets one continuation per passage (static passages, or the live retriever queried with the
   question plus the previous segment), a non-retrieving beam one continuation after `[No Retrieval]`;
3. each continuation runs to the next `[Retrieval]` token, EOS or the token limit, and is critiqued exactly;
4. per query, the new children and the already finished beams compete, and the best `beam_width` survive.

A beam's score is the mean final score of its segments, so finished short beams and live longer ones compare on
the same scale. Differences from the reference code, on purpose (docs/deviations.md): IsUse is read from the
utility tokens, the sequence score and the user's weights are honoured, every child is built from its own parent's
ids (no sibling contamination), special tokens are never stripped before parsing, adaptive retrieval is decided at
every boundary on probabilities, and citations index into a de-duplicated `docs` list without touching the text.

The search sees the decoder only through `selfrag.decoding.expansion.Expander` (prompt ids, p_ret, passages,
expansion), so this module does not import `selfrag.decoding.pipeline`, which imports it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from selfrag.decoding.critique import RewardWeights, score_candidate, should_retrieve
from selfrag.decoding.expansion import Expander, Expansion
from selfrag.prompts import response_text
from selfrag.types import Beam, Candidate, Passage, Prediction, Query, Segment


@dataclass(frozen=True)
class _Node:
    """A beam plus the token ids it ends at (prompt + every segment so far) and p_ret there, once known."""

    beam: Beam
    ids: tuple[int, ...]
    p_retrieve: float | None = None


def beam_score(beam: Beam, weights: RewardWeights) -> float:
    """Mean final score of the beam's segments (0 for an empty beam)."""
    if not beam.segments:
        return 0.0
    return sum(score_candidate(c, weights).final for c in beam.segments) / len(beam.segments)


def prune(nodes: Sequence[_Node], width: int, weights: RewardWeights) -> list[_Node]:
    """Keep the best `width` nodes by beam score; equal scores keep their incoming order (stable sort)."""
    return sorted(nodes, key=lambda n: -beam_score(n.beam, weights))[:width]


def _cite(text: str, index: int) -> str:
    """Insert ` [index]` before the text's final sentence punctuation (or append it), never dropping characters."""
    stripped = text.rstrip()
    match = re.search(r"[.!?]+[\"')\]]*$", stripped)
    if match:
        return f"{stripped[: match.start()].rstrip()} [{index}]{stripped[match.start():]}"
    return f"{stripped} [{index}]"


def attach_citations(segments: Sequence[Candidate]) -> tuple[tuple[Segment, ...], tuple[Passage, ...], str]:
    """Number each segment's passage by first appearance; return (segments, docs, answer with `[i]` markers).

    A passage cited by several segments keeps one number, so `[i]` always points at `docs[i-1]`.
    """
    docs: list[Passage] = []
    index_of: dict[str, int] = {}
    out: list[Segment] = []
    parts: list[str] = []
    for candidate in segments:
        citation = None
        if candidate.passage is not None:
            key = candidate.passage.id
            if key not in index_of:
                docs.append(candidate.passage)
                index_of[key] = len(docs)
            citation = index_of[key]
        out.append(Segment(candidate=candidate, citation=citation))
        if candidate.answer:
            parts.append(_cite(candidate.answer, citation) if citation is not None else candidate.answer)
    return tuple(out), tuple(docs), " ".join(parts)


def long_form_search(decoder: Expander, queries: Sequence[Query]) -> list[Prediction]:
    """Run segment-level beam search for every query, batching each depth across all queries and beams."""
    config = decoder.config
    weights = config.weights
    frontier: list[list[_Node]] = [[_Node(Beam(), decoder.prompt_ids(q))] for q in queries]
    first_p_ret: list[float | None] = [None] * len(queries)
    for depth in range(config.max_depth):
        live = [(qi, node) for qi, nodes in enumerate(frontier) for node in nodes if not node.beam.finished]
        if not live:
            break
        unknown = [node.ids for _, node in live if node.p_retrieve is None]
        scored = iter(decoder.retrieve_probabilities(unknown) if unknown else [])
        p_ret = [node.p_retrieve if node.p_retrieve is not None else next(scored) for _, node in live]
        if depth == 0:
            for (qi, _), p in zip(live, p_ret):
                first_p_ret[qi] = p
        decide = [should_retrieve(p, mode=config.mode, threshold=config.threshold) for p in p_ret]
        # Retrieve after deciding: only retrieving beams query the retriever (question + their previous segment).
        retrieving = [j for j, d in enumerate(decide) if d]
        passages: list[list[Passage]] = [[] for _ in live]
        contexts = [live[j][1].beam.segments[-1].answer if live[j][1].beam.segments else "" for j in retrieving]
        for j, found in zip(retrieving, decoder.find_passages([queries[live[j][0]] for j in retrieving], contexts)):
            passages[j] = found
        expansions, parents = [], []
        for (qi, node), retrieve, found in zip(live, decide, passages):
            for passage in (found if retrieve and found else [None]):
                expansions.append(Expansion(node.ids, passage))
                parents.append((qi, node))
        children: list[list[_Node]] = [[n for n in nodes if n.beam.finished] for nodes in frontier]
        for (qi, parent), continuation in zip(parents, decoder.expand(expansions, stop_at_retrieval=True)):
            candidate = continuation.candidate
            beam = Beam(segments=parent.beam.segments + (candidate,), finished=candidate.finished)
            children[qi].append(_Node(beam, continuation.ids, continuation.next_p_retrieve))
        frontier = [prune(nodes, config.beam_width, weights) for nodes in children]
    predictions = []
    for qi, query in enumerate(queries):
        ranked = prune(frontier[qi], len(frontier[qi]), weights)
        best = ranked[0]
        segments, docs, answer = attach_citations(best.beam.segments)
        predictions.append(
            Prediction(
                query=query,
                answer=answer,
                output=response_text(best.beam.segments),
                retrieved=any(c.passage is not None for c in best.beam.segments),
                p_retrieve=first_p_ret[qi],
                candidates=best.beam.segments,
                segments=segments,
                docs=docs,
                beams=tuple(n.beam for n in ranked),
            )
        )
    return predictions

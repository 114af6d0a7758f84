"""Predictions as JSON (the `predictions.jsonl` schema, docs/formats.md) and back, and re-ranking saved predictions.

Every candidate is written with its raw group probabilities (`probs`) and sequence score, so `rerank` can apply
other reward weights (and, in short form, another retrieval mode or threshold) to a saved file without the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selfrag.decoding.beam import attach_citations, beam_score
from selfrag.decoding.critique import RewardWeights, score_candidate, should_retrieve
from selfrag.decoding.pipeline import choose_short_form
from selfrag.io import InputError
from selfrag.prompts import response_text
from selfrag.types import Beam, Candidate, Passage, Prediction, Query


def candidate_to_json(candidate: Candidate, weights: RewardWeights) -> dict[str, Any]:
    """One candidate with its scores under `weights` and the raw group probabilities behind them."""
    scores = score_candidate(candidate, weights)
    passage = candidate.passage
    return {
        "passage_id": passage.id if passage else None,
        "passage_title": passage.title if passage else None,
        "passage_text": passage.text if passage else None,
        "text": candidate.text,
        "answer": candidate.answer,
        "finished": candidate.finished,
        "scores": {"rel": scores.rel, "sup": scores.sup, "use": scores.use, "seq": scores.seq, "final": scores.final},
        "probs": {"rel": candidate.rel_probs, "sup": candidate.sup_probs, "use": candidate.use_probs},
    }


def candidate_from_json(row: dict[str, Any]) -> Candidate:
    """Rebuild a Candidate from `candidate_to_json` output."""
    passage = None
    if row["passage_id"] is not None:
        passage = Passage(row["passage_id"], row["passage_title"] or "", row.get("passage_text") or "")
    probs = row["probs"]
    return Candidate(
        text=row["text"],
        answer=row["answer"],
        passage=passage,
        seq=row["scores"]["seq"],
        rel_probs=probs["rel"],
        sup_probs=probs["sup"],
        use_probs=probs["use"],
        finished=row.get("finished", True),
    )


def passage_to_json(passage: Passage) -> dict[str, Any]:
    """A passage as it appears in a prediction's `docs`: {id, title, text, score}."""
    return {"id": passage.id, "title": passage.title, "text": passage.text, "score": passage.score}


def prediction_to_json(prediction: Prediction, weights: RewardWeights) -> dict[str, Any]:
    """The `predictions.jsonl` object for one prediction."""
    query = prediction.query
    row: dict[str, Any] = {
        "id": query.id,
        "question": query.question,
        "answer": prediction.answer,
        "output": prediction.output,
        "retrieved": prediction.retrieved,
        "p_retrieve": prediction.p_retrieve,
        "options": list(query.options) if query.options else None,
        "candidates": [candidate_to_json(c, weights) for c in prediction.candidates],
        "segments": [
            {"text": s.candidate.answer, "passage_id": s.candidate.passage.id if s.candidate.passage else None,
             "citation": s.citation}
            for s in prediction.segments
        ],
        "docs": [passage_to_json(p) for p in prediction.docs],
    }
    if prediction.corrective is not None:
        row["corrective"] = prediction.corrective
    if prediction.beams:
        row["beams"] = [
            {"score": beam_score(b, weights), "segments": [candidate_to_json(c, weights) for c in b.segments]}
            for b in prediction.beams
        ]
    return row


def first_passages(candidates: Sequence[Candidate], ndocs: int) -> tuple[Candidate, ...]:
    """The candidates of the first `ndocs` passages (in saved order) and every candidate without a passage.

    Raises:
        ValueError: `ndocs` < 1.
    """
    if ndocs < 1:
        raise ValueError(f"ndocs must be at least 1, got {ndocs}")
    kept, seen = [], 0
    for candidate in candidates:
        if candidate.passage is None:
            kept.append(candidate)
        elif seen < ndocs:
            kept.append(candidate)
            seen += 1
    return tuple(kept)


def rerank(
    row: dict[str, Any],
    weights: RewardWeights,
    *,
    mode: str | None = None,
    threshold: float | None = None,
    ndocs: int | None = None,
) -> dict[str, Any]:
    """Re-score one saved prediction under new weights (and, short form, a new mode/threshold); no model needed.

    Short form re-decides retrieval from the saved `p_retrieve` and re-picks the answer among the saved candidates;
    with `ndocs`, only the candidates of the first `ndocs` passages compete (passage candidates are saved in the
    retriever's order and each is decoded on its own, so this is the choice a run with that `ndocs` would make).
    Long form re-ranks the saved final beams (the search itself is not repeated, so beams pruned during the original
    search cannot come back).

    Raises:
        InputError: the row lacks what re-ranking needs, e.g. a path never decoded (rerun with
            decoding.score_all_paths=true to re-threshold freely).
    """
    where = f"prediction id={row.get('id')!r}"
    try:
        query = Query(id=row["id"], question=row["question"], instruction=row["question"],
                      options=tuple(row["options"]) if row.get("options") else None)
        if "beams" in row:
            beams = [Beam(tuple(candidate_from_json(c) for c in b["segments"]), True) for b in row["beams"]]
            best = max(beams, key=lambda b: beam_score(b, weights))  # first of equals: original order breaks ties
            segments, docs, answer = attach_citations(best.segments)
            prediction = Prediction(
                query=query, answer=answer, output=response_text(best.segments), retrieved=row["retrieved"],
                p_retrieve=row["p_retrieve"], candidates=best.segments, segments=segments, docs=docs,
                beams=tuple(sorted(beams, key=lambda b: -beam_score(b, weights))),
            )
            return prediction_to_json(prediction, weights)
        candidates = tuple(candidate_from_json(c) for c in row["candidates"])
        if ndocs is not None:
            candidates = first_passages(candidates, ndocs)
        retrieved = row["retrieved"]
        if threshold is not None and mode is None:
            mode = "adaptive"
        if mode is not None:
            if mode == "adaptive" and threshold is None:
                raise ValueError("re-deciding adaptive retrieval needs a threshold")
            retrieved = should_retrieve(row["p_retrieve"], mode=mode, threshold=threshold or 0.0)
            if retrieved and not any(c.passage is not None for c in candidates):
                retrieved = False  # no passages were available for this question at all
        chosen, answer = choose_short_form(candidates, retrieve=retrieved, weights=weights, options=query.options)
    except KeyError as err:
        raise InputError(f"{where}: missing field {err}; is this a predictions.jsonl written by infer?") from None
    except ValueError as err:
        raise InputError(f"{where}: {err}; rerun infer with decoding.score_all_paths=true to re-threshold") from None
    best = candidates[chosen]
    prediction = Prediction(
        query=query, answer=answer, output=response_text([best]), retrieved=retrieved, p_retrieve=row["p_retrieve"],
        candidates=candidates,
    )
    return prediction_to_json(prediction, weights)


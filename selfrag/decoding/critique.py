"""Pure critique scoring: reflection-token probabilities -> retrieval decision, IsRel/IsSup/IsUse and final scores.

Formulas (docs/decoding.md). `p(t)` is the model's full-vocabulary probability of token `t` at the position where
its group is decided; each score renormalises within its group:

- retrieve: p_ret = p([Retrieval]) / (p([Retrieval]) + p([No Retrieval])), compared with the threshold as a
  probability (the reference code compares log-probabilities and so retrieves almost always);
- IsRel: p([Relevant]) / (p([Relevant]) + p([Irrelevant]));
- IsSup: (p(Fully) + 0.5 p(Partially)) / (p(Fully) + p(Partially) + p(No support));
- IsUse: sum_i w_i p([Utility:i]) / sum_j p([Utility:j]) with w = (-1, -0.5, 0, 0.5, 1);
- final: exp(mean token log-prob) [if use_seqscore] + w_rel IsRel + w_sup IsSup + w_use IsUse, where a score whose
  token was never emitted contributes 0 (as in the paper's code).

Nothing here touches a model: these functions are what re-ranking saved predictions runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from selfrag import tokens as T
from selfrag.types import Candidate, GroupProbs

#: Utility weights for [Utility:1] .. [Utility:5].
UTILITY_WEIGHTS: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)

RETRIEVAL_MODES = ("adaptive", "always", "never")


@dataclass(frozen=True)
class RewardWeights:
    """How candidate scores combine: final = seq [if use_seqscore] + w_rel IsRel + w_sup IsSup + w_use IsUse.

    The field defaults (the paper's: w_rel 1.0, w_sup 1.0, w_use 0.5, with the sequence score) are the library's one
    statement of the default weights: `DecodingConfig` takes its defaults from them, and a `null` weight in a config
    (`conf/decoding/default.yaml`, `conf/rerank.yaml`) means "this default" (`selfrag.decoding.config.parse_weights`).
    """

    w_rel: float = 1.0
    w_sup: float = 1.0
    w_use: float = 0.5
    use_seqscore: bool = True

    def __post_init__(self) -> None:
        for name in ("w_rel", "w_sup", "w_use"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise ValueError(
                    f"decoding.{name} must be a number >= 0, got {value!r}: a negative weight would reward the "
                    f"opposite of the critique; set it to 0 to ignore that aspect"
                )


def _renormalised(probs: GroupProbs, group: Sequence[str]) -> list[float]:
    missing = [t for t in group if t not in probs]
    if missing:
        raise KeyError(f"group probabilities lack {missing}; got {sorted(probs)}")
    values = [float(probs[t]) for t in group]
    total = math.fsum(values)
    if total <= 0.0:
        # Every token of the group underflowed: the model gives the group no mass, so it expresses no preference.
        return [1.0 / len(values)] * len(values)
    return [v / total for v in values]


def retrieve_probability(probs: GroupProbs) -> float:
    """p([Retrieval]) renormalised against [No Retrieval]."""
    return _renormalised(probs, T.RETRIEVE_GROUP)[0]


def should_retrieve(p_retrieve: float | None, *, mode: str, threshold: float) -> bool:
    """The retrieval decision: `always`, `never`, or `adaptive` (retrieve iff p_retrieve > threshold)."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    if mode != "adaptive":
        raise ValueError(f"decoding.mode must be one of {', '.join(RETRIEVAL_MODES)}, got {mode!r}")
    if p_retrieve is None:
        raise ValueError("adaptive retrieval needs p_retrieve; it is missing (was the probe skipped?)")
    return p_retrieve > threshold


def isrel_score(probs: GroupProbs) -> float:
    """IsRel: p([Relevant]) renormalised against [Irrelevant]."""
    return _renormalised(probs, T.ISREL_GROUP)[0]


def issup_score(probs: GroupProbs) -> float:
    """IsSup: full support counts 1, partial support 0.5, no support 0, renormalised over the three."""
    fully, partially, _ = _renormalised(probs, T.ISSUP_GROUP)
    return fully + 0.5 * partially


def isuse_score(probs: GroupProbs) -> float:
    """IsUse: the utility weights (-1, -0.5, 0, 0.5, 1) averaged under the renormalised utility distribution."""
    return math.fsum(w * p for w, p in zip(UTILITY_WEIGHTS, _renormalised(probs, T.ISUSE_GROUP), strict=True))


def sequence_score(logprobs: Sequence[float]) -> float:
    """exp(mean token log-prob): the length-normalised likelihood of a continuation (0 for an empty one)."""
    if not logprobs:
        return 0.0
    return math.exp(math.fsum(logprobs) / len(logprobs))


@dataclass(frozen=True)
class CandidateScores:
    """The weight-independent scores of one candidate and its final score under some weights."""

    rel: float | None
    sup: float | None
    use: float | None
    seq: float
    final: float


def score_candidate(candidate: Candidate, weights: RewardWeights) -> CandidateScores:
    """Score one candidate from its stored probabilities under `weights`."""
    rel = isrel_score(candidate.rel_probs) if candidate.rel_probs is not None else None
    sup = issup_score(candidate.sup_probs) if candidate.sup_probs is not None else None
    use = isuse_score(candidate.use_probs) if candidate.use_probs is not None else None
    final = (
        (candidate.seq if weights.use_seqscore else 0.0)
        + weights.w_rel * (rel or 0.0)
        + weights.w_sup * (sup or 0.0)
        + weights.w_use * (use or 0.0)
    )
    return CandidateScores(rel=rel, sup=sup, use=use, seq=candidate.seq, final=final)


_OPTION_SYNONYMS = {"supports": "true", "supported": "true", "refutes": "false", "refuted": "false"}


def normalise_option(answer: str, options: Sequence[str]) -> str | None:
    """Map a free-text answer to one of a closed set's options, or None when it names none.

    Options are compared case-insensitively at the start of the answer, as a whole word: "B", "b.", "(B) Paris" and
    "B: the moon" all give "B"; "True, because..." and "SUPPORTS" give "true" for a true/false task.
    """
    text = answer.strip().lower()
    text = re.sub(r"^(the\s+)?(answer|option)\s*(is)?\s*[:\-]?\s*", "", text)
    text = text.lstrip("([{\"' ")
    first_word = re.split(r"[^a-z0-9]", text, maxsplit=1)[0] if text else ""
    first_word = _OPTION_SYNONYMS.get(first_word, first_word)
    for option in options:
        if first_word == option.lower():
            return option
    return None


def option_key(answer: str, options: Sequence[str]) -> str:
    """The key a closed-set answer is pooled under: its option, else its own lower-cased text."""
    return normalise_option(answer, options) or answer.strip().lower()


def aggregate_options(
    answers: Iterable[str], finals: Iterable[float], options: Sequence[str]
) -> tuple[str, dict[str, float]]:
    """Closed-set choice: sum final scores per normalised option and return (best key, sums).

    Candidates whose answer names no option are pooled under their own lower-cased text, so they still compete (as
    in the reference code, which sums per identical answer string). Ties go to the key seen first.
    """
    totals: dict[str, float] = {}
    for answer, final in zip(answers, finals, strict=True):
        key = option_key(answer, options)
        totals[key] = totals.get(key, 0.0) + final
    if not totals:
        raise ValueError("no candidates to aggregate")
    best = max(totals, key=lambda k: totals[k])  # max keeps the first maximal key: insertion order breaks ties
    return best, totals

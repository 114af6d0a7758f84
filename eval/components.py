"""Model-based scorers that may be unavailable offline: NLI for ASQA citations (ALCE) and FactScore for Biography.

Each scorer either produces a number or an `Unavailable(reason=...)` value that says why not (no model configured,
the model failed to load, no knowledge passages); reports print that reason and never a made-up number. The
citation recall/precision arithmetic is pure and takes any `NLIScorer`, so it is tested with a fake one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Unavailable:
    """A metric that could not be computed, and why (printed in reports instead of a number)."""

    reason: str

    def __str__(self) -> str:
        return f"unavailable ({self.reason})"

    def to_json(self) -> dict[str, str]:
        """The JSON form used in metrics files: `{"unavailable": reason}`."""
        return {"unavailable": self.reason}


class ComponentUnavailable(RuntimeError):
    """Raised by a scorer whose model is not configured or cannot be loaded; callers turn it into `Unavailable`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class NLIScorer(Protocol):
    """Textual entailment: does `premise` entail `hypothesis`? May raise `ComponentUnavailable`."""

    def entails(self, premise: str, hypothesis: str) -> bool: ...


@dataclass(frozen=True)
class FactScoreResult:
    """FactScore of one generation.

    Attributes:
        n_facts: atomic facts extracted from the generation.
        n_supported: facts supported by the knowledge source.
        init_score: n_supported / n_facts (0 when there are no facts).
        score: init_score times FactScore's length penalty exp(1 - gamma / n_facts) when n_facts < gamma (the
            factscore package's default gamma is 10), so short generations cannot score high by saying little.
    """

    n_facts: int
    n_supported: int
    init_score: float
    score: float


@runtime_checkable
class FactScorer(Protocol):
    """FactScore: the fraction of a generation's atomic facts that the knowledge source about `topic` supports."""

    def score(self, topic: str, generation: str, knowledge: Sequence[str]) -> FactScoreResult | Unavailable: ...


# --- text helpers (ALCE conventions) --------------------------------------------------------------------------------

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
# A sentence runs to . ! or ? followed by whitespace or the end, taking along citation markers right after it
# ("... Paris. [1] It" keeps "[1]" with "Paris."); an unterminated tail is a sentence too. ALCE uses NLTK's punkt
# here; this differs only around abbreviations ("U.S. Army" is split).
_SENTENCE = re.compile(r"\S.*?(?:[.!?](?:\s*\[\d+(?:\s*,\s*\d+)*\])*(?=\s|$)|$)", re.DOTALL)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences (non-empty, stripped); citation markers stay with the sentence they follow."""
    return [s.strip() for s in _SENTENCE.findall(text.strip()) if s.strip()]


def find_citations(sentence: str) -> list[int]:
    """The 1-based citation numbers in a sentence, in order: "[1][3]" and "[1, 3]" both give [1, 3]."""
    return [int(n) for group in _CITATION.findall(sentence) for n in group.split(",")]


def remove_citations(text: str) -> str:
    """Text without its citation markers ("Paris [1][2]." -> "Paris."), as ALCE scores everything but citations."""
    return re.sub(r"[ \t]*" + _CITATION.pattern, "", text).strip()


def format_passage(title: str, text: str) -> str:
    """A passage as the NLI premise sees it (ALCE's format): "Title: {title}\\n{text}"."""
    return f"Title: {title}\n{text}"


# --- ALCE citation recall / precision ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CitationScores:
    """ALCE citation quality of one answer (see `citation_scores`)."""

    recall: float
    precision: float
    n_sentences: int
    n_citations: int


def citation_scores(
    output: str,
    docs: Sequence[Mapping[str, Any]],
    nli: NLIScorer | None,
    *,
    at_most_citations: int = 3,
) -> CitationScores | Unavailable:
    """ALCE citation recall and precision of one answer whose sentences cite `docs` as [1], [2], ... (1-based).

    Definitions (Gao et al. 2023, ALCE `eval.py --citations`), per sentence s with citation markers removed:
    - the sentence's citations C are its markers, the first `at_most_citations` of them (ALCE default 3); a
      sentence with no citation, or with any marker outside 1..len(docs), has C = {} and is unsupported (ALCE
      would read a [0] as the last passage; here it is out of range);
    - s is *supported* when the concatenation of the cited passages ("Title: t\\ntext", joined by newlines)
      entails s;
    - **citation recall** = supported sentences / all sentences;
    - a citation c in C is *precise* when s is supported and either C = {c}, or passage c alone entails s, or the
      other citations C \\ {c} together do not entail s (c was needed);
    - **citation precision** = precise citations / all citations of the sentences with valid citations.
    An answer with no sentences scores 0 on both (ALCE skips it; scoring it 0 keeps one value per question).

    Returns `Unavailable` when `nli` is None or raises `ComponentUnavailable`.
    """
    if nli is None:
        return Unavailable("no NLI model configured for citation recall/precision (ALCE uses "
                           "google/t5_xxl_true_nli_mixture): set the NLI model path to a local checkpoint")
    try:
        return _citation_scores(output, docs, nli, at_most_citations)
    except ComponentUnavailable as err:
        return Unavailable(err.reason)


def _citation_scores(output: str, docs: Sequence[Mapping[str, Any]], nli: NLIScorer, at_most: int) -> CitationScores:
    passages = [format_passage(str(d.get("title") or ""), str(d.get("text") or "")) for d in docs]
    sentences = split_sentences(output)
    supported = precise = total_citations = 0
    for sentence in sentences:
        claim = remove_citations(sentence)
        cited = find_citations(sentence)
        # As ALCE: any out-of-range marker voids the sentence's citations, checked before the cap is applied.
        if not cited or any(not 1 <= c <= len(passages) for c in cited):
            continue
        cited = cited[:at_most]
        total_citations += len(cited)
        if not nli.entails("\n".join(passages[c - 1] for c in cited), claim):
            continue
        supported += 1
        if len(cited) == 1:
            precise += 1
            continue
        for i, c in enumerate(cited):
            others = cited[:i] + cited[i + 1 :]
            # Passage c is needed unless it fails alone AND the others already entail the claim without it.
            if nli.entails(passages[c - 1], claim) or not nli.entails("\n".join(passages[o - 1] for o in others),
                                                                     claim):
                precise += 1
    return CitationScores(
        recall=supported / len(sentences) if sentences else 0.0,
        precision=precise / total_citations if total_citations else 0.0,
        n_sentences=len(sentences),
        n_citations=total_citations,
    )


# --- a transformers NLI model -------------------------------------------------------------------------------------


class TransformersNLIScorer:
    """An `NLIScorer` backed by a local transformers checkpoint, loaded on first use.

    Two kinds of checkpoint work:
    - encoder-decoder (T5) TRUE-style models such as ALCE's google/t5_xxl_true_nli_mixture: the input is
      "premise: {p} hypothesis: {h}" and the model generates "1" for entailment;
    - sequence-classification NLI models (e.g. an MNLI cross-encoder): entailment when the arg-max label is the one
      whose name contains "entail" (`config.id2label`).

    Args:
        model_path: a local directory (or, where a hub is reachable, a hub id). None means not configured.
        device: torch device string.
        max_length: inputs are truncated to this many tokens.

    `entails` raises `ComponentUnavailable` (with the reason) when the path is None or the model cannot be loaded;
    the failure is remembered, so a missing model costs one attempt, not one per question.
    """

    def __init__(self, model_path: str | None, *, device: str = "cpu", max_length: int = 512) -> None:
        self.model_path = model_path
        self.device = device
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None
        self._entail_id: int | None = None
        self._failure: str | None = None
        self._cache: dict[tuple[str, str], bool] = {}

    def unavailable_reason(self) -> str | None:
        """Why the scorer cannot run (loading it if needed), or None when it can."""
        try:
            self._load()
        except ComponentUnavailable as err:
            return err.reason
        return None

    def _load(self) -> None:
        if self._model is not None:
            return
        if self._failure is not None:
            raise ComponentUnavailable(self._failure)
        if not self.model_path:
            self._failure = "no NLI model configured: set the NLI model path to a local checkpoint"
            raise ComponentUnavailable(self._failure)
        try:
            from transformers import (
                AutoConfig,
                AutoModelForSeq2SeqLM,
                AutoModelForSequenceClassification,
                AutoTokenizer,
            )

            config = AutoConfig.from_pretrained(self.model_path)
            tokenizer = AutoTokenizer.from_pretrained(self.model_path)
            if config.is_encoder_decoder:
                model = AutoModelForSeq2SeqLM.from_pretrained(self.model_path)
                entail_id = None
            else:
                labels = {int(i): str(name).lower() for i, name in (config.id2label or {}).items()}
                entail_id = next((i for i, name in labels.items() if "entail" in name and "not" not in name), None)
                if entail_id is None:
                    raise ValueError(f"no entailment label among id2label={config.id2label}")
                model = AutoModelForSequenceClassification.from_pretrained(self.model_path)
        except Exception as err:  # any load failure (missing files, wrong format) makes the metric unavailable
            self._failure = f"NLI model {self.model_path!r} could not be loaded: {type(err).__name__}: {err}"
            raise ComponentUnavailable(self._failure) from err
        self._model, self._tokenizer, self._entail_id = model.to(self.device).eval(), tokenizer, entail_id

    def entails(self, premise: str, hypothesis: str) -> bool:
        """True when the model judges that `premise` entails `hypothesis` (results are cached per pair)."""
        key = (premise, hypothesis)
        if key not in self._cache:
            self._load()
            self._cache[key] = self._predict(premise, hypothesis)
        return self._cache[key]

    def _predict(self, premise: str, hypothesis: str) -> bool:
        import torch

        with torch.inference_mode():
            if self._entail_id is None:
                batch = self._tokenizer(f"premise: {premise} hypothesis: {hypothesis}", return_tensors="pt",
                                        truncation=True, max_length=self.max_length).to(self.device)
                generated = self._model.generate(**batch, max_new_tokens=10, do_sample=False)
                return self._tokenizer.decode(generated[0], skip_special_tokens=True).strip() == "1"
            batch = self._tokenizer(premise, hypothesis, return_tensors="pt", truncation=True,
                                    max_length=self.max_length).to(self.device)
            return int(self._model(**batch).logits[0].argmax()) == self._entail_id


# --- FactScore-style scorer ---------------------------------------------------------------------------------------


class NLIFactScorer:
    """A FactScore-style `FactScorer` that runs offline with a configured entailment model.

    FactScore (Min et al. 2023; the paper uses factscore v0.1.5 with ChatGPT) splits a generation into atomic facts
    with an LM, retrieves passages about the topic from Wikipedia, and asks an LM whether each fact is supported.
    Here: facts are the generation's sentences (`fact_splitter`), the knowledge is the given passages (for Bio, the
    input row's passages about the entity), and a fact is supported when some passage entails it under `nli`.
    The numbers therefore approximate, not reproduce, the paper's FactScore; the report should say which it is.

    Args:
        nli: the entailment model; None means not configured (every score is `Unavailable`).
        gamma: length-penalty threshold (factscore's default 10; 0 disables the penalty).
        fact_splitter: generation -> atomic facts.
    """

    def __init__(
        self,
        nli: NLIScorer | None,
        *,
        gamma: int = 10,
        fact_splitter: Callable[[str], list[str]] = split_sentences,
    ) -> None:
        self.nli = nli
        self.gamma = gamma
        self.fact_splitter = fact_splitter

    @classmethod
    def from_model_path(cls, model_path: str | None, *, device: str = "cpu", gamma: int = 10) -> NLIFactScorer:
        """A scorer whose NLI model is the transformers checkpoint at `model_path` (loaded lazily)."""
        return cls(TransformersNLIScorer(model_path, device=device) if model_path else None, gamma=gamma)

    def score(self, topic: str, generation: str, knowledge: Sequence[str]) -> FactScoreResult | Unavailable:
        """FactScore of `generation` about `topic` against the `knowledge` passages."""
        if self.nli is None:
            return Unavailable("no FactScore model configured: FactScore needs an entailment (or LM judge) model "
                               "and a knowledge source; set the fact-checking model path to a local checkpoint")
        if not knowledge:
            return Unavailable(f"no knowledge passages for topic {topic!r}: FactScore needs passages about the "
                               "entity (the input row's `ctxs`)")
        facts = self.fact_splitter(remove_citations(generation))
        try:
            supported = sum(any(self.nli.entails(passage, fact) for passage in knowledge) for fact in facts)
        except ComponentUnavailable as err:
            return Unavailable(err.reason)
        return factscore_from_counts(len(facts), supported, gamma=self.gamma)


def factscore_from_counts(n_facts: int, n_supported: int, *, gamma: int = 10) -> FactScoreResult:
    """FactScore from fact counts: init = supported / facts; score = init * exp(1 - gamma / facts) if facts < gamma.

    A generation with no facts scores 0 (FactScore itself leaves such "abstaining" answers out of its mean and
    reports a respond ratio instead; a 0 keeps one value per question for paired comparisons).
    """
    if n_facts == 0:
        return FactScoreResult(0, 0, 0.0, 0.0)
    init = n_supported / n_facts
    penalty = math.exp(1 - gamma / n_facts) if gamma and n_facts < gamma else 1.0
    return FactScoreResult(n_facts, n_supported, init, init * penalty)

"""ASQA (ALCE): long-form answers to ambiguous questions, scored by STR-EM, ROUGE-L and citation quality.

Gold (ALCE's `asqa_eval_gtr_top100.json` rows): `qa_pairs[].short_answers` (one alias group per disambiguation) and
`annotations[].long_answer`. The answer is prepared as ALCE's `eval.py` does: stripped, cut at the first newline,
and (for everything but citations) stripped of its [n] markers. Metrics per question: `str_em` (primary), `str_hit`
(1 when every disambiguation is answered), `rouge_l` (best of the long answers), `citation_recall` and
`citation_precision` (ALCE definitions, `eval.components.citation_scores`; `Unavailable` without an NLI model),
`length` (words).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eval.components import CitationScores, NLIScorer, citation_scores, remove_citations
from eval.metrics import rouge_l, str_em
from eval.tasks.common import Scores, mean_scores, prediction_text
from selfrag.io import InputError


@dataclass(frozen=True)
class AsqaGold:
    """One ASQA question's gold: alias groups (one per disambiguation) and the annotated long answers."""

    short_answers: tuple[tuple[str, ...], ...]
    long_answers: tuple[str, ...]


def alce_output(text: str) -> str:
    """The part of an answer ALCE scores: stripped and cut at the first newline."""
    return text.strip().split("\n")[0]


class Asqa:
    """ASQA scoring (see the module docstring).

    Args:
        nli: the entailment model for citation recall/precision; None makes them `Unavailable`.
        at_most_citations: citations per sentence that count (ALCE default 3).
    """

    name = "asqa"
    metrics = ("str_em", "str_hit", "rouge_l", "citation_recall", "citation_precision", "length")

    def __init__(self, nli: NLIScorer | None = None, *, at_most_citations: int = 3) -> None:
        self.nli = nli
        self.at_most_citations = at_most_citations

    def gold(self, row: Mapping[str, Any], *, where: str = "input row") -> AsqaGold:
        """The alias groups and long answers of an ALCE ASQA row (InputError naming `where` and the key)."""
        pairs = row.get("qa_pairs")
        if not isinstance(pairs, list) or not pairs:
            raise InputError(f"{where}: no `qa_pairs`; ASQA rows need qa_pairs[].short_answers (ALCE format)")
        groups = []
        for i, pair in enumerate(pairs):
            answers = pair.get("short_answers") if isinstance(pair, Mapping) else None
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                raise InputError(f"{where}: qa_pairs[{i}].short_answers must be a list of strings")
            groups.append(tuple(answers))
        annotations = row.get("annotations")
        if not isinstance(annotations, list) or not annotations:
            raise InputError(f"{where}: no `annotations`; ASQA rows need annotations[].long_answer for ROUGE")
        long_answers = []
        for i, note in enumerate(annotations):
            answer = note.get("long_answer") if isinstance(note, Mapping) else None
            if not isinstance(answer, str):
                raise InputError(f"{where}: annotations[{i}].long_answer must be a string")
            long_answers.append(answer)
        return AsqaGold(tuple(groups), tuple(long_answers))

    def score(self, prediction: Mapping[str, Any], gold: AsqaGold) -> Scores:
        """STR-EM, ROUGE-L, citation recall/precision (against the row's `docs`) and length of one answer."""
        output = alce_output(prediction_text(prediction))
        plain = remove_citations(output)
        found = str_em(plain, gold.short_answers)
        docs = prediction.get("docs") or []
        cited = citation_scores(output, docs, self.nli, at_most_citations=self.at_most_citations)
        return {
            "str_em": found,
            "str_hit": float(found == 1.0),
            "rouge_l": rouge_l(plain, gold.long_answers),
            "citation_recall": cited.recall if isinstance(cited, CitationScores) else cited,
            "citation_precision": cited.precision if isinstance(cited, CitationScores) else cited,
            "length": float(len(plain.split())),
        }

    def aggregate(self, per_question: Mapping[str, Scores] | Iterable[Scores]) -> dict[str, Any]:
        """Means of the metrics (citations stay `Unavailable` when they were), with `n`."""
        return mean_scores(per_question)


def task(*, nli: NLIScorer | None = None) -> Asqa:
    """The ASQA task, with citation metrics when `nli` is given."""
    return Asqa(nli)

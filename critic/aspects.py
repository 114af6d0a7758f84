"""The four critique aspects, their label sets, and the items and labels that flow between teachers and the critic.

Every label is one of the paper's reflection-token strings, so a teacher's judgement, a critic's prediction and the
token written into generator data are the same string:

| aspect   | judged on                                           | labels                                           |
|----------|-----------------------------------------------------|--------------------------------------------------|
| retrieve | the instruction (and, for a segment, the segments   | `[Retrieval]`, `[No Retrieval]`                  |
|          | before it): would a passage help write what follows |                                                  |
| isrel    | (instruction, passage)                              | `[Relevant]`, `[Irrelevant]`                     |
| issup    | (instruction, segment, passage)                     | `[Fully supported]`, `[Partially supported]`,    |
|          |                                                     | `[No support / Contradictory]`                   |
| isuse    | (instruction, whole output)                         | `[Utility:1]` ... `[Utility:5]`                  |

Items and labels serialise to flat JSON objects (`to_json` / `from_json`) so labelling jobs can append them to jsonl
and resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from selfrag import tokens as T
from selfrag.io import InputError
from selfrag.types import Passage

RETRIEVE = "retrieve"
ISREL = "isrel"
ISSUP = "issup"
ISUSE = "isuse"

#: Aspect name -> its labels, in a fixed order (also the order of confusion-matrix rows).
ASPECT_LABELS: dict[str, tuple[str, ...]] = {
    RETRIEVE: (T.RETRIEVAL, T.NO_RETRIEVAL),
    ISREL: (T.RELEVANT, T.IRRELEVANT),
    ISSUP: (T.FULLY_SUPPORTED, T.PARTIALLY_SUPPORTED, T.NO_SUPPORT),
    ISUSE: tuple(reversed(T.UTILITY)),
}
ASPECTS = tuple(ASPECT_LABELS)


def check_aspect(aspect: str) -> str:
    """Return `aspect` if it is known, else raise InputError listing the known ones."""
    if aspect not in ASPECT_LABELS:
        raise InputError(f"unknown aspect {aspect!r}; choose one of {', '.join(ASPECTS)}")
    return aspect


@dataclass(frozen=True)
class LabelItem:
    """One thing to judge.

    Attributes:
        aspect: one of ASPECTS.
        id: unique per aspect within a job (e.g. "popqa-123/s0/p2"); labels are joined back to items by (aspect, id).
        instruction: the task instruction / question the output answers.
        output: the segment being judged (retrieve for a segment, issup) or the whole output (isuse); "" for the
            instruction-level retrieve decision and for isrel.
        preceding: the output's segments before `output`, joined ("" for none).
        evidence: the passage (isrel, issup), else None.
        answers: gold answers, when the source data has them (used by the answer-grounded teacher, ignored by judges).
        subject: the entity the question is about, when known (PopQA's `s_wiki_title`; answer-grounded teacher).
    """

    aspect: str
    id: str
    instruction: str
    output: str = ""
    preceding: str = ""
    evidence: Passage | None = None
    answers: tuple[str, ...] = ()
    subject: str = ""

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["answers"] = list(self.answers)
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any], *, where: str = "item") -> LabelItem:
        try:
            evidence = row.get("evidence")
            return cls(
                aspect=check_aspect(row["aspect"]),
                id=str(row["id"]),
                instruction=str(row["instruction"]),
                output=str(row.get("output") or ""),
                preceding=str(row.get("preceding") or ""),
                evidence=Passage(**evidence) if evidence else None,
                answers=tuple(str(a) for a in row.get("answers") or ()),
                subject=str(row.get("subject") or ""),
            )
        except KeyError as err:
            raise InputError(f"{where}: missing field {err.args[0]!r} (items need aspect, id, instruction)") from None
        except TypeError as err:
            raise InputError(f"{where}: malformed item ({err})") from None


@dataclass(frozen=True)
class Label:
    """A labeler's judgement of one item: `label` is one of the aspect's labels."""

    aspect: str
    id: str
    label: str
    labeler: str
    explanation: str = ""
    #: the label's probability under a model labeler (critic), else None
    confidence: float | None = None

    def __post_init__(self) -> None:
        if self.label not in ASPECT_LABELS[check_aspect(self.aspect)]:
            raise ValueError(
                f"{self.label!r} is not a {self.aspect} label; expected one of {', '.join(ASPECT_LABELS[self.aspect])}"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Label:
        return cls(**{k: row[k] for k in ("aspect", "id", "label", "labeler") if k in row} | {
            k: row[k] for k in ("explanation", "confidence") if k in row
        })


@runtime_checkable
class Labeler(Protocol):
    """Anything that judges items: an LLM judge, the answer-grounded teacher, a trained critic."""

    name: str

    def label(self, items: Sequence[LabelItem]) -> list[Label | None]:
        """One entry per item, in input order (items may mix aspects); None where the labeler abstains (a judge
        whose replies stayed unparseable after its retries, a rule-based teacher whose rules do not apply)."""
        ...


@dataclass(frozen=True)
class LabelCounts:
    """Per-aspect label counts (for reports)."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, labels: Sequence[Label | None]) -> LabelCounts:
        counts: dict[str, dict[str, int]] = {}
        for lab in filter(None, labels):
            per = counts.setdefault(lab.aspect, {name: 0 for name in ASPECT_LABELS[lab.aspect]})
            per[lab.label] += 1
        return cls(counts)

"""Agreement between two labelers (judge vs judge, teacher vs critic): per-aspect accuracy, Cohen's kappa, confusion.

Pure and stdlib-only. Labels are joined by (aspect, id); an item either side abstained on (None) or did not label is
left out, so `n` is the number of items both labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from critic.aspects import ASPECT_LABELS, ASPECTS, Label
from selfrag.io import InputError


@dataclass(frozen=True)
class AspectAgreement:
    """Agreement on one aspect over the items both labelers labelled.

    Attributes:
        aspect: the aspect.
        n: number of jointly labelled items.
        agreement: fraction of them with identical labels.
        cohen_kappa: (p_o - p_e) / (1 - p_e), p_e from each side's label marginals; None when p_e == 1 (both
            sides used one and the same label throughout, where kappa is undefined).
        confusion: label of A -> label of B -> count, over every label of the aspect in ASPECT_LABELS order (zeros
            included, so tables line up).
    """

    aspect: str
    n: int
    agreement: float
    cohen_kappa: float | None
    confusion: dict[str, dict[str, int]]

    def precision_recall(self) -> dict[str, tuple[float | None, float | None]]:
        """Per label, taking A (the teacher) as the truth and B (the critic) as the prediction: precision = share of
        B's uses of the label where A agrees, recall = share of A's uses of it that B found (None where undefined)."""
        result: dict[str, tuple[float | None, float | None]] = {}
        for label in self.confusion:
            hits = self.confusion[label][label]
            predicted = sum(row[label] for row in self.confusion.values())
            actual = sum(self.confusion[label].values())
            result[label] = (hits / predicted if predicted else None, hits / actual if actual else None)
        return result


def _index(labels: Sequence[Label | None], side: str) -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for lab in labels:
        if lab is None:
            continue
        key = (lab.aspect, lab.id)
        if index.setdefault(key, lab.label) != lab.label:
            raise InputError(
                f"labels {side} give {lab.aspect} item {lab.id!r} two different labels ({index[key]} and {lab.label}); "
                f"deduplicate the label file before comparing"
            )
    return index


def agreement(labels_a: Sequence[Label | None], labels_b: Sequence[Label | None]) -> dict[str, AspectAgreement]:
    """Per-aspect agreement of A and B, for the aspects with at least one jointly labelled item (ASPECTS order).

    Raises:
        InputError: one side gives the same (aspect, id) two different labels.
    """
    a, b = _index(labels_a, "A"), _index(labels_b, "B")
    report: dict[str, AspectAgreement] = {}
    for aspect in ASPECTS:
        names = ASPECT_LABELS[aspect]
        confusion = {x: {y: 0 for y in names} for x in names}
        for key, label_a in a.items():
            if key[0] == aspect and key in b:
                confusion[label_a][b[key]] += 1
        n = sum(sum(row.values()) for row in confusion.values())
        if n == 0:
            continue
        observed = sum(confusion[x][x] for x in names) / n
        # Chance agreement: the probability that A and B pick the same label drawing independently from their
        # own label frequencies.
        expected = sum(
            sum(confusion[x].values()) / n * sum(confusion[y][x] for y in names) / n for x in names
        )
        kappa = None if expected >= 1.0 else (observed - expected) / (1.0 - expected)
        report[aspect] = AspectAgreement(aspect, n, observed, kappa, confusion)
    return report


def format_agreement(report: dict[str, AspectAgreement]) -> str:
    """A markdown table: aspect, n, agreement (%), Cohen's kappa ("n/a" where undefined)."""
    lines = ["| aspect | n | agreement | kappa |", "|---|---:|---:|---:|"]
    for aspect, row in report.items():
        kappa = "n/a" if row.cohen_kappa is None else f"{row.cohen_kappa:.3f}"
        lines.append(f"| {aspect} | {row.n} | {100 * row.agreement:.1f}% | {kappa} |")
    return "\n".join(lines) + "\n"

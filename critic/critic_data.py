"""Critic training data from teacher labels: one `{instruction, input, output}` row per labelled item, balanced per
label, with a dev split.

The dev split is by question: an item is in dev when the sha256 of its instruction falls in the lowest `dev_fraction`
of the hash range, so every item of a question (all aspects, all passages) lands on the same side, and the critic's
dev agreement is measured on questions it never trained on.

Balancing, on each side separately: within each aspect every label keeps at most
`n = min(max_per_label, max_imbalance * rarest)` rows (a uniform sample, one seeded RNG), where `rarest` is the count
of the aspect's rarest label on that side. So no label outnumbers the rarest by more than `max_imbalance`, an aspect is
never cut below its rarest label, and the dev side keeps every dev question's items up to the same caps (it is not
shrunk to `dev_fraction` of the training rows: agreement needs enough items per aspect).
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from critic.aspects import ASPECT_LABELS, Label, LabelItem
from critic.prompts import critic_example


@dataclass(frozen=True)
class CriticDataReport:
    """Counts per aspect and label: labelled (before balancing), train and dev rows."""

    labelled: dict[str, dict[str, int]] = field(default_factory=dict)
    train: dict[str, dict[str, int]] = field(default_factory=dict)
    dev: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_markdown(self) -> str:
        lines = ["| aspect | label | labelled | train | dev |", "|---|---|---:|---:|---:|"]
        for aspect, labels in ASPECT_LABELS.items():
            for label in labels:
                if aspect in self.labelled:
                    lines.append(
                        f"| {aspect} | {label} | {self.labelled[aspect].get(label, 0)} | "
                        f"{self.train.get(aspect, {}).get(label, 0)} | {self.dev.get(aspect, {}).get(label, 0)} |"
                    )
        return "\n".join(lines)


def in_dev_split(question: str, dev_fraction: float) -> bool:
    """Whether a question belongs to the critic's dev split (module docstring)."""
    digest = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "big")
    return digest / 2**64 < dev_fraction


def build_critic_data(
    items: Sequence[LabelItem],
    labels: Sequence[Label | None],
    *,
    max_per_label: int = 1000,
    max_imbalance: float = 2.0,
    dev_fraction: float = 0.1,
    dev_max_per_label: int | None = None,
    dev_max_imbalance: float | None = None,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], CriticDataReport]:
    """Return (train rows, dev rows, report) for `items` and their `labels` (None = abstained, skipped).

    `dev_max_per_label` / `dev_max_imbalance` cap the dev side (default: the training caps); a looser imbalance there
    keeps an aspect with a rare label (partially supported) above a useful number of dev items."""
    if len(items) != len(labels):
        raise ValueError(f"{len(items)} items but {len(labels)} labels")
    if not 0 <= dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    rng = random.Random(seed)
    # side ("train" / "dev") -> aspect -> label -> items; the side is the question's, so no question is in both
    cells: dict[str, dict[str, dict[str, list[LabelItem]]]] = {
        side: defaultdict(lambda: defaultdict(list)) for side in ("train", "dev")}
    for item, label in zip(items, labels):
        if label is not None:
            side = "dev" if in_dev_split(item.instruction, dev_fraction) else "train"
            cells[side][item.aspect][label.label].append(item)
    train, dev = [], []
    report = CriticDataReport()
    for aspect in ASPECT_LABELS:
        if not any(aspect in cells[side] for side in cells):
            continue
        report.labelled[aspect] = {lab: sum(len(cells[side][aspect].get(lab, ())) for side in cells)
                                   for lab in ASPECT_LABELS[aspect]
                                   if any(cells[side][aspect].get(lab) for side in cells)}
        limits = {"train": (max_per_label, max_imbalance),
                  "dev": (dev_max_per_label or max_per_label, dev_max_imbalance or max_imbalance)}
        for side, rows, counts in (("train", train, report.train), ("dev", dev, report.dev)):
            per_label = {lab: v for lab, v in cells[side][aspect].items() if v}
            counts[aspect] = {}
            if not per_label:
                continue
            most, imbalance = limits[side]
            cap = min(most, int(imbalance * min(len(v) for v in per_label.values())))
            for label in ASPECT_LABELS[aspect]:
                chosen = list(per_label.get(label, ()))
                rng.shuffle(chosen)
                rows.extend(critic_example(item, label) for item in chosen[:cap])
                counts[aspect][label] = len(chosen[:cap])
    rng.shuffle(train)
    return train, dev, report

"""Critic training data from teacher labels: one `{instruction, input, output}` row per labelled item, balanced per
label, with a dev split.

Balancing: within each aspect every label keeps at most `n = min(max_per_label, max_imbalance * rarest)` rows (a
uniform sample, one seeded RNG), where `rarest` is the count of the aspect's rarest label that has any rows. So no label
outnumbers the rarest by more than `max_imbalance`, and an aspect is never cut below its rarest label.

The dev split is by question: an item is in dev when the sha256 of its instruction falls in the lowest `dev_fraction`
of the hash range, so every item of a question (all aspects, all passages) lands on the same side, about that share of
every (aspect, label) cell goes to dev, and the critic's dev agreement is measured on questions it never trained on.
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
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], CriticDataReport]:
    """Return (train rows, dev rows, report) for `items` and their `labels` (None = abstained, skipped)."""
    if len(items) != len(labels):
        raise ValueError(f"{len(items)} items but {len(labels)} labels")
    if not 0 <= dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    rng = random.Random(seed)
    cells: dict[str, dict[str, list[LabelItem]]] = defaultdict(lambda: defaultdict(list))
    for item, label in zip(items, labels):
        if label is not None:
            cells[item.aspect][label.label].append(item)
    train, dev = [], []
    report = CriticDataReport()
    for aspect in ASPECT_LABELS:
        if aspect not in cells:
            continue
        per_label = cells[aspect]
        rarest = min(len(v) for v in per_label.values())
        cap = min(max_per_label, int(max_imbalance * rarest))
        report.labelled[aspect] = {lab: len(v) for lab, v in per_label.items()}
        report.train[aspect], report.dev[aspect] = {}, {}
        for label in ASPECT_LABELS[aspect]:
            chosen = list(per_label.get(label, ()))
            rng.shuffle(chosen)
            chosen = chosen[:cap]
            held = [item for item in chosen if in_dev_split(item.instruction, dev_fraction)]
            dev.extend(critic_example(item, label) for item in held)
            train.extend(critic_example(item, label) for item in chosen if not in_dev_split(item.instruction,
                                                                                             dev_fraction))
            report.dev[aspect][label] = len(held)
            report.train[aspect][label] = len(chosen) - len(held)
    rng.shuffle(train)
    return train, dev, report

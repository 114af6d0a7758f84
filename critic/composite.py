"""A labeler that asks the answer-grounded teacher first and the trained critic only where the teacher abstains.

Where seed data has gold answers, the teacher's rules (`critic.grounded`) are exact and free, and they are what the
critic is trained to imitate; a 135M critic trained for an hour on a 2-core CPU agrees with them on IsRel and IsSup
only about two times in three (its card). Labelling those items with the teacher itself makes the generator data true
by construction; the critic labels what the rules cannot (data without gold answers, e.g. instruction rows), which is
the job the paper gives its critic. `counts` says how many items each labelled, per aspect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from critic.aspects import Label, Labeler, LabelItem


class TeacherFirst:
    """A `Labeler`: `teacher`'s label where it gives one, else `critic`'s (one batched call for those items)."""

    def __init__(self, teacher: Labeler, critic: Labeler) -> None:
        self.teacher = teacher
        self.critic = critic
        self.name = f"{teacher.name}, else {critic.name}"
        self.counts: Counter[str] = Counter()

    def label(self, items: Sequence[LabelItem]) -> list[Label | None]:
        labels = list(self.teacher.label(items))
        rest = [i for i, lab in enumerate(labels) if lab is None]
        for i, lab in zip(rest, self.critic.label([items[i] for i in rest]) if rest else []):
            labels[i] = lab
        by_critic = set(rest)
        for i, item in enumerate(items):
            self.counts[f"{'critic' if i in by_critic else 'teacher'}/{item.aspect}"] += 1
        return labels

"""How well a critic reproduces its teacher: per-aspect accuracy, Cohen's kappa and confusion on critic-data rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from critic.agreement import AspectAgreement, agreement
from critic.aspects import Label, check_aspect
from critic.critic_model import CriticLabeler
from selfrag.prompts import official_prompt


def evaluate_critic(critic: CriticLabeler, rows: Sequence[dict[str, Any]], *, progress: bool = True
                    ) -> dict[str, AspectAgreement]:
    """Run `critic` on critic-data rows (`{instruction, input, output, aspect, id}`, as `scripts/label.py` writes
    them) and compare with the teacher's label in `output`, per aspect (agreement = accuracy against the teacher)."""
    prompts = [(check_aspect(r["aspect"]), official_prompt(r["instruction"], r["input"])) for r in rows]
    decided = critic.label_prompts(prompts, progress=progress)
    teacher = [Label(r["aspect"], r["id"], r["output"], "teacher") for r in rows]
    predicted = [Label(r["aspect"], r["id"], label, critic.name) for r, (label, _) in zip(rows, decided)]
    return agreement(teacher, predicted)


def confusion_markdown(report: dict[str, AspectAgreement]) -> str:
    """One confusion table per aspect (rows: teacher label, columns: critic label), then per-label precision and
    recall of the critic against the teacher."""
    blocks = []
    for aspect, result in report.items():
        labels = list(result.confusion)
        header = "| teacher \\ critic | " + " | ".join(f"`{lab}`" for lab in labels) + " |"
        lines = [f"**{aspect}** (n={result.n}, accuracy {result.agreement:.3f})", "", header,
                 "|---|" + "---:|" * len(labels)]
        for lab in labels:
            lines.append(f"| `{lab}` | " + " | ".join(str(result.confusion[lab].get(c, 0)) for c in labels) + " |")
        lines += ["", "| label | precision | recall |", "|---|---:|---:|"]
        for lab, (precision, recall) in result.precision_recall().items():
            shown = ["n/a" if v is None else f"{v:.3f}" for v in (precision, recall)]
            lines.append(f"| `{lab}` | {shown[0]} | {shown[1]} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)

"""Judgement-only training rows: one retrieved passage and its truthful IsRel token, nothing trained after it.

A generator's IsRel token meets one judgement per passage row in the ordinary training data (~1,200 in the shipped
rows), each inside a full row whose answer and other tokens compete for the same gradient; weighting its position
taught the model to skip answers (docs/results/dev-retrain/). These rows add IsRel judgements on their own: for each
question of a `scripts/retrieve.py` output and each of its first `k` passages,

    {"instruction": question, "input": "", "output": "[Retrieval]<paragraph>{title}\\n{text}</paragraph>[Relevant]",
     "supervise": ["isrel"], "id": "{dataset}-{question id}/isrel{j}", "dataset_name": dataset}

labelled by the answer-grounded teacher's IsRel rule (`critic.grounded.AnswerGroundedTeacher`: `[Relevant]` exactly
when the passage contains a gold answer — the rule of the shipped data's IsRel labels, and what evaluation checks).
`supervise: ["isrel"]` makes the trainer learn the IsRel token alone and append no EOS
(`selfrag.training.sft_data.SUPERVISE_KEY`), so no row teaches what follows a judgement, and all of a question's
passages, answer-bearing or not, give within-question contrasts. The passage block is the decoder's
(`selfrag.prompts.passage_block`). Questions without groundable gold answers (none, or only yes/no) are skipped
(counted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from critic.aspects import ISREL, LabelItem
from critic.grounded import AnswerGroundedTeacher, groundable_answers
from selfrag.inputs import passages_from_row
from selfrag.io import InputError
from selfrag.prompts import passage_block
from selfrag.training.sft_data import SUPERVISE_KEY


def isrel_judgement_rows(
    rows: Iterable[tuple[str, Mapping[str, Any]]], *, k: int, dataset_name: str
) -> tuple[list[dict[str, Any]], Counter]:
    """Judgement-only rows (module docstring) for `rows` = (where, retrieved row) pairs, and counts
    (`questions`, `skipped_no_answers`, `[Relevant]`, `[Irrelevant]`).

    Raises:
        InputError: a row without `question` or `id`, or with malformed `ctxs` (naming `where`).
    """
    teacher = AnswerGroundedTeacher()
    out: list[dict[str, Any]] = []
    counts: Counter = Counter()
    for where, row in rows:
        for key in ("id", "question"):
            if key not in row:
                raise InputError(f"{where}: missing key {key!r}; pass a scripts/retrieve.py output of a question file")
        question_id = f"{dataset_name}-{row['id']}"
        # yes/no answers are in no passage: such a question would be judged by the subject rule, not the answer
        answers = groundable_answers(str(a) for a in row.get("answers") or ())
        passages = passages_from_row(dict(row), where, question_id)[:k]
        counts["questions"] += 1
        if not answers:
            counts["skipped_no_answers"] += 1
            continue
        for j, passage in enumerate(passages):
            label = teacher.label_one(LabelItem(ISREL, f"{question_id}/isrel{j}", str(row["question"]),
                                                evidence=passage, answers=answers))
            assert label is not None  # the teacher labels every passage of a question with groundable answers
            counts[label.label] += 1
            out.append({"instruction": str(row["question"]), "input": "",
                        "output": passage_block(passage) + label.label, SUPERVISE_KEY: [ISREL],
                        "id": f"{question_id}/isrel{j}", "dataset_name": dataset_name})
    return out, counts

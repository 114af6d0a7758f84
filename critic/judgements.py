"""Judgement-only training rows: one retrieved passage and its truthful judgements, nothing trained after them.

A generator's IsRel token meets one judgement per passage row in the ordinary training data (~1,200 in the shipped
rows), each inside a full row whose answer and other tokens compete for the same gradient; weighting its position
taught the model to skip answers (docs/results/dev-retrain/). These rows add judgements on their own: for each
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

With `readings` (a reader's answer from each passage alone, `selfrag.per_passage`), each row also carries the
reader's answer and an IsSup judgement of it, in the layout `decoding.reader=base` critiques
(`SelfRAG.critique`: passage block, IsRel token, answer, IsSup token):

    "output": "[Retrieval]<paragraph>...</paragraph>[Relevant]{answer}[Fully supported]",
    "supervise": ["isrel", "issup"], "id": "{dataset}-{question id}/answer{j}"

`[Fully supported]` exactly when the answer is right by the task's primary metric (the reflection block's "the
candidate is right", which the IsSup AUROC is measured against), else `[No support / Contradictory]`: the judgement
the decoder's IsSup weight needs is whether *this answer* is right, which a passage-level IsRel cannot tell (the
reader can be wrong from a passage that holds the answer, and right from one that does not).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from critic.aspects import ISREL, ISSUP, LabelItem
from critic.grounded import AnswerGroundedTeacher, groundable_answers
from selfrag.inputs import passages_from_row
from selfrag.io import InputError
from selfrag.per_passage import ID_FORMAT
from selfrag.prompts import passage_block
from selfrag.tokens import FULLY_SUPPORTED, NO_SUPPORT
from selfrag.training.sft_data import SUPERVISE_KEY


@dataclass(frozen=True)
class ReaderAnswer:
    """A reader's answer from one passage alone (a `method=standard_rag decoding.ndocs=1` row over split rows) and
    whether it is right by the task's primary metric."""

    passage_id: str
    answer: str
    right: bool


def judgement_rows(
    rows: Iterable[tuple[str, Mapping[str, Any]]], *, k: int, dataset_name: str,
    readings: Mapping[str, ReaderAnswer] | None = None,
) -> tuple[list[dict[str, Any]], Counter]:
    """Judgement-only rows (module docstring) for `rows` = (where, retrieved row) pairs, and counts
    (`questions`, `skipped_no_answers`, and one per label written).

    Args:
        readings: None for IsRel rows; else the reader's answers by split-row id (`selfrag.per_passage.ID_FORMAT`:
            question id and 1-based passage rank), for IsRel + IsSup rows.

    Raises:
        InputError: a row without `question` or `id`, or with malformed `ctxs`; with `readings`, a passage without
            the reader's answer or with another passage's (naming `where` and how to fix it).
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
            output, supervise, row_id = passage_block(passage) + label.label, [ISREL], f"{question_id}/isrel{j}"
            if readings is not None:
                reading = _reading(readings, where, row["id"], j + 1, passage.id)
                issup = FULLY_SUPPORTED if reading.right else NO_SUPPORT
                counts[issup] += 1
                output, supervise, row_id = output + reading.answer + issup, [ISREL, ISSUP], f"{question_id}/answer{j}"
            out.append({"instruction": str(row["question"]), "input": "", "output": output, SUPERVISE_KEY: supervise,
                        "id": row_id, "dataset_name": dataset_name})
    return out, counts


def _reading(readings: Mapping[str, ReaderAnswer], where: str, qid: Any, rank: int, passage_id: str) -> ReaderAnswer:
    """The reader's answer from a question's passage of `rank`, checked to be from that passage."""
    split_id = ID_FORMAT.format(qid=qid, rank=rank)
    reading = readings.get(split_id)
    if reading is None:
        raise InputError(f"{where}: no reader answer for passage {rank} ({split_id!r}); run the reader over "
                         "`scripts/split_passages.py` rows of this retrieved file with k at least this k")
    if str(reading.passage_id) != str(passage_id):
        raise InputError(f"{where}: the reader's answer {split_id!r} is from passage {reading.passage_id!r}, not "
                         f"{passage_id!r}; split the same retrieved file the rows are made from")
    return reading

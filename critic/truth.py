"""How true generator data is: its reflection tokens checked against the gold answers of the seeds it was made from.

For every segment of an annotated row that cites a passage, the seed's gold answers (`critic.grounded`:
`groundable_answers`) say whether the passage *contains the answer* (a gold answer occurs in its title or text). Over
short-answer segments (at most `SHORT_WORDS` words: the answers a QA generator writes), the table reports

- **support precision**: of the segments labelled `[Fully supported]`, the share whose passage contains the answer;
- **support recall**: of the segments whose passage contains the answer, the share labelled fully or partially
  supported;
- the IsRel label against "the passage contains the answer";

and, over all judged segments, the agreement (accuracy, Cohen's kappa) of the data's IsRel and IsSup tokens with the
answer-grounded teacher's labels for the same (question, passage, segment). Rows whose seed has no gold answers
(instruction data) are counted but not judged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from critic.agreement import agreement
from critic.aspects import ISREL, ISSUP, Label, LabelItem
from critic.grounded import AnswerGroundedTeacher, contains, groundable_answers
from critic.released import parse_output, passage_of
from critic.sources import SeedExample
from selfrag import tokens as T

#: Segments of at most this many words count as short answers.
SHORT_WORDS = 8


def _variant(row_id: str) -> tuple[str, str]:
    """(seed id, variant suffix) of an annotated row id: `{seed}/sup1` -> (seed, "sup1"), `{seed}` -> (seed, "")
    (see `critic.annotate.RowVariants`)."""
    head, _, tail = row_id.rpartition("/")
    return (head, tail) if head and tail[:3] in ("sup", "rej") and tail[3:].isdigit() else (row_id, "")


def seed_id_of(row_id: str) -> str:
    """The seed id of an annotated row (`{seed}` or `{seed}/sup1`, `{seed}/rej2`: see `critic.annotate.RowVariants`)."""
    return _variant(row_id)[0]


def is_rejected_variant(row_id: str) -> bool:
    """Whether `row_id` names a rejected-passage variant (`{seed}/rejN`)."""
    return _variant(row_id)[1].startswith("rej")


@dataclass
class TruthTable:
    """Counts behind the report; `as_json` / `as_markdown` give the rates."""

    rows: int = 0
    rows_without_answers: int = 0
    short: Counter = field(default_factory=Counter)  # (contains answer, IsRel, IsSup or "") -> short-answer segments
    rel_pairs: list[tuple[str, str]] = field(default_factory=list)  # (data's IsRel, teacher's IsRel)
    sup_pairs: list[tuple[str, str]] = field(default_factory=list)
    held_rel_pairs: list[tuple[str, str]] = field(default_factory=list)  # questions the critic never trained on

    def rate(self, numerator: Callable[[bool, str, str], bool], denominator: Callable[[bool, str, str], bool]
             ) -> float | None:
        """Share of the short segments meeting `denominator(has, rel, sup)` that also meet `numerator`."""
        den = sum(n for key, n in self.short.items() if denominator(*key))
        num = sum(n for key, n in self.short.items() if denominator(*key) and numerator(*key))
        return num / den if den else None

    def as_json(self) -> dict[str, Any]:
        supported = (T.FULLY_SUPPORTED, T.PARTIALLY_SUPPORTED)

        def agree(aspect: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
            if not pairs:
                return {"n": 0}
            data = [Label(aspect, str(n), x, "data") for n, (x, _) in enumerate(pairs)]
            teacher = [Label(aspect, str(n), y, "teacher") for n, (_, y) in enumerate(pairs)]
            result = agreement(data, teacher)[aspect]
            return {"n": result.n, "accuracy": result.agreement, "kappa": result.cohen_kappa,
                    "confusion_data_vs_teacher": result.confusion}

        return {
            "rows": self.rows,
            "rows_without_gold_answers": self.rows_without_answers,
            "short_segments": sum(self.short.values()),
            "fully_supported_contains_answer": self.rate(lambda has, rel, sup: has,
                                                         lambda has, rel, sup: sup == T.FULLY_SUPPORTED),
            "contains_answer_labelled_supported": self.rate(lambda has, rel, sup: sup in supported,
                                                            lambda has, rel, sup: has),
            "relevant_contains_answer": self.rate(lambda has, rel, sup: has, lambda has, rel, sup: rel == T.RELEVANT),
            "contains_answer_labelled_relevant": self.rate(lambda has, rel, sup: rel == T.RELEVANT,
                                                           lambda has, rel, sup: has),
            "counts": [{"contains_answer": has, "isrel": rel, "issup": sup or None, "segments": n}
                       for (has, rel, sup), n in sorted(self.short.items())],
            "isrel_vs_teacher": agree(ISREL, self.rel_pairs),
            "isrel_vs_teacher_held_out": agree(ISREL, self.held_rel_pairs),
            "issup_vs_teacher": agree(ISSUP, self.sup_pairs),
        }

    def as_markdown(self) -> str:
        stats = self.as_json()

        def pct(value: float | None) -> str:
            return "–" if value is None else f"{value:.1%}"

        def agree(block: dict[str, Any]) -> str:
            if not block["n"]:
                return "– (n=0)"
            kappa = "n/a" if block["kappa"] is None else f"{block['kappa']:.3f}"
            return f"accuracy {block['accuracy']:.1%}, kappa {kappa} (n={block['n']})"

        lines = [
            f"Rows: {stats['rows']} ({stats['rows_without_gold_answers']} of seeds without gold answers: not judged). "
            f"Short-answer segments (<= {SHORT_WORDS} words) citing a passage: {stats['short_segments']}.",
            "",
            "| check | share |",
            "|---|---:|",
            f"| `[Fully supported]` whose passage contains the answer | "
            f"{pct(stats['fully_supported_contains_answer'])} |",
            f"| passage contains the answer -> labelled fully or partially supported | "
            f"{pct(stats['contains_answer_labelled_supported'])} |",
            f"| `[Relevant]` whose passage contains the answer | {pct(stats['relevant_contains_answer'])} |",
            f"| passage contains the answer -> labelled `[Relevant]` | "
            f"{pct(stats['contains_answer_labelled_relevant'])} |",
            "",
            "| passage | tokens | short segments |",
            "|---|---|---:|",
            *(f"| {'contains the answer' if c['contains_answer'] else 'no answer'} | "
              f"`{c['isrel']}{c['issup'] or ''}` | {c['segments']} |" for c in stats["counts"]),
            "",
            f"IsRel tokens vs the answer-grounded teacher: {agree(stats['isrel_vs_teacher'])}; on questions held out "
            f"from the critic's training: {agree(stats['isrel_vs_teacher_held_out'])}.",
            f"IsSup tokens vs the teacher: {agree(stats['issup_vs_teacher'])}.",
        ]
        return "\n".join(lines)


def truth_table(rows: Iterable[Mapping[str, Any]], seeds: Mapping[str, SeedExample],
                held_out: Callable[[str], bool] = lambda question: False) -> TruthTable:
    """The truth table of annotated `rows` against `seeds` (by seed id; see `seed_id_of`).

    `held_out(question)` marks questions the critic did not train on (its dev split), reported separately.

    Raises:
        KeyError: a row whose seed is not in `seeds` (the table needs every row's gold answers).
    """
    teacher = AnswerGroundedTeacher()
    table = TruthTable()
    for row in rows:
        table.rows += 1
        seed = seeds[seed_id_of(str(row["id"]))]
        answers = groundable_answers(seed.answers)
        if not answers:
            table.rows_without_answers += 1
            continue
        for segment in parse_output(row["output"]).segments:
            if segment.passage is None or segment.rel is None:
                continue
            passage = passage_of(segment.passage)
            has = any(contains(f"{passage.title}\n{passage.text}", a) for a in answers)
            text = segment.text.strip()
            rel_item = LabelItem(ISREL, "x", seed.instruction, evidence=passage, answers=seed.answers,
                                 subject=seed.subject)
            rel = teacher.label_one(rel_item)
            if rel is not None:
                table.rel_pairs.append((segment.rel, rel.label))
                if held_out(seed.instruction):
                    table.held_rel_pairs.append((segment.rel, rel.label))
            if segment.sup is not None:
                sup = teacher.label_one(LabelItem(ISSUP, "x", seed.instruction, output=text, evidence=passage,
                                                  answers=seed.answers, subject=seed.subject))
                if sup is not None:
                    table.sup_pairs.append((segment.sup, sup.label))
            if text and len(text.split()) <= SHORT_WORDS:
                table.short[(has, segment.rel, segment.sup or "")] += 1
    return table


def data_report(rows: list[Mapping[str, Any]], seeds: Mapping[str, SeedExample],
                held_out: Callable[[str], bool] = lambda question: False) -> tuple[dict[str, Any], str]:
    """(JSON, markdown) statistics of generator data: token counts (`critic.released.token_statistics`) and the
    truth table against the seeds' gold answers. This is what `stats.json` / `stats.md` hold."""
    from critic.released import token_statistics

    tokens = token_statistics(rows)
    truth = truth_table(rows, seeds, held_out)
    markdown = (f"# Generator data statistics\n\n## Tokens\n\n{tokens.as_markdown()}\n\n"
                f"## Truth table (critic/truth.py)\n\n{truth.as_markdown()}\n")
    return {**tokens.as_json(), "truth": truth.as_json()}, markdown

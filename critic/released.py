"""The released Self-RAG training-data format: parsing an `output` into segments and composing it back.

An output is a sequence of segments, each `[decision]<paragraph>passage</paragraph>[IsRel]text[IsSup]`, where every
part but the text is optional (decision = `[Retrieval]`, `[No Retrieval]` or `[Continue to Use Evidence]`), followed
by one `[Utility:k]` token and, rarely, trailing text. Released rows sometimes start with text before any token; that
text is a segment without a decision. `compose_output(parse_output(s)) == s` for every output this module accepts,
which the tests check on the 50 released rows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from selfrag import tokens as T
from selfrag.types import Passage

_DECISIONS = (T.RETRIEVAL, T.NO_RETRIEVAL, T.CONTINUE)
_PIECES = re.compile(
    "(" + re.escape(T.PARAGRAPH_OPEN) + ".*?" + re.escape(T.PARAGRAPH_CLOSE) + "|"
    + "|".join(re.escape(t) for t in sorted(T.REFLECTION_TOKENS, key=len, reverse=True)) + ")",
    re.DOTALL,
)


@dataclass(frozen=True)
class OutputSegment:
    """One segment of an annotated output. `passage` is the raw text between the paragraph markers."""

    text: str = ""
    decision: str | None = None
    passage: str | None = None
    rel: str | None = None
    sup: str | None = None

    def compose(self) -> str:
        passage = "" if self.passage is None else f"{T.PARAGRAPH_OPEN}{self.passage}{T.PARAGRAPH_CLOSE}"
        return f"{self.decision or ''}{passage}{self.rel or ''}{self.text}{self.sup or ''}"


@dataclass(frozen=True)
class AnnotatedOutput:
    segments: tuple[OutputSegment, ...] = ()
    utility: str | None = None
    tail: str = ""  # text after the utility token

    def compose(self) -> str:
        return "".join(s.compose() for s in self.segments) + (self.utility or "") + self.tail


def passage_of(raw: str) -> Passage:
    """The passage of a segment back from the text between its paragraph markers (`{title}\\n{text}`, the form
    `selfrag.prompts.passage_block` writes); the id is not in the output, so it is empty."""
    title, _, text = raw.partition("\n")
    return Passage("", title, text)


def compose_output(output: AnnotatedOutput) -> str:
    """The output string of `output` (the inverse of `parse_output`)."""
    return output.compose()


def parse_output(text: str) -> AnnotatedOutput:
    """Split a released-format output into its segments, utility token and tail (see the module docstring)."""
    segments: list[OutputSegment] = []
    current: OutputSegment | None = None
    utility: str | None = None
    tail = ""

    def flush() -> None:
        nonlocal current
        if current is not None:
            segments.append(current)
        current = None

    for piece in _PIECES.split(text):
        if not piece:
            continue
        if utility is not None:
            tail += piece
            continue
        if piece in _DECISIONS:
            flush()
            current = OutputSegment(decision=piece)
        elif piece.startswith(T.PARAGRAPH_OPEN):
            if current is None or current.passage is not None or current.text or current.rel:
                flush()
                current = OutputSegment()
            current = replace(current, passage=piece[len(T.PARAGRAPH_OPEN) : -len(T.PARAGRAPH_CLOSE)])
        elif piece in T.ISREL_GROUP:
            if current is None or current.rel is not None or current.text:
                flush()
                current = OutputSegment()
            current = replace(current, rel=piece)
        elif piece in T.ISSUP_GROUP:
            if current is None or current.sup is not None:
                flush()
                current = OutputSegment()
            current = replace(current, sup=piece)
        elif piece in T.UTILITY:
            flush()
            utility = piece
        else:  # plain text (an unmatched marker such as a lone `</paragraph>` also lands here)
            if current is None or current.sup is not None:
                flush()
                current = OutputSegment()
            current = replace(current, text=current.text + piece)
    flush()
    return AnnotatedOutput(tuple(segments), utility, tail)


@dataclass
class TokenStatistics:
    """Counts over annotated rows: every reflection token, retrieval, passages and segments per example."""

    rows: int = 0
    tokens: Counter = field(default_factory=Counter)
    with_retrieval: int = 0
    passages: Counter = field(default_factory=Counter)  # passages per example -> rows
    segments: int = 0
    per_dataset: Counter = field(default_factory=Counter)

    def add(self, row: dict[str, Any]) -> None:
        parsed = parse_output(row["output"])
        self.rows += 1
        self.per_dataset[row.get("dataset_name", "")] += 1
        self.tokens.update(T.find_tokens(row["output"]))
        n_passages = sum(s.passage is not None for s in parsed.segments)
        self.passages[n_passages] += 1
        self.with_retrieval += any(s.decision == T.RETRIEVAL for s in parsed.segments)
        self.segments += len(parsed.segments)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "retrieval_rate": self.with_retrieval / self.rows if self.rows else 0.0,
            "segments_per_example": self.segments / self.rows if self.rows else 0.0,
            "passages_per_example": (sum(k * v for k, v in self.passages.items()) / self.rows) if self.rows else 0.0,
            "passages_histogram": {str(k): v for k, v in sorted(self.passages.items())},
            "tokens": {t: self.tokens.get(t, 0) for t in T.REFLECTION_TOKENS},
            "per_dataset": dict(sorted(self.per_dataset.items())),
        }

    def as_markdown(self) -> str:
        stats = self.as_json()
        lines = [
            f"rows: {stats['rows']}; retrieval rate (rows with a [Retrieval]): {stats['retrieval_rate']:.3f}; "
            f"segments per example: {stats['segments_per_example']:.2f}; passages per example: "
            f"{stats['passages_per_example']:.2f} (histogram {stats['passages_histogram']})",
            "",
            "| token | count |",
            "|---|---:|",
            *(f"| `{t}` | {n} |" for t, n in stats["tokens"].items()),
            "",
            "| dataset | rows |",
            "|---|---:|",
            *(f"| {d} | {n} |" for d, n in stats["per_dataset"].items()),
        ]
        return "\n".join(lines)


def token_statistics(rows: Iterable[dict[str, Any]]) -> TokenStatistics:
    stats = TokenStatistics()
    for row in rows:
        stats.add(row)
    return stats


def released_row(instruction: str, output: str, row_id: str, dataset: str, input_text: str = "") -> dict[str, Any]:
    """A row in the released generator-data format `{instruction, input, output, id, dataset_name}`."""
    return {"instruction": instruction, "input": input_text, "output": output, "id": row_id, "dataset_name": dataset}


def segments_text(segments: Sequence[OutputSegment]) -> str:
    """The plain text of segments, tokens and passages left out."""
    return "".join(s.text for s in segments)

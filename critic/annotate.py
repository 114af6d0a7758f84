"""Offline annotation: a critic (any `Labeler`) and a retriever turn instruction/output pairs into generator data.

For each seed example (instruction, output), in batches:

1. **Retrieve for the input**: the critic's retrieve decision on the instruction alone; **IsUse** on the whole output.
2. If the input needs no retrieval, the output becomes `[No Retrieval]{output}[Utility:k]`.
3. Otherwise the output is split into segments (`critic.segments.segment_output`); segment 0 takes the input's
   decision, every later segment gets the critic's own retrieve decision given the segments before it.
4. For each segment that retrieves: the top `k` passages for the query the decoder would use at inference (the
   instruction for segment 0; the instruction plus the previous segment after that), taken from the row's own
   `ctxs` when it has them and no retriever is given; **IsRel** for each, and **IsSup** of the segment for each
   relevant one.
   A short-answer seed (its output is one of its gold answers) is judged, per passage, with the answer in that
   passage's words (`critic.items.output_for_passage`): the gold alias the passage contains, else its own output.
5. The passage is chosen by `choose_passage`: the first class in `PassageRules.order` that has a passage, in
   retriever order within a class. The classes are `fully` (relevant, fully supported), `partially`, `no_support`
   (relevant but unsupported) and `irrelevant`; leaving a class out of `order` forbids it, and a segment with no
   allowed passage is written as `[No Retrieval]`. No random gates, no per-dataset overrides.
5b. **More rows per short-answer seed** (`RowVariants`): besides that row, up to `supported` rows citing the next
   supported passages (fully, then partially) and up to `rejected` rows citing the highest-ranked passages the critic
   rejected (irrelevant or unsupported), ids `{seed}/sup{n}` and `{seed}/rej{n}`. At inference the generator judges
   every one of `ndocs` retrieved passages, most of which do not hold the answer; a single row per seed citing the
   best passage would show it almost only relevant, supported passages. The same question with different passages
   and different tokens is also the contrast that teaches what IsRel and IsSup mean.
6. Segments are written `[Retrieval]<paragraph>{title}\\n{text}</paragraph>[IsRel]{segment}[IsSup]` (no IsSup token
   after `[Irrelevant]`, as in the released data) or `[No Retrieval]{segment}`; whitespace between sentences stays
   after a segment's tokens, so stripping the tokens gives the output back; then `[Utility:k]`, the critic's IsUse of
   the output that row states.

Rows are appended one per seed in the released format (`critic.released.released_row`); a re-run skips ids already
written. Every critic call of a batch is made at once, so a batched backend sees large batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from critic.aspects import Label, Labeler, LabelItem
from critic.items import (
    is_short_answer,
    isrel_item,
    issup_item,
    isuse_item,
    output_for_passage,
    retrieve_item,
    segment_retrieve_item,
)
from critic.released import OutputSegment, released_row
from critic.segments import segment_output
from critic.sources import SeedExample
from selfrag import tokens as T
from selfrag.io import append_jsonl, read_done_ids
from selfrag.types import Passage

PASSAGE_CLASSES = ("fully", "partially", "no_support", "irrelevant")
_SUP_CLASS = {T.FULLY_SUPPORTED: "fully", T.PARTIALLY_SUPPORTED: "partially", T.NO_SUPPORT: "no_support"}

#: Finds passages for (seed, query) pairs, best first.
Searcher = Callable[[Sequence[str], int], list[list[Passage]]]


@dataclass(frozen=True)
class PassageRules:
    """Which judged passages a segment may cite, in order of preference (see `choose_passage`)."""

    order: tuple[str, ...] = PASSAGE_CLASSES

    def __post_init__(self) -> None:
        unknown = [c for c in self.order if c not in PASSAGE_CLASSES]
        if unknown:
            raise ValueError(f"unknown passage class(es) {unknown}; choose from {', '.join(PASSAGE_CLASSES)}")


@dataclass(frozen=True)
class JudgedPassage:
    passage: Passage
    rel: str
    sup: str | None  # None for irrelevant passages (not judged for support)

    @property
    def kind(self) -> str:
        return "irrelevant" if self.rel == T.IRRELEVANT else _SUP_CLASS[self.sup or T.NO_SUPPORT]


def choose_passage(judged: Sequence[JudgedPassage], rules: PassageRules) -> JudgedPassage | None:
    """The first passage of the first class in `rules.order` that has one (retriever order within a class)."""
    for kind in rules.order:
        for candidate in judged:
            if candidate.kind == kind:
                return candidate
    return None


SUPPORTED_CLASSES = ("fully", "partially")
REJECTED_CLASSES = ("irrelevant", "no_support")


@dataclass(frozen=True)
class RowVariants:
    """How many extra rows a short-answer seed gets beyond its main row (module docstring, step 5b).

    Attributes:
        supported: rows citing further supported passages (fully, then partially; retriever order within a class).
        rejected: rows citing passages the critic rejected (irrelevant or relevant-but-unsupported), highest-ranked
            first: the hardest negatives, the ones a retriever puts beside the answer at inference.
    """

    supported: int = 0
    rejected: int = 0

    def __post_init__(self) -> None:
        if self.supported < 0 or self.rejected < 0:
            raise ValueError(f"row variants must be >= 0, got supported={self.supported}, rejected={self.rejected}")


def variant_passages(judged: Sequence[JudgedPassage], main: JudgedPassage | None, variants: RowVariants
                     ) -> list[tuple[str, JudgedPassage]]:
    """(row suffix, passage) for the extra rows of one segment: `sup1..`, then `rej1..` (see `RowVariants`)."""
    others = [j for j in judged if j is not main]
    supported = [j for kind in SUPPORTED_CLASSES for j in others if j.kind == kind][: variants.supported]
    rejected = [j for j in others if j.kind in REJECTED_CLASSES][: variants.rejected]
    return [(f"sup{n}", j) for n, j in enumerate(supported, 1)] + [(f"rej{n}", j) for n, j in enumerate(rejected, 1)]


def passage_content(passage: Passage) -> str:
    """What goes between `<paragraph>` and `</paragraph>`: `{title}\\n{text}` as in the prompts."""
    return f"{passage.title}\n{passage.text}"


def _with_tokens(text: str, **tokens: Any) -> tuple[OutputSegment, str]:
    """A segment whose trailing whitespace moves after its closing token (kept outside the token span)."""
    core = text.rstrip()
    return OutputSegment(text=core, **tokens), text[len(core) :]


def compose(segments: Sequence[tuple[OutputSegment, str]], utility: str) -> str:
    """The output string: each segment then its trailing whitespace, then the utility token."""
    return "".join(seg.compose() + space for seg, space in segments).rstrip() + utility


@dataclass
class AnnotationStats:
    seeds: int = 0
    skipped_done: int = 0
    critic_calls: dict[str, int] = field(default_factory=dict)


def _need(labels: Sequence[Label | None], what: str) -> list[Label]:
    missing = [i for i, lab in enumerate(labels) if lab is None]
    if missing:
        raise RuntimeError(f"the critic abstained on {len(missing)} {what} item(s); a critic must label every item")
    return list(labels)  # type: ignore[arg-type]


class Annotator:
    """Runs the steps of the module docstring with `critic` for every judgement.

    Args:
        critic: a Labeler (normally `critic.critic_model.CriticLabeler`).
        search: finds passages for queries (a retriever's `batch_search`), or None to use the rows' own `ctxs`.
        k: passages judged per retrieving segment.
        rules: passage choice rules.
        variants: extra rows per short-answer seed (`RowVariants`; none by default).
        min_segment_chars: sentences shorter than this are attached to a neighbour (see `segment_output`).
    """

    def __init__(
        self,
        critic: Labeler,
        search: Searcher | None = None,
        *,
        k: int = 3,
        rules: PassageRules = PassageRules(),
        variants: RowVariants = RowVariants(),
        min_segment_chars: int = 30,
    ) -> None:
        self.critic = critic
        self.search = search
        self.k = k
        self.rules = rules
        self.variants = variants
        self.min_segment_chars = min_segment_chars
        self.calls: dict[str, int] = {}

    def _label(self, items: list[LabelItem]) -> list[Label]:
        if not items:
            return []
        for item in items:
            self.calls[item.aspect] = self.calls.get(item.aspect, 0) + 1
        return _need(self.critic.label(items), "/".join(sorted({i.aspect for i in items})) or "no")

    def _passages(self, seeds: Sequence[SeedExample], queries: Sequence[str]) -> list[list[Passage]]:
        if self.search is None:
            return [list(seed.passages[: self.k]) for seed in seeds]
        return [list(found[: self.k]) for found in self.search(list(queries), self.k)]

    def annotate(self, seeds: Sequence[SeedExample]) -> list[dict[str, Any]]:
        """Released-format rows for `seeds`, in order (a seed's extra rows follow its main row)."""
        decisions = self._label([retrieve_item(s) for s in seeds])
        short = [is_short_answer(s) for s in seeds]
        segments = {i: [s.output] if short[i] else (segment_output(s.output, min_chars=self.min_segment_chars)
                                                     or [s.output]) for i, s in enumerate(seeds)}
        retrieving = [i for i, d in enumerate(decisions) if d.label == T.RETRIEVAL]
        # Later segments' own decisions.
        later = [(i, j) for i in retrieving for j in range(1, len(segments[i]))]
        seg_labels = self._label([segment_retrieve_item(seeds[i], segments[i], j) for i, j in later])
        wants = {(i, 0) for i in retrieving} | {p for p, lab in zip(later, seg_labels) if lab.label == T.RETRIEVAL}
        wanted = sorted(wants)
        queries = [seeds[i].instruction if j == 0 else f"{seeds[i].instruction} {segments[i][j - 1].strip()}"
                   for i, j in wanted]
        found = self._passages([seeds[i] for i, _ in wanted], queries)
        rel_items, rel_keys = [], []
        for (i, j), passages in zip(wanted, found):
            for passage in passages:
                rel_items.append(isrel_item(seeds[i], passage))
                rel_keys.append((i, j, passage))
        rels = self._label(rel_items)
        sup_keys = [key for key, rel in zip(rel_keys, rels) if rel.label == T.RELEVANT]
        sups = self._label([issup_item(seeds[i], self._cited(seeds[i], segments[i], p, short[i]), j, p)
                            for i, j, p in sup_keys])
        sup_of = {(i, j, p.id): s.label for (i, j, p), s in zip(sup_keys, sups)}
        judged: dict[tuple[int, int], list[JudgedPassage]] = {}
        for (i, j, p), rel in zip(rel_keys, rels):
            judged.setdefault((i, j), []).append(JudgedPassage(p, rel.label, sup_of.get((i, j, p.id))))
        # Plan every row (id suffix, the passage per segment), then judge the utility of each distinct output once.
        plans: list[tuple[int, str, list[JudgedPassage | None]]] = []
        for i in range(len(seeds)):
            chosen = [choose_passage(judged.get((i, j), []), self.rules) if (i, j) in wants else None
                      for j in range(len(segments[i]))]
            plans.append((i, "", chosen))
            if short[i] and (i, 0) in wants:
                plans += [(i, f"/{suffix}", [extra])
                          for suffix, extra in variant_passages(judged.get((i, 0), []), chosen[0], self.variants)]
        texts = [self._row_segments(seeds[i], segments[i], picks, short[i]) for i, _, picks in plans]
        outputs = sorted({(i, "".join(t)) for (i, _, _), t in zip(plans, texts)})
        utility_of = {key: lab.label for key, lab in zip(outputs, self._label(
            [isuse_item(seeds[i], text, variant=f"o{n}") for n, (i, text) in enumerate(outputs)]))}
        rows = []
        for (i, suffix, picks), row_texts in zip(plans, texts):
            seed = seeds[i]
            parts = []
            for text, pick in zip(row_texts, picks):
                if pick is None:
                    parts.append(_with_tokens(text, decision=T.NO_RETRIEVAL))
                else:
                    parts.append(_with_tokens(
                        text, decision=T.RETRIEVAL, passage=passage_content(pick.passage), rel=pick.rel,
                        sup=pick.sup if pick.rel == T.RELEVANT else None,
                    ))
            utility = utility_of[(i, "".join(row_texts))]
            rows.append(released_row(seed.instruction, compose(parts, utility), seed.id + suffix, seed.dataset))
        return rows

    @staticmethod
    def _cited(seed: SeedExample, segments: list[str], passage: Passage, short: bool) -> list[str]:
        """The segments a row citing `passage` states (a short answer in the passage's words)."""
        return [output_for_passage(seed, passage)] if short else segments

    def _row_segments(self, seed: SeedExample, segments: list[str], picks: Sequence[JudgedPassage | None],
                      short: bool) -> list[str]:
        if short and picks[0] is not None:
            return self._cited(seed, segments, picks[0].passage, short)
        return segments


def annotate_file(
    seeds: Sequence[SeedExample],
    annotator: Annotator,
    out_path: str | Path,
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> AnnotationStats:
    """Annotate every seed whose id is not yet in `out_path`, appending rows per batch (resumable)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_done_ids(out_path)
    todo = [s for s in seeds if s.id not in done]
    bar = tqdm(total=len(todo), desc="annotating", unit="ex", disable=not progress)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        append_jsonl(out_path, annotator.annotate(batch))
        bar.update(len(batch))
    bar.close()
    return AnnotationStats(len(todo), len(seeds) - len(todo), dict(annotator.calls))

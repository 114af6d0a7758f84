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
5. The passage is chosen by `choose_passage`: the first class in `PassageRules.order` that has a passage, in
   retriever order within a class. The classes are `fully` (relevant, fully supported), `partially`, `no_support`
   (relevant but unsupported) and `irrelevant`; leaving a class out of `order` forbids it, and a segment with no
   allowed passage is written as `[No Retrieval]`. No random gates, no per-dataset overrides.
6. Segments are written `[Retrieval]<paragraph>{title}\\n{text}</paragraph>[IsRel]{segment}[IsSup]` (no IsSup token
   after `[Irrelevant]`, as in the released data) or `[No Retrieval]{segment}`; whitespace between sentences stays
   after a segment's tokens, so stripping the tokens gives the output back; then `[Utility:k]`.

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
from critic.items import isrel_item, issup_item, isuse_item, retrieve_item, segment_retrieve_item
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
        min_segment_chars: sentences shorter than this are attached to a neighbour (see `segment_output`).
    """

    def __init__(
        self,
        critic: Labeler,
        search: Searcher | None = None,
        *,
        k: int = 3,
        rules: PassageRules = PassageRules(),
        min_segment_chars: int = 30,
    ) -> None:
        self.critic = critic
        self.search = search
        self.k = k
        self.rules = rules
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
        """Released-format rows for `seeds`, in order."""
        first = self._label([retrieve_item(s) for s in seeds] + [isuse_item(s) for s in seeds])
        decisions, utilities = first[: len(seeds)], first[len(seeds) :]
        segments = {i: segment_output(s.output, min_chars=self.min_segment_chars) or [s.output]
                    for i, s in enumerate(seeds)}
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
        sups = self._label([issup_item(seeds[i], segments[i], j, p) for i, j, p in sup_keys])
        sup_of = {(i, j, p.id): s.label for (i, j, p), s in zip(sup_keys, sups)}
        judged: dict[tuple[int, int], list[JudgedPassage]] = {}
        for (i, j, p), rel in zip(rel_keys, rels):
            judged.setdefault((i, j), []).append(JudgedPassage(p, rel.label, sup_of.get((i, j, p.id))))
        rows = []
        retrieving_set = set(retrieving)
        for i, seed in enumerate(seeds):
            utility = utilities[i].label
            if i not in retrieving_set:
                parts = [_with_tokens(seed.output, decision=T.NO_RETRIEVAL)]
            else:
                parts = []
                for j, text in enumerate(segments[i]):
                    chosen = choose_passage(judged.get((i, j), []), self.rules) if (i, j) in wants else None
                    if chosen is None:
                        parts.append(_with_tokens(text, decision=T.NO_RETRIEVAL))
                    else:
                        parts.append(_with_tokens(
                            text, decision=T.RETRIEVAL, passage=passage_content(chosen.passage), rel=chosen.rel,
                            sup=chosen.sup if chosen.rel == T.RELEVANT else None,
                        ))
            rows.append(released_row(seed.instruction, compose(parts, utility), seed.id, seed.dataset))
        return rows


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

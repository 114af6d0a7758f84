"""The labelling job: seed examples -> items (with passages) -> a teacher's labels, appended per seed and resumable.

Output: one jsonl line per seed, `{"seed": id, "items": [...], "labels": [...]}` (labels aligned with items, None
where the teacher abstained). A line is written whole with one fsync, so a crash loses at most the seeds in flight
and a re-run skips every seed already on disk.

Items per seed (see `critic.items`): the instruction-level retrieve decision; for each of the first `k` passages (the
row's own `ctxs`, else a retriever's top `k` for the instruction) an isrel item and, for each segment of the output
a row citing that passage would state (`output_for_passage`: a short answer in the passage's words), an issup item;
a retrieve item for every segment after the first; isuse items for the output and, with `utility_variants`, for
perturbed outputs (so the critic sees the whole utility scale).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from critic.aspects import Label, Labeler, LabelItem
from critic.items import (
    isrel_item,
    issup_item,
    isuse_item,
    output_for_passage,
    retrieve_item,
    segment_retrieve_item,
    utility_variants,
)
from critic.segments import segment_output
from critic.sources import SeedExample
from selfrag.io import append_jsonl, iter_jsonl, read_done_ids
from selfrag.types import Passage

#: Finds passages for a batch of seeds (best first); `scripts/label.py` wraps a retriever in one.
PassageFinder = Callable[[Sequence[SeedExample]], list[list[Passage]]]


def items_for_seed(
    seed: SeedExample,
    passages: Sequence[Passage],
    *,
    other: SeedExample | None = None,
    rng: random.Random | None = None,
) -> list[LabelItem]:
    """All items to judge for one seed (see the module docstring); `other` enables the utility variants."""
    segments = segment_output(seed.output) or [seed.output]
    items = [retrieve_item(seed)]
    items += [segment_retrieve_item(seed, segments, i) for i in range(1, len(segments))]
    for passage in passages:
        items.append(isrel_item(seed, passage))
        output = output_for_passage(seed, passage)
        cited = segments if output == seed.output else [output]
        items += [issup_item(seed, cited, i, passage) for i in range(len(cited))]
    if other is None:
        items.append(isuse_item(seed))
    else:
        variants = utility_variants(seed, other, passages[0] if passages else None, rng or random.Random(0))
        items += [isuse_item(seed, text, name) for name, text in variants]
    return items


@dataclass(frozen=True)
class LabelRunStats:
    seeds: int
    skipped_done: int
    items: int
    abstained: int


def label_seeds(
    seeds: Sequence[SeedExample],
    labeler: Labeler,
    out_path: str | Path,
    *,
    find_passages: PassageFinder | None = None,
    k: int = 3,
    utility_variants: bool = True,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> LabelRunStats:
    """Label every seed not yet in `out_path`, appending one line per seed (see the module docstring).

    Passages: the seed's own (first `k`), else `find_passages` (when given) for the seeds without any. Utility
    variants borrow the output of another seed of the same dataset, chosen by an RNG seeded per seed id, so a
    resumed run builds exactly the items an uninterrupted one would.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_done_ids(out_path, key="seed")
    todo = [s for s in seeds if s.id not in done]
    by_dataset: dict[str, list[SeedExample]] = {}
    for s in seeds:
        by_dataset.setdefault(s.dataset, []).append(s)
    n_items = abstained = 0
    for start in tqdm(range(0, len(todo), batch_size), desc="labelling", unit="batch", disable=not progress):
        batch = todo[start : start + batch_size]
        found: list[list[Passage]] = [list(s.passages[:k]) for s in batch]
        missing = [i for i, ps in enumerate(found) if not ps]
        if missing and find_passages is not None:
            for i, passages in zip(missing, find_passages([batch[i] for i in missing])):
                found[i] = list(passages[:k])
        rows = []
        for s, passages in zip(batch, found):
            rng = random.Random(f"{seed}/{s.id}")
            pool = by_dataset[s.dataset]
            other = pool[rng.randrange(len(pool))] if utility_variants and len(pool) > 1 else None
            if other is not None and other.id == s.id:
                other = pool[(pool.index(s) + 1) % len(pool)]
            items = items_for_seed(s, passages, other=other, rng=rng)
            labels = labeler.label(items)
            n_items += len(items)
            abstained += sum(lab is None for lab in labels)
            rows.append({
                "seed": s.id,
                "dataset": s.dataset,
                "items": [it.to_json() for it in items],
                "labels": [lab.to_json() if lab else None for lab in labels],
            })
        append_jsonl(out_path, rows)
    return LabelRunStats(len(todo), len(seeds) - len(todo), n_items, abstained)


def read_labelled(path: str | Path) -> tuple[list[LabelItem], list[Label | None]]:
    """All (item, label) pairs of a labelling output file, flattened in file order."""
    items: list[LabelItem] = []
    labels: list[Label | None] = []
    for line_no, row in iter_jsonl(path):
        where = f"{path}:{line_no}"
        items += [LabelItem.from_json(it, where=where) for it in row["items"]]
        labels += [Label.from_json(lab) if lab else None for lab in row["labels"]]
    return items, labels

"""How often the passages the generator meets at inference hold a gold answer: the base rate its IsRel must learn.

For every seed with groundable gold answers in a seed config (default conf/seeds/indomain.yaml), retrieve the top-k
BM25 passages from the embedded corpus for the question, as decoding does, and count the passages that contain a gold
answer (`critic.grounded.contains`, the teacher's rule), per source. Compare with the share of `[Relevant]` among the
passages of the generator data (artifacts/generator-data/README.md, "Negatives").

    python benchmarks/passage_base_rates.py [--seeds conf/seeds/indomain.yaml] [--k 10]
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from critic.grounded import contains, groundable_answers, passage_text
from critic.sources import read_source_list, seed_sources
from selfrag.retrieval.factory import open_configured_retriever

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=str(ROOT / "conf/seeds/indomain.yaml"))
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    sources = seed_sources(args.seeds, ROOT / "data")
    seeds = [s for s in read_source_list(sources) if groundable_answers(s.answers)]
    search = open_configured_retriever({"name": "bm25"}, ROOT / "data/corpus/wiki_passages.tsv").batch_search
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    for seed, passages in zip(seeds, search([s.instruction for s in seeds], args.k)):
        answers = groundable_answers(seed.answers)
        holding = [any(contains(passage_text(p), a) for a in answers) for p in passages]
        for key in (seed.dataset, "all"):
            counts[key][0] += sum(holding)
            counts[key][1] += len(holding)
            counts[key][2] += any(holding)
            counts[key][3] += 1
    print(f"| source | passages holding an answer (top {args.k}) | questions with one |")
    print("|---|---:|---:|")
    for name in sorted(counts, key=lambda n: (n == "all", n)):
        hit, n, found, questions = counts[name]
        print(f"| {name} | {hit}/{n} = {hit / n:.1%} | {found}/{questions} |")


if __name__ == "__main__":
    main()

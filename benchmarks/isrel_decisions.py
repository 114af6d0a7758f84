"""What a generator writes after each passage on PopQA: how often `[Relevant]`, and whether its answer is right.

Reads `outputs/dev/popqa/<run>/predictions.jsonl` of Self-RAG evaluate runs on the PopQA long-tail dev split and
counts, over passage candidates: the share where the model wrote `[Relevant]`, the share whose passage holds a gold
answer (`critic.grounded.contains`), and for those, how often the answer is right after `[Relevant]` and after
`[Irrelevant]`, and how many answers are empty or the abstention of `distill_answers.py abstain_unknown=true`
(`critic.self_distill.ABSTENTION`), over all passages and over those holding a gold answer (reads lost to it).
Used for docs/results/dev-retrain/README.md.

    python benchmarks/isrel_decisions.py RUN [RUN ...]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from critic.grounded import contains
from critic.self_distill import ABSTENTION
from selfrag import tokens as T
from selfrag.io import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _share(part: int, whole: int) -> str:
    return f"{part / max(whole, 1):.1%} ({part}/{whole})"


def decisions(run_dir: Path, gold: dict[str, list[str]]) -> Counter:
    """Counts over the passage candidates of one run (keys: candidates, relevant, holds, holds_relevant,
    right_relevant, holds_irrelevant, right_irrelevant, empty, abstained, holds_abstained)."""
    counts: Counter = Counter()
    for row in read_jsonl(run_dir / "predictions.jsonl"):
        answers = gold[str(row["id"])]
        for candidate in row["candidates"]:
            if not candidate.get("passage_text"):
                continue
            answer = candidate["answer"] or ""
            says_relevant = candidate["text"].startswith(T.RELEVANT)
            holds = any(contains(candidate["passage_text"], a) for a in answers)
            right = any(contains(answer, a) for a in answers)
            abstained = answer.strip() == ABSTENTION
            counts.update(candidates=1, relevant=says_relevant, holds=holds, empty=not answer.strip(),
                          abstained=abstained, holds_abstained=holds and abstained)
            if holds:
                side = "relevant" if says_relevant else "irrelevant"
                counts.update({f"holds_{side}": 1, f"right_{side}": right})
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run names under outputs/dev/popqa/")
    args = parser.parse_args()
    gold = {str(r["id"]): r["answers"] for r in read_jsonl(ROOT / "data/splits/popqa_longtail/dev.jsonl")}
    for run in args.runs:
        c = decisions(ROOT / "outputs/dev/popqa" / run, gold)
        print(f"{run}: passage candidates {c['candidates']}; "
              f"writes [Relevant] {_share(c['relevant'], c['candidates'])}; "
              f"passage holds the answer {_share(c['holds'], c['candidates'])}; of those it writes [Relevant] "
              f"{_share(c['holds_relevant'], c['holds'])}; answer right after [Relevant] "
              f"{_share(c['right_relevant'], c['holds_relevant'])}, after [Irrelevant] "
              f"{_share(c['right_irrelevant'], c['holds_irrelevant'])}; empty answers {c['empty']}; "
              f"abstentions {c['abstained']} ({c['holds_abstained']} after a passage holding the answer)")


if __name__ == "__main__":
    main()

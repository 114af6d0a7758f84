"""What a generator writes after each passage on PopQA: how often `[Relevant]`, and whether its answer is right.

Reads `outputs/dev/popqa/<run>/predictions.jsonl` of Self-RAG evaluate runs on the PopQA long-tail dev split and
counts, over passage candidates: the share where the model wrote `[Relevant]`, the share whose passage holds a gold
answer (`critic.grounded.contains`), and for those, how often the answer is right after `[Relevant]` and after
`[Irrelevant]`. Used for docs/results/dev-retrain/README.md.

    python benchmarks/isrel_decisions.py RUN [RUN ...]
"""
import json, sys
from critic.grounded import contains
gold = {str(json.loads(l)["id"]): json.loads(l)["answers"] for l in open("data/splits/popqa_longtail/dev.jsonl")}
for run in sys.argv[1:]:
    n = rel = hold = rel_hold = right_hold_rel = right_hold_irr = hold_irr = empty = 0
    for l in open(f"outputs/dev/popqa/{run}/predictions.jsonl"):
        r = json.loads(l); answers = gold[str(r["id"])]
        for c in r["candidates"]:
            if not c.get("passage_text"): continue
            n += 1
            says_rel = c["text"].startswith("[Relevant]")
            holds = any(contains(c["passage_text"], a) for a in answers)
            right = any(contains(c["answer"] or "", a) for a in answers)
            rel += says_rel; hold += holds; empty += not (c["answer"] or "").strip()
            if holds and says_rel: rel_hold += 1; right_hold_rel += right
            if holds and not says_rel: hold_irr += 1; right_hold_irr += right
    print(f"{run}: passage candidates {n}; writes [Relevant] {rel/n:.1%}; passage holds answer {hold/n:.1%}; "
          f"of those it writes [Relevant] {rel_hold/max(hold,1):.1%}, answer right after [Relevant] {right_hold_rel/max(rel_hold,1):.1%} "
          f"({right_hold_rel}/{rel_hold}), after [Irrelevant] {right_hold_irr/max(hold_irr,1):.1%} ({right_hold_irr}/{hold_irr}); empty answers {empty}")

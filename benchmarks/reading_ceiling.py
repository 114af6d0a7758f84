"""How far per-passage reading could take Self-RAG on PopQA dev, whoever writes the answers (diagnosis only).

Self-RAG answers once per passage and keeps one candidate, so its match is bounded by the share of questions where
some passage's answer is right (the reflection block's *oracle*). This measures that bound with the **base** model as
the reader: the base answers from each of the top-k BM25 passages alone (its chat template, `method=standard_rag
decoding.ndocs=1`), and for k = 1..K the script prints

- `first`: the first passage's answer (what the retriever's order alone gives);
- `oracle`: some passage's answer among the first k is right (a perfect chooser);
- for each Self-RAG run given: `IsRel pick`, the base's answer from the passage the run's generator scored most
  relevant among the first k (ties to the earlier passage), and `own oracle`, the same bound for the generator's own
  answers.

Under the table, per run: its IsRel pick minus the first passage's answer at each depth, with a paired bootstrap 95%
interval over the questions both cover (`eval.stats.paired_bootstrap`).

The passages are the same in both runs (the same BM25 index, top k in order); a question whose passages differ by id
at some depth (a tie in BM25's scores broken the other way) is left out of that run's columns there, and `n` says
over how many questions each run's columns average. Never run it on a test split.

    python scripts/split_passages.py retrieved=outputs/dev/popqa/retrieved_bm25_k10/retrieved.jsonl k=5 \
        output_dir=outputs/dev/popqa/per_passage_k5
    python scripts/evaluate.py task=popqa data.path=outputs/dev/popqa/per_passage_k5/rows.jsonl retriever=none \
        backend=vllm batch_size=64 method=standard_rag model=smollm2_135m_instruct decoding.ndocs=1 \
        output_dir=outputs/dev/popqa/base_per_passage_k5
    python benchmarks/reading_ceiling.py --per-passage outputs/dev/popqa/base_per_passage_k5 \
        --data data/splits/popqa_longtail/dev.jsonl --selfrag outputs/dev/popqa/RUN [...]

A reference run is always added, `perfect IsRel`: IsRel 1 for a passage holding a gold answer (`contains_answer`,
the reflection block's label), else 0. Its `IsRel pick` is the best any passage-level judge can do with the base's
answers (the first answer-bearing passage), so the gap between it and `oracle` is what only an answer-level judgement
(is *this answer* supported) could still win.

`--selfrag` also takes the per-model files of `benchmarks/isrel_probe.py --save-dir` (IsRel scores without answers:
its `IsRel pick` column only), so an adapter's IsRel can be tried as the chooser without a Self-RAG decode.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from eval.metrics import match
from eval.stats import paired_bootstrap
from selfrag.inputs import passages_from_row
from selfrag.io import read_jsonl
from selfrag.per_passage import ID_FORMAT, question_and_rank
from selfrag.retrieval.evaluation import contains_answer


def _read(per_passage: dict[str, tuple[str, float]], qid: str, depth: int) -> list[tuple[str, float]]:
    """(passage id, the base's match) for a question's first `depth` passages, in rank order."""
    return [per_passage[ID_FORMAT.format(qid=qid, rank=r)] for r in range(1, depth + 1)]


def isrel_pick(read: Sequence[tuple[str, float]], candidates: Sequence[dict]) -> float | None:
    """The base's match from the passage the run's IsRel ranks first among `read` (ties to the earlier passage), or
    None when the run's first passages are not `read`'s (fewer, or a BM25 tie broken the other way)."""
    candidates = candidates[:len(read)]
    if [str(c["passage_id"]) for c in candidates] != [str(p) for p, _ in read]:
        return None
    rel = [c["scores"].get("rel") or 0.0 for c in candidates]
    return read[max(range(len(rel)), key=lambda i: rel[i])][1]  # max keeps the first of equal scores


def ceiling_table(per_passage: dict[str, tuple[str, float]], questions: Sequence[str], k: int,
                  runs: dict[str, dict[str, list[dict]]]) -> list[dict]:
    """Rows for k' = 1..k: first-passage and oracle match of the base's per-passage answers, and per Self-RAG run
    its IsRel pick among the base's answers and the oracle of its own answers.

    Args:
        per_passage: `ID_FORMAT` id -> (passage id, match of the base's answer from that passage alone).
        questions: the question ids to average over.
        runs: run name -> question id -> that run's passage candidates in retrieval order (predictions.jsonl
            `candidates` with a passage), each with `passage_id`, `scores.rel` (IsRel, as the decoder saved it) and
            `match` (of its own answer; None for IsRel scores without answers, `benchmarks/isrel_probe.py
            --save-dir`, whose `own oracle` column is then None).
            A run's columns are None at depths beyond the passages it decoded for some question; at each depth
            they average over the questions whose first passages are the per-passage file's, in order (`n`).
    """
    table = []
    for depth in range(1, k + 1):
        row: dict = {"k": depth}
        firsts, oracles = [], []
        short: set[str] = set()
        picks: dict[str, list[float]] = {name: [] for name in runs}
        owns: dict[str, list[float | None]] = {name: [] for name in runs}  # None: a run without answers
        for qid in questions:
            read = _read(per_passage, qid, depth)
            firsts.append(read[0][1])
            oracles.append(max(m for _, m in read))
            for name, by_question in runs.items():
                candidates = by_question[qid][:depth]
                if len(candidates) < depth:  # the run decoded fewer passages: nothing to say at this depth
                    short.add(name)
                    continue
                pick = isrel_pick(read, candidates)
                if pick is None:
                    continue  # a tie in BM25's order broken the other way: the base did not read the run's passage
                picks[name].append(pick)
                matches = [c["match"] for c in candidates]
                owns[name].append(None if None in matches else max(matches))
        n = len(questions)
        row["first"], row["oracle"] = sum(firsts) / n, sum(oracles) / n
        for name in runs:
            done = name not in short and picks[name]
            row[f"{name}: IsRel pick"] = sum(picks[name]) / len(picks[name]) if done else None
            answered = done and None not in owns[name]
            row[f"{name}: own oracle"] = sum(owns[name]) / len(owns[name]) if answered else None
            row[f"{name}: n"] = len(picks[name]) if done else None
        table.append(row)
    return table


def pick_against_first(per_passage: dict[str, tuple[str, float]], questions: Sequence[str], depth: int,
                       by_question: dict[str, list[dict]]) -> tuple[dict[str, float], dict[str, float]]:
    """Per question, (the run's IsRel pick, the first passage's answer) at `depth`, over the questions where the run
    read the per-passage file's passages: the pairs a paired bootstrap compares."""
    picked, first = {}, {}
    for qid in questions:
        read = _read(per_passage, qid, depth)
        pick = isrel_pick(read, by_question[qid])  # None where the run read fewer or other passages
        if pick is not None:
            picked[qid], first[qid] = pick, read[0][1]
    return picked, first


PERFECT_ISREL = "perfect IsRel"


def perfect_isrel_run(per_passage_rows: Sequence[dict], gold: dict[str, list[str]]) -> dict[str, list[dict]]:
    """The reference run `PERFECT_ISREL` from the per-passage run's rows (one passage each, `ID_FORMAT` ids): per
    question, its passages in rank order with `scores.rel` 1.0 where the passage holds a gold answer, else 0.0."""
    ranked: dict[str, list[tuple[int, dict]]] = {}
    for n, row in enumerate(per_passage_rows):
        (passage,) = passages_from_row(row, f"per-passage row {n + 1}", str(row["id"]))
        qid, rank = question_and_rank(row["id"])
        holds = contains_answer(passage, gold[qid])
        ranked.setdefault(qid, []).append((rank, {"passage_id": passage.id, "scores": {"rel": float(holds)},
                                                  "match": None}))
    return {qid: [c for _, c in sorted(cs, key=lambda rc: rc[0])] for qid, cs in ranked.items()}


def _load_run(path: Path, gold: dict[str, list[str]]) -> dict[str, list[dict]]:
    """A Self-RAG run directory (its predictions.jsonl) or a saved IsRel probe file (candidates without answers)."""
    by_question = {}
    for row in read_jsonl(path / "predictions.jsonl" if path.is_dir() else path):
        answers = gold[str(row["id"])]
        by_question[str(row["id"])] = [
            {**c, "match": match(c["answer"] or "", answers) if "answer" in c else None}
            for c in row["candidates"] if c.get("passage_id") is not None]
    return by_question


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-passage", type=Path, required=True,
                        help="the standard_rag run over scripts/split_passages.py rows")
    parser.add_argument("--data", type=Path, required=True, help="the split (gold answers)")
    parser.add_argument("--selfrag", type=Path, nargs="*", default=[],
                        help="Self-RAG run directories on the same split, or isrel_probe.py --save-dir files")
    args = parser.parse_args()
    gold = {str(r["id"]): r["answers"] for r in read_jsonl(args.data)}
    per_passage_rows = list(read_jsonl(args.per_passage / "predictions.jsonl"))
    per_passage = {}
    for row in per_passage_rows:
        (passage,) = row["docs"]
        qid, _ = question_and_rank(row["id"])
        per_passage[str(row["id"])] = (passage["id"], match(row["answer"], gold[qid]))
    k = max(question_and_rank(i)[1] for i in per_passage)
    runs = {PERFECT_ISREL: perfect_isrel_run(per_passage_rows, gold)}
    runs |= {path.name if path.is_dir() else path.stem: _load_run(path, gold) for path in args.selfrag}
    table = ceiling_table(per_passage, list(gold), k, runs)
    columns = list(table[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in table:
        cells = ["–" if row[c] is None else str(row[c]) if c == "k" or c.endswith(": n") else f"{row[c]:.0%}"
                 for c in columns]
        print("| " + " | ".join(cells) + " |")
    print()
    print("IsRel pick - first passage, paired bootstrap over questions (95% CI), per depth:")
    for name, by_question in runs.items():
        gains = []
        for depth in range(2, k + 1):
            picked, first = pick_against_first(per_passage, list(gold), depth, by_question)
            if picked:
                result = paired_bootstrap(picked, first)
                gains.append(f"k={depth} {result.difference:+.1%} [{result.ci_low:+.1%}, {result.ci_high:+.1%}]")
        print(f"- {name}: " + "; ".join(gains))


if __name__ == "__main__":
    main()

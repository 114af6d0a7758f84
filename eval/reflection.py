"""Reflection diagnostics: do a Self-RAG run's own reflection tokens pick the right passage and the right answer?

Computed from a run's saved candidates (`predictions.jsonl`) and the task's golds, without the model. For a short-form
run (every question decoded into candidates; `decoding.score_all_paths=true` adds the no-retrieval path):

- **oracle**: the share of questions where at least one candidate's answer is right (the task's primary metric on
  the candidate's answer, >= 0.5), and **chosen / oracle**: the run's mean primary metric over the oracle, i.e. how
  much of what the candidates hold the choice keeps;
- **IsRel AUROC** against "the candidate's passage contains a gold answer" (`selfrag.retrieval.evaluation.
  contains_answer`, the test of answer recall@k), over candidates with a passage and an IsRel score;
- **IsSup AUROC** and **final-score AUROC** against "the candidate is right", over candidates with that score;
- **IsRel within a question**: over pairs of one question's passages where one holds a gold answer and the other
  does not, how often IsRel scores the answer-bearing one higher (ties half), against how often the retriever put
  it first (passage candidates are saved in retrieval order). The AUROC above pools passages of all questions, so
  it also rewards knowing *which questions* have answerable passages; choosing among a question's passages needs
  this one;
- **IsSup within a question**: the same over pairs of one question's passage candidates where one is right and the
  other wrong: how often IsSup scores the right one higher (ties half), against the retriever's order. A pooled IsSup
  AUROC of 0.85 can come with a within-question order of 0.78 (the first answer judge on PopQA test): much of the AUROC
  is telling easy questions from hard ones, which no choice among one question's candidates uses;
- **passage choice vs retrieval order**: over questions with passage candidates, how often the candidate the run's
  weights pick among the passages (`mode=always`) is right, against the candidate of the retriever's first passage:
  if reflection cannot beat the retriever's order, it is not choosing passages;
- **retrieval usefulness**: for questions where both paths were decoded, the primary metric of the answer the run
  would give with passages (`mode=always`) and without (`mode=never`) under its own weights, per p_retrieve bin:
  where retrieval helps, and whether the model's p_retrieve knows it.

AUROC is the probability that a random positive scores above a random negative (ties count half); None when one
class is empty. `reliability` bins a score and reports the share of positives per bin (the data of a reliability
plot, `eval.sweeps.plot_reliability`). No peer reports these; they say *why* a Self-RAG run wins or loses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eval.tasks import Task
from selfrag.decoding.critique import RewardWeights
from selfrag.decoding.records import rerank
from selfrag.retrieval.evaluation import contains_answer
from selfrag.types import Passage

#: The reflection AUROCs: score kind -> what its positive label is.
AUROC_LABELS = {"isrel": "the passage holds a gold answer", "issup": "the candidate is right",
                "final": "the candidate is right"}

#: p_retrieve bins of the retrieval-usefulness table (lower edges; the last bin includes 1.0).
P_RETRIEVE_BINS = (0.0, 0.2, 0.4, 0.6, 0.8)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` for binary `labels` (Mann-Whitney: ties count half); None without both
    classes."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    if not positives or not negatives:
        return None
    # Rank-sum with average ranks for ties: O(n log n).
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    positive_rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    n_pos, n_neg = len(positives), len(negatives)
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _mean(values: Sequence[float]) -> float | None:
    """The mean of `values` (bools count 0/1); None when there are none."""
    return sum(values) / len(values) if values else None


def reliability(scores: Sequence[float], labels: Sequence[bool], bins: int = 10) -> list[dict[str, Any]]:
    """Scores in [0, 1] cut into `bins` equal bins: per bin its range, count, mean score and share of positives (None
    for an empty bin)."""
    out = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [(s, y) for s, y in zip(scores, labels) if low <= s < high or (b == bins - 1 and s == high)]
        out.append({"low": low, "high": high, "n": len(members),
                    "mean_score": _mean([s for s, _ in members]),
                    "positive_rate": _mean([y for _, y in members])})
    return out


def gold_texts(gold: Any) -> tuple[str, ...]:
    """The strings a passage must contain to hold the answer: QA aliases, or a multiple-choice question's gold
    option text."""
    if isinstance(gold, (list, tuple)):
        return tuple(str(g) for g in gold)
    choices, answer = getattr(gold, "choices", None), getattr(gold, "answer", None)
    if isinstance(choices, Mapping) and answer in choices:
        return (str(choices[answer]),)
    return ()


def _right(task: Task, row: Mapping[str, Any], answer: str, gold: Any) -> bool:
    score = task.score({**row, "answer": answer}, gold)[task.metrics[0]]
    return isinstance(score, (int, float)) and score >= 0.5


def _row_items(task: Task, row: Mapping[str, Any], gold: Any) -> tuple[bool, dict[str, list[tuple[float, bool]]]]:
    """(any candidate right, per `AUROC_LABELS` kind the row's (score, label) items): IsRel of each candidate with a
    passage against "the passage holds a gold answer" (rows of a gold with no text are left out), IsSup and the final
    score of each candidate against "the candidate is right"; a candidate without that score is left out."""
    golds_text = gold_texts(gold)
    items: dict[str, list[tuple[float, bool]]] = {kind: [] for kind in AUROC_LABELS}
    any_right = False
    for cand in row.get("candidates") or []:
        right = _right(task, row, cand["answer"], gold)
        any_right |= right
        scores = cand["scores"]
        if cand["passage_id"] is not None and scores.get("rel") is not None and golds_text:
            passage = Passage(cand["passage_id"], cand.get("passage_title") or "", cand.get("passage_text") or "")
            items["isrel"].append((scores["rel"], contains_answer(passage, golds_text)))
        for kind, key in (("issup", "sup"), ("final", "final")):
            if scores.get(key) is not None:
                items[kind].append((scores[key], right))
    return any_right, items


def _within_question(items: Sequence[tuple[float, bool]]) -> list[tuple[float, float]]:
    """Per (positive, negative) pair of one question's passage items (IsRel: answer-bearing vs answer-less passage;
    IsSup: right vs wrong candidate), in retrieval order: (score credit: 1 when the positive scores higher, 0.5 on a
    tie, retriever credit: 1 when the positive comes first)."""
    pairs = []
    for i, (score_i, positive_i) in enumerate(items):
        for score_j, positive_j in items[i + 1:]:
            if positive_i != positive_j:
                positive, negative = (score_i, score_j) if positive_i else (score_j, score_i)
                credit = 1.0 if positive > negative else 0.5 if positive == negative else 0.0
                pairs.append((credit, 1.0 if positive_i else 0.0))
    return pairs


def _unzip(pairs: Sequence[tuple[float, bool]]) -> tuple[list[float], list[bool]]:
    return [s for s, _ in pairs], [y for _, y in pairs]


def reflection_items(
    task: Task, rows: Sequence[Mapping[str, Any]], golds: Mapping[str, Any]
) -> dict[str, dict[str, list[tuple[float, bool]]]]:
    """The items each reflection AUROC is computed over, grouped by question: kind ("isrel", "issup", "final") ->
    question id -> that question's (score, label) pairs (empty where it has none), for a bootstrap that resamples
    questions (`eval.stats.paired_auroc_bootstrap`). The same items as the `reflection` block's AUROCs."""
    out: dict[str, dict[str, list[tuple[float, bool]]]] = {kind: {} for kind in AUROC_LABELS}
    for row in rows:
        _, row_items = _row_items(task, row, golds[str(row["id"])])
        for kind, pairs in row_items.items():
            out[kind][str(row["id"])] = pairs
    return out


def _passage_picks(task: Task, row: Mapping[str, Any], gold: Any, weights: RewardWeights) -> tuple[bool, bool] | None:
    """(right: the weights' pick among the passage candidates (`mode=always`), right: the first passage's candidate)
    for a row with passage candidates, else None."""
    first = next((c for c in row.get("candidates") or [] if c["passage_id"] is not None), None)
    if first is None:
        return None
    picked = rerank(dict(row), weights, mode="always")["answer"]
    return _right(task, row, picked, gold), _right(task, row, first["answer"], gold)


def _right_without_passages(task: Task, row: Mapping[str, Any], gold: Any, weights: RewardWeights) -> bool | None:
    """Right: the answer without passages (`mode=never`), for a row where that path was decoded, else None."""
    if all(c["passage_id"] is not None for c in row.get("candidates") or []):
        return None
    return _right(task, row, rerank(dict(row), weights, mode="never")["answer"], gold)


def reflection_diagnostics(
    task: Task,
    rows: Sequence[Mapping[str, Any]],
    golds: Mapping[str, Any],
    per_question: Mapping[str, Mapping[str, Any]],
    weights: RewardWeights,
) -> dict[str, Any]:
    """The `reflection` block of a short-form Self-RAG run's metrics.json (module docstring).

    Args:
        task: the run's task; `rows`: its prediction rows; `golds`: id -> gold; `per_question`: id -> its scores
            (for the chosen answers); `weights`: the run's reward weights (for the per-path answers).
    """
    primary = task.metrics[0]
    items: dict[str, list[tuple[float, bool]]] = {kind: [] for kind in AUROC_LABELS}
    oracle = 0
    chosen = []
    paths: list[tuple[float, bool, bool]] = []
    passage_picks: list[tuple[bool, bool]] = []
    within: list[tuple[float, float]] = []
    within_sup: list[tuple[float, float]] = []
    for row in rows:
        row_id = str(row["id"])
        gold = golds[row_id]
        any_right, row_items = _row_items(task, row, gold)
        for kind, pairs in row_items.items():
            items[kind] += pairs
        within += _within_question(row_items["isrel"])
        within_sup += _within_question(row_items["issup"])  # IsSup scores exist on passage candidates only
        oracle += any_right
        value = per_question[row_id][primary]
        chosen.append(float(value) if isinstance(value, (int, float)) else 0.0)
        picks = _passage_picks(task, row, gold, weights)
        if picks is not None:
            passage_picks.append(picks)
            # Retrieval usefulness: both paths decoded; the with-passages answer is the pick above.
            without = _right_without_passages(task, row, gold, weights)
            if without is not None:
                paths.append((float(row["p_retrieve"]), picks[0], without))
    (rel_scores, rel_labels), (sup_scores, sup_labels), (final_scores, final_labels) = (
        _unzip(items[kind]) for kind in AUROC_LABELS)
    n = len(rows)
    oracle_rate = oracle / n if n else None
    chosen_mean = _mean(chosen)
    usefulness = []
    for b, low in enumerate(P_RETRIEVE_BINS):
        high = P_RETRIEVE_BINS[b + 1] if b + 1 < len(P_RETRIEVE_BINS) else 1.0
        members = [(w, wo) for p, w, wo in paths if low <= p < high or (high == 1.0 and p == 1.0)]
        usefulness.append({"p_retrieve": f"[{low:.1f}, {high:.1f}{']' if high == 1.0 else ')'}", "n": len(members),
                           "with_passages": _mean([w for w, _ in members]),
                           "without_passages": _mean([wo for _, wo in members])})
    return {
        "n": n,
        "metric": primary,
        "oracle": oracle_rate,
        "chosen": chosen_mean,
        "chosen_over_oracle": chosen_mean / oracle_rate if oracle_rate else None,
        "isrel_auroc": auroc(rel_scores, rel_labels),
        "isrel_n": len(rel_scores),
        "isrel_positive_rate": _mean(rel_labels),
        "isrel_pairs_n": len(within),
        "isrel_within_question": _mean([r for r, _ in within]),
        "retriever_within_question": _mean([f for _, f in within]),
        "issup_auroc": auroc(sup_scores, sup_labels),
        "issup_n": len(sup_scores),
        "issup_pairs_n": len(within_sup),
        "issup_within_question": _mean([r for r, _ in within_sup]),
        "retriever_within_question_issup": _mean([f for _, f in within_sup]),
        "final_auroc": auroc(final_scores, final_labels),
        "final_n": len(final_scores),
        "candidates_right_rate": _mean(final_labels),
        "passage_pick_n": len(passage_picks),
        "passage_pick_reflection": _mean([r for r, _ in passage_picks]),
        "passage_pick_first": _mean([f for _, f in passage_picks]),
        "retrieval_usefulness": usefulness if paths else None,
        "reliability": {"isrel": reliability(rel_scores, rel_labels), "issup": reliability(sup_scores, sup_labels)},
    }


def reflection_markdown(block: Mapping[str, Any]) -> str:
    """The report section of a `reflection` block."""

    def num(value: Any, pct: bool = False) -> str:
        if value is None:
            return "–"
        return f"{value:.1%}" if pct else f"{value:.3f}"

    lines = [
        "## Reflection diagnostics",
        "",
        "| what | value |",
        "|---|---:|",
        f"| oracle: questions with a right candidate ({block['metric']}) | {num(block['oracle'], True)} |",
        f"| chosen answer right | {num(block['chosen'], True)} |",
        f"| chosen / oracle | {num(block['chosen_over_oracle'])} |",
        f"| IsRel AUROC vs passage holds a gold answer (n={block['isrel_n']}, "
        f"{num(block['isrel_positive_rate'], True)} hold one) | {num(block['isrel_auroc'])} |",
        f"| IsRel within a question: answer-bearing passage scored above an answer-less one "
        f"(n={block.get('isrel_pairs_n', 0)} pairs) | {num(block.get('isrel_within_question'), True)} |",
        f"| the same for the retriever's order | {num(block.get('retriever_within_question'), True)} |",
        f"| IsSup AUROC vs candidate right (n={block['issup_n']}) | {num(block['issup_auroc'])} |",
        f"| IsSup within a question: right candidate scored above a wrong one "
        f"(n={block.get('issup_pairs_n', 0)} pairs) | {num(block.get('issup_within_question'), True)} |",
        f"| the same for the retriever's order | {num(block.get('retriever_within_question_issup'), True)} |",
        f"| final score AUROC vs candidate right (n={block['final_n']}, "
        f"{num(block['candidates_right_rate'], True)} right) | {num(block['final_auroc'])} |",
    ]
    if block.get("passage_pick_n"):
        lines += [f"| among passages (n={block['passage_pick_n']}): the weights' pick right | "
                  f"{num(block['passage_pick_reflection'], True)} |",
                  f"| among passages: the retriever's first passage's candidate right | "
                  f"{num(block['passage_pick_first'], True)} |"]
    if block.get("retrieval_usefulness"):
        lines += ["", "Retrieval usefulness (questions with both paths decoded):", "",
                  "| p_retrieve | n | with passages | without |", "|---|---:|---:|---:|"]
        lines += [f"| {u['p_retrieve']} | {u['n']} | {num(u['with_passages'], True)} | "
                  f"{num(u['without_passages'], True)} |" for u in block["retrieval_usefulness"]]
    return "\n".join(lines)

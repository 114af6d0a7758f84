"""Answer recall@k of a retriever on a question file with gold answers; writes `output_dir/recall.json`.

    python scripts/eval_retrieval.py retriever=hybrid data.path=data/splits/popqa_longtail/dev.jsonl
"""

from __future__ import annotations

import json
import time

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import critic.relevance  # noqa: F401  (registers retriever.rerank=critic)
from selfrag.cli import run_or_exit
from selfrag.decoding.frontend_models import open_front_end
from selfrag.io import InputError, iter_jsonl, write_text_atomic
from selfrag.overrides import hydra_app
from selfrag.retrieval.evaluation import answer_recall
from selfrag.retrieval.factory import RETRIEVERS, front_end_config, open_configured_retriever
from selfrag.rundir import claim_output_dir
from selfrag.values import as_choice, as_int


def run(cfg: DictConfig) -> dict:
    """Retrieve max(ks) passages per question, score recall@k, write and return the metrics."""
    settings = OmegaConf.to_container(cfg.retriever, resolve=True)
    kind = settings["name"]
    if kind == "none":
        raise InputError("retriever=none retrieves nothing; choose bm25, dense or hybrid")
    as_choice(kind, "retriever", RETRIEVERS)
    limit = as_int(cfg.data.limit, "data.limit", minimum=1, allow_none=True)
    batch_size = as_int(cfg.batch_size, "batch_size", minimum=1)
    ks = cfg.ks if OmegaConf.is_list(cfg.ks) and len(cfg.ks) else None
    if ks is None:
        raise InputError(f"ks must be a non-empty list of integers >= 1, e.g. ks=[1,5,20], got {cfg.ks!r}")
    ks = [as_int(k, f"ks[{i}]", minimum=1) for i, k in enumerate(ks)]
    questions, answers = [], []
    for line_no, row in iter_jsonl(cfg.data.path):
        if limit is not None and len(questions) >= limit:
            break
        golds = row.get(cfg.data.answers_field)
        if not isinstance(row.get("question"), str) or not isinstance(golds, list):
            raise InputError(f"{cfg.data.path}:{line_no}: needs `question` and a `{cfg.data.answers_field}` list")
        questions.append(row["question"])
        answers.append([str(a) for a in golds])
    if not questions:
        raise InputError(f"{cfg.data.path}: no questions (the file is empty or blank); check data.path")
    _, front = front_end_config(settings)
    retriever = open_front_end(open_configured_retriever({**settings, "cache": False}, cfg.corpus.path), front)
    k = max(ks)
    ranked = []
    started = time.perf_counter()
    for start in tqdm(range(0, len(questions), batch_size), desc=f"retrieving ({kind})", unit="batch"):
        ranked.extend(retriever.batch_search(questions[start : start + batch_size], k))
    seconds = time.perf_counter() - started
    recall = answer_recall(ranked, answers, ks)
    metrics = {"retriever": kind, "frontend": front.frontend.kind, "rerank": front.rerank,
               "data": str(cfg.data.path), "corpus": str(cfg.corpus.path), "n": len(questions),
               **{f"recall@{k}": round(v, 4) for k, v in recall.items()},
               "seconds": round(seconds, 2), "queries_per_second": round(len(questions) / max(seconds, 1e-9), 1)}
    # claimed until the process ends
    write_text_atomic(claim_output_dir(cfg.output_dir) / "recall.json", json.dumps(metrics, indent=2) + "\n")
    print(" | ".join(f"{key}: {value}" for key, value in metrics.items() if key not in ("data", "corpus")))
    return metrics


@hydra_app("eval_retrieval")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

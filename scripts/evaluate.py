"""Evaluation: decode the input file with a method (Self-RAG or a baseline), score it, write metrics and a report.

    python scripts/evaluate.py task=popqa method=standard_rag data.path=FILE output_dir=DIR decoding.ndocs=5 ...

Writes predictions.jsonl (as infer), per_question.jsonl, metrics.json and report.md (formats: `eval.runs`).
Resumable like infer: decoding skips finished ids, and scoring is redone over every prediction of the input.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import critic.relevance  # noqa: F401  (registers retriever.rerank=critic)
from eval.baselines import METHODS, check_baseline_model, open_baseline
from eval.components import NLIFactScorer, TransformersNLIScorer
from eval.reflection import reflection_diagnostics
from eval.runs import METRICS, REPORT, metrics_record, report_markdown, write_scores
from eval.tasks import format_metrics, get_task, read_golds, score_predictions
from selfrag.cli import run_or_exit
from selfrag.decoding.hf_backend import check_device
from selfrag.decoding.run import (
    RUN_KEYS,
    DecodeSettings,
    SelfRAGPredictor,
    decode_file,
    read_timing,
    run_settings,
    summary,
)
from selfrag.io import InputError
from selfrag.overrides import hydra_app
from selfrag.rundir import claimed_output_dir
from selfrag.values import as_choice, as_int, as_str


def run(cfg: DictConfig) -> Path:
    """Decode and score `cfg.data.path` into `cfg.output_dir`; return the metrics.json path."""
    config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    method = as_choice(config["method"], "method", METHODS)
    settings = DecodeSettings.from_config(config)
    check_baseline_model(method, settings.model)
    examples = as_int(config["summary_examples"], "summary_examples", minimum=0)
    nli_model = as_str(config["scoring"]["nli_model"], "scoring.nli_model", allow_none=True)
    device = config["scoring"]["device"]
    if nli_model:
        if device == "auto":
            raise InputError("scoring.device must be cpu, cuda, cuda:N or mps, got 'auto'")
        check_device(device, "scoring.device")
    task = get_task(settings.task,
                    nli=TransformersNLIScorer(nli_model, device=device) if nli_model else None,
                    fact_scorer=NLIFactScorer.from_model_path(nli_model, device=device) if nli_model else None)
    # Golds and queries are read and checked before any model loads: a file without golds fails in a second.
    gold_path = str(as_str(config["data"].get("gold"), "data.gold", allow_none=True) or settings.data_path)
    golds = read_golds(task, gold_path)
    queries = settings.read_queries()
    missing = [q.id for q in queries if q.id not in golds]
    if missing:
        raise InputError(f"{len(missing)} question id(s) of {settings.data_path} have no gold in {gold_path}, "
                         f"e.g. {missing[:5]}; set data.gold to the file with their answers")

    def open_predictor():
        return SelfRAGPredictor.open(settings) if method == "selfrag" else open_baseline(method, settings)

    # Claimed through scoring, not only decoding: metrics.json and report.md have one writer too.
    with claimed_output_dir(cfg.output_dir) as output_dir:
        result = decode_file(queries, open_predictor, output_dir,
                             settings=run_settings(config, (*RUN_KEYS, "method")), batch_size=settings.batch_size,
                             desc=f"decoding ({method})")
        per_question = score_predictions(task, result.rows, golds)
        timing = read_timing(output_dir)
        reflection = None
        if method == "selfrag" and not settings.decoding.long_form:
            reflection = reflection_diagnostics(task, result.rows, golds, per_question, settings.decoding.weights)
        record = metrics_record(task, per_question, result.rows, method=method, settings=settings,
                                gold_path=gold_path, seconds=result.total_seconds, decoded=result.total_decoded,
                                load_seconds=float(timing["load_seconds"]), reflection=reflection)
        if result.rows and "retrieval_budget" in result.rows[0]:
            record["retrieval_budget"] = result.rows[0]["retrieval_budget"]
        write_scores(output_dir, per_question, record,
                     report_markdown(record, result.rows, per_question, examples=examples))
    print(summary(result.rows, result.seconds, result.decoded, examples))
    print(f"\n{task.name} / {method}:")
    print(format_metrics(task.aggregate(per_question)))
    print(f"retrieval_rate: {record['retrieval_rate']:.4f}")
    if "retrieval_budget" in record:
        budget = record["retrieval_budget"]
        print(f"retrieval budget {budget['budget']}: threshold {budget['threshold']:.4f} (fitted on "
              f"{budget['budget_questions']} questions of {budget['budget_data']})")
    print(f"\nmetrics: {output_dir / METRICS}\nreport: {output_dir / REPORT}")
    return output_dir / METRICS


@hydra_app("evaluate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The README's results section, end to end: every evaluate run, the results tables and the sweeps.
#   bash scripts/reproduce_results.sh [OUT]        (default OUT=outputs/results; resumable: re-running skips
#                                                   finished questions of every run)
# PopQA: the 100 long-tail questions with Self-RAG's own Contriever passages (ctxs); ARC-Challenge: the 100 processed
# questions with theirs. Self-RAG decodes every path (score_all_paths) so the threshold sweep needs no re-decoding.
# Baselines: the same rows fine-tuned without tokens (sft_*) with and without passages, and the untrained instruct
# base without passages (base_standard_rag is one more line, left out for CPU time: ~11 min per task on 2 cores).
set -euo pipefail
OUT=${1:-outputs/results}
PY=${PY:-.venv/bin/python}
DATA=../shared/data
declare -A FILES=([popqa]=$DATA/popqa/popqa_longtail_w_gs_first100.jsonl
                  [arc_challenge]=$DATA/arc_challenge/arc_challenge_processed_first100.jsonl)
for task in popqa arc_challenge; do
  run() { $PY scripts/evaluate.py task=$task data.path=${FILES[$task]} "$@"; }
  run method=selfrag decoding.score_all_paths=true output_dir=$OUT/$task/selfrag
  run method=no_retrieval model=sft_smollm2_135m_notokens output_dir=$OUT/$task/sft_no_retrieval
  run method=standard_rag model=sft_smollm2_135m_notokens output_dir=$OUT/$task/sft_standard_rag
  run method=no_retrieval model=smollm2_135m_instruct output_dir=$OUT/$task/base_no_retrieval
  $PY scripts/results_table.py "runs=[$OUT/$task/selfrag,$OUT/$task/sft_no_retrieval,$OUT/$task/sft_standard_rag,$OUT/$task/base_no_retrieval]" \
      output_dir=$OUT/$task/table
  $PY scripts/sweep.py run=$OUT/$task/selfrag output_dir=$OUT/$task/sweep
done

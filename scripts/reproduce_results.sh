#!/usr/bin/env bash
# The README's results section, end to end: every evaluate run, the results tables and the sweeps.
#   bash scripts/reproduce_results.sh [OUT]            (default OUT=outputs/results; resumable: re-running skips
#                                                       finished questions of every run)
#   FILES=first100 bash scripts/reproduce_results.sh   (Self-RAG's own first-100 files with their Contriever passages)
# Default: the shared dev files (PopQA long-tail, 899 questions; ARC-Challenge, 772), every method retrieving with
# BM25 over the pooled corpus (`data/corpus`). Decoded with vLLM (the CPU build runs it on a laptop in about an hour;
# BACKEND=hf works too, ~4x slower on a CPU). Self-RAG decodes every path (score_all_paths), so the threshold sweep
# needs no re-decoding. Baselines: the same rows fine-tuned without tokens (sft_*) with and without passages, and the
# untrained instruct base without passages.
set -euo pipefail
OUT=${1:-outputs/results}
PY=${PY:-.venv/bin/python}
BACKEND=${BACKEND:-vllm}
DATA=../shared/data
case ${FILES:-dev} in
  dev) declare -A PATHS=([popqa]=$DATA/popqa/popqa_longtail_dev.jsonl [arc_challenge]=$DATA/arc_challenge/arc_challenge_dev.jsonl)
       RETRIEVER=bm25 ;;
  first100) declare -A PATHS=([popqa]=$DATA/popqa/popqa_longtail_w_gs_first100.jsonl
                              [arc_challenge]=$DATA/arc_challenge/arc_challenge_processed_first100.jsonl)
       RETRIEVER=none ;;  # the files' own ctxs
  *) echo "FILES=${FILES}: choose dev or first100" >&2; exit 2 ;;
esac
for task in popqa arc_challenge; do
  run() { $PY scripts/evaluate.py task=$task data.path=${PATHS[$task]} retriever=$RETRIEVER backend=$BACKEND \
            batch_size=64 "$@"; }
  run method=selfrag decoding.score_all_paths=true output_dir=$OUT/$task/selfrag
  run method=no_retrieval model=sft_smollm2_135m_notokens output_dir=$OUT/$task/sft_no_retrieval
  run method=standard_rag model=sft_smollm2_135m_notokens output_dir=$OUT/$task/sft_standard_rag
  run method=no_retrieval model=smollm2_135m_instruct output_dir=$OUT/$task/base_no_retrieval
  $PY scripts/results_table.py "runs=[$OUT/$task/selfrag,$OUT/$task/sft_no_retrieval,$OUT/$task/sft_standard_rag,$OUT/$task/base_no_retrieval]" \
      output_dir=$OUT/$task/table
  $PY scripts/sweep.py run=$OUT/$task/selfrag output_dir=$OUT/$task/sweep
done

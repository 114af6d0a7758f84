"""Retrieval front-ends against plain BM25 and hybrid: answer recall and queries/s (eval_retrieval) on PopQA long-tail
dev and HotpotQA, and end-to-end match (evaluate, base SmolLM2-135M-Instruct reading the top 10, standard RAG) on PopQA
long-tail dev with paired bootstrap CIs against plain BM25. One markdown table for the README.

    python benchmarks/frontends_table.py [--out docs/results/frontends] [--work outputs/frontends]

Each run is a normal `scripts/eval_retrieval.py` / `scripts/evaluate.py` run under --work (a finished one is reused,
so an interrupted table resumes). The retrieval run is the first to write each question's queries, so its queries/s
includes writing them (transformers backend, 2 CPU cores); the end-to-end run then reads them from the cache (delete
`~/.cache/selfrag/frontend_queries.sqlite` to measure again). HotpotQA has no evaluate task here: retrieval only;
its questions are also generator-training seeds, which does not touch retrieval (no retriever here was trained).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from eval.runs import compare_runs, load_run
from selfrag.artifacts import display_path
from selfrag.io import read_jsonl, write_jsonl_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
POPQA_DEV = "data/splits/popqa_longtail/dev.jsonl"
HOTPOT = "data/hotpotqa/hotpotqa_dev_200.jsonl"

REWRITE = ["retriever.frontend_options.max_new_tokens=32"]
FUSION = ["retriever.frontend_options.max_new_tokens=48"]
TOP10 = ["retriever.rerank_options.candidates=10"]
#: (label, retriever overrides): every front-end on BM25, plain hybrid, and the two rerankers.
CONFIGS = (
    ("BM25", ["retriever=bm25"]),
    ("BM25 + rewrite", ["retriever=bm25", "retriever.frontend=rewrite", *REWRITE]),
    ("BM25 + HyDE", ["retriever=bm25", "retriever.frontend=hyde", "retriever.frontend_options.max_new_tokens=96"]),
    ("BM25 + fusion (4 queries)", ["retriever=bm25", "retriever.frontend=fusion", *FUSION]),
    ("BM25 + critic rerank (top 10)", ["retriever=bm25", "retriever.rerank=critic", *TOP10]),
    ("hybrid (dense + BM25, RRF)", ["retriever=hybrid"]),
)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def _portable(value):
    """`value` with every absolute path string made relative to the repository (`display_path`)."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    return display_path(value) if isinstance(value, str) and value.startswith("/") else value


def _run(script: str, overrides: list[str], done: Path) -> None:
    if done.is_file():
        return
    command = [sys.executable, str(ROOT / "scripts" / f"{script}.py"), *overrides]
    print("+", " ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "frontends")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "frontends")
    parser.add_argument("--limit", type=int, default=50, help="questions per file (the first N)")
    parser.add_argument("--skip-e2e", action="store_true", help="retrieval only")
    args = parser.parse_args()

    # yes/no questions are dropped from HotpotQA: any passage "contains" yes or no, so their recall says nothing
    hotpot = args.work / "hotpotqa_no_yes_no.jsonl"
    if not hotpot.is_file():
        args.work.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_jsonl(ROOT / HOTPOT) if not {a.lower() for a in r["answers"]} <= {"yes", "no"}]
        write_jsonl_atomic(hotpot, kept)
    rows = []
    for label, overrides in CONFIGS:
        slug = _slug(label)
        row = {"label": label, "overrides": overrides}
        for name, data in (("popqa", POPQA_DEV), ("hotpotqa", str(hotpot))):
            out = args.work / "recall" / f"{name}_{slug}"
            _run("eval_retrieval", [*overrides, f"data.path={data}", f"data.limit={args.limit}",
                                    "ks=[1,5,20]", f"output_dir={out}"], out / "recall.json")
            row[name] = json.loads((out / "recall.json").read_text())
        if not args.skip_e2e:
            out = args.work / "e2e" / slug
            _run("evaluate", ["task=popqa", f"data.path={POPQA_DEV}", f"data.limit={args.limit}",
                              "method=standard_rag", "model=smollm2_135m_instruct", "decoding.ndocs=10",
                              "backend=vllm", "+backend.engine_options.enforce_eager=true", "batch_size=100",
                              *overrides, f"output_dir={out}"], out / "metrics.json")
            row["e2e_dir"] = out
        rows.append(row)

    lines = ["| retrieval | PopQA R@1 | R@5 | R@20 | q/s | HotpotQA R@1 | R@5 | R@20 | q/s | PopQA match (e2e) "
             "| vs BM25 [95% CI] |", "|---|" + "---:|" * 10]
    base = load_run(rows[0]["e2e_dir"]) if not args.skip_e2e else None
    record = []
    for row in rows:
        cells = []
        for name in ("popqa", "hotpotqa"):
            r = row[name]
            cells += [f"{r['recall@1']:.2f}", f"{r['recall@5']:.2f}", f"{r['recall@20']:.2f}",
                      f"{r['queries_per_second']:g}"]
        match, versus, comparison = "–", "–", None
        if base is not None:
            run = load_run(row["e2e_dir"])
            comparison, _ = compare_runs(run, base)
            match = f"{comparison['mean_a']:.1%}"
            versus = "(reference)" if row is rows[0] else (
                f"{100 * comparison['difference']:+.1f} [{100 * comparison['ci_low']:+.1f}, "
                f"{100 * comparison['ci_high']:+.1f}]")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {match} | {versus} |")
        record.append({"label": row["label"], "overrides": row["overrides"], "popqa": row["popqa"],
                       "hotpotqa": row["hotpotqa"], "e2e": comparison,
                       "e2e_dir": str(row["e2e_dir"]) if "e2e_dir" in row else None})
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "table.md", "\n".join(lines) + "\n")
    write_text_atomic(args.out / "table.json", json.dumps(_portable(record), indent=2, default=str) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Offline annotation: a trained critic and a retriever turn instruction data into Self-RAG generator data.

    python scripts/annotate.py critic.adapter=artifacts/critic-smollm2-135m [sources=...] [k=3] output_dir=DIR

Writes `train.jsonl` in the released format `{instruction, input, output, id, dataset_name}` (resumable: a re-run
skips seeds already written), `stats.json` / `stats.md` (counts of every reflection token, retrieval rate, passages
per example, and the truth table of `critic/truth.py` against the seeds' gold answers) and `critic_calls.json` (critic
calls per aspect, summed over every run into this directory). The steps and passage-choice rules are documented in
`critic/annotate.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from critic.annotate import Annotator, PassageRules, RowVariants, annotate_file
from critic.critic_data import in_dev_split
from critic.critic_model import open_critic
from critic.sources import read_source_list
from critic.truth import data_report
from selfrag.artifacts import command_line, write_card
from selfrag.cli import run_or_exit
from selfrag.io import read_jsonl, write_text_atomic
from selfrag.models.loading import ModelSpec
from selfrag.retrieval.factory import open_configured_retriever


def _relative(path: str | None) -> str | None:
    """`path` relative to the working directory when it lies below it (cards should not name one machine's paths)."""
    if not path:
        return path
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def write_stats(cfg: DictConfig, output_dir: Path, seeds) -> str:
    """stats.json / stats.md of `output_dir/train.jsonl` against `seeds`; returns the markdown."""
    stats, markdown = data_report(read_jsonl(output_dir / "train.jsonl"), {s.id: s for s in seeds},
                                  held_out=lambda q: in_dev_split(q, cfg.critic_dev_fraction))
    write_text_atomic(output_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    write_text_atomic(output_dir / "stats.md", markdown)
    return markdown


def add_calls(path: Path, calls: dict[str, int]) -> dict[str, int]:
    """Add this run's critic calls to those already recorded in `path` (a resumed run counts every invocation)."""
    total = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for aspect, n in calls.items():
        total[aspect] = total.get(aspect, 0) + n
    write_text_atomic(path, json.dumps(total, indent=2) + "\n")
    return total


def export_dataset(cfg: DictConfig, output_dir: Path, export: Path, stats_md: str) -> None:
    """Copy the generator data and its statistics to `export` and write its card."""
    export.mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "stats.json", "stats.md"):
        shutil.copyfile(output_dir / name, export / name)
    rules = (
        f"Passages: top {cfg.k} per retrieving segment from "
        + ("the rows' own `ctxs`" if cfg.use_ctxs else f"`{cfg.retriever.name}` over `{Path(cfg.corpus.path).name}`")
        + f"; passage classes allowed, in order of preference: {', '.join(cfg.passage_order)}; segments: pysbd "
        f"sentences, shorter than {cfg.min_segment_chars} characters attached to a neighbour (critic/annotate.py)."
    )
    sources = "\n".join(f"- `{Path(s.path).name}` as `{s.get('dataset')}` (offset {s.get('offset') or 0}, "
                        f"limit {s.get('limit')}"
                        + (f", random sample of {s.sample} rows, seed {s.get('seed') or 0}" if s.get("sample") else "")
                        + (", yes/no questions skipped" if s.get("skip_yes_no") else "")
                        + ")" for s in cfg.sources)
    write_card(
        export,
        title="Self-RAG generator training data",
        summary="Instruction/output pairs with reflection tokens and passages inserted offline by the critic "
        "(`scripts/annotate.py`), in the released Self-RAG format `{instruction, input, output, id, dataset_name}`.",
        base=f"critic `{cfg.critic.name}` (adapter `{_relative(cfg.critic.adapter)}`) on its base",
        data=[s.path for s in cfg.sources] + [export / "train.jsonl"],
        command=command_line(),
        sections={"Sources": sources, "Rules": rules, "Statistics": stats_md.split("\n", 2)[2]},
    )
    print(f"exported: {export}")


def run(cfg: DictConfig) -> Path:
    output_dir = Path(cfg.output_dir)
    seeds = read_source_list(OmegaConf.to_container(cfg.sources, resolve=True))
    rules = PassageRules(tuple(cfg.passage_order))
    variants = RowVariants(**cfg.variants)
    search = None
    if not cfg.use_ctxs:
        settings = OmegaConf.to_container(cfg.retriever, resolve=True)
        search = open_configured_retriever(settings, cfg.corpus.path).batch_search
    backend = OmegaConf.to_container(cfg.backend, resolve=True)
    critic = open_critic(ModelSpec(**OmegaConf.to_container(cfg.critic, resolve=True)), backend.pop("name"), backend,
                         batch_size=cfg.critic_batch_size)
    annotator = Annotator(critic, search, k=cfg.k, rules=rules, variants=variants,
                          min_segment_chars=cfg.min_segment_chars)
    out = output_dir / "train.jsonl"
    stats = annotate_file(seeds, annotator, out, batch_size=cfg.batch_size)
    add_calls(output_dir / "critic_calls.json", stats.critic_calls)
    markdown = write_stats(cfg, output_dir, seeds)
    if cfg.export_dir:
        export_dataset(cfg, output_dir, Path(cfg.export_dir), markdown)
    print(markdown)
    print(f"annotated {stats.seeds} new seeds ({stats.skipped_done} already done): {out}")
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="annotate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

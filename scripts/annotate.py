"""Offline annotation: a trained critic and a retriever turn instruction data into Self-RAG generator data.

    python scripts/annotate.py critic.adapter=artifacts/critic-smollm2-135m [sources=...] [k=3] output_dir=DIR

Writes `train.jsonl` in the released format `{instruction, input, output, id, dataset_name}` (resumable: a re-run
skips ids already written), `stats.json` / `stats.md` (counts of every reflection token, retrieval rate, passages per
example) and `critic_calls.json`. The steps and passage-choice rules are documented in `critic/annotate.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from critic.annotate import Annotator, PassageRules, annotate_file
from critic.critic_model import open_critic
from critic.released import token_statistics
from critic.sources import read_source_list
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
                        + ")" for s in cfg.sources)
    write_card(
        export,
        title="Self-RAG generator training data",
        summary="Instruction/output pairs with reflection tokens and passages inserted offline by the critic "
        "(`scripts/annotate.py`), in the released Self-RAG format `{instruction, input, output, id, dataset_name}`.",
        base=f"critic `{cfg.critic.name}` (adapter `{_relative(cfg.critic.adapter)}`) on its base",
        data=[s.path for s in cfg.sources] + [export / "train.jsonl"],
        command=command_line(),
        sections={"Sources": sources, "Rules": rules, "Statistics": stats_md},
    )
    print(f"exported: {export}")


def run(cfg: DictConfig) -> Path:
    output_dir = Path(cfg.output_dir)
    seeds = read_source_list(OmegaConf.to_container(cfg.sources, resolve=True))
    search = None
    if not cfg.use_ctxs:
        settings = OmegaConf.to_container(cfg.retriever, resolve=True)
        search = open_configured_retriever(settings, cfg.corpus.path).batch_search
    backend = OmegaConf.to_container(cfg.backend, resolve=True)
    critic = open_critic(ModelSpec(**OmegaConf.to_container(cfg.critic, resolve=True)), backend.pop("name"), backend)
    annotator = Annotator(critic, search, k=cfg.k, rules=PassageRules(tuple(cfg.passage_order)),
                          min_segment_chars=cfg.min_segment_chars)
    out = output_dir / "train.jsonl"
    stats = annotate_file(seeds, annotator, out, batch_size=cfg.batch_size)
    token_stats = token_statistics(read_jsonl(out))
    write_text_atomic(output_dir / "stats.json", json.dumps(token_stats.as_json(), indent=2) + "\n")
    write_text_atomic(output_dir / "stats.md", "# Generator data statistics\n\n" + token_stats.as_markdown() + "\n")
    write_text_atomic(output_dir / "critic_calls.json", json.dumps(stats.critic_calls, indent=2) + "\n")
    if cfg.export_dir:
        export_dataset(cfg, output_dir, Path(cfg.export_dir), token_stats.as_markdown())
    print(token_stats.as_markdown())
    print(f"annotated {stats.seeds} new rows ({stats.skipped_done} already done): {out}")
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="annotate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

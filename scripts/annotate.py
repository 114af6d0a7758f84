"""Offline annotation: a trained critic and a retriever turn instruction data into Self-RAG generator data.

    python scripts/annotate.py critic.adapter=artifacts/critic-smollm2-135m [sources=...] [k=3] output_dir=DIR

Writes `train.jsonl` in the released format `{instruction, input, output, id, dataset_name}` (resumable: a re-run
skips seeds already written), `stats.json` / `stats.md` (counts of every reflection token, retrieval rate, passages
per example, and the truth table of `critic/truth.py` against the seeds' gold answers), `critic_calls.json` (labels
asked per aspect, summed over every run into this directory) and, with `labeler=teacher_first`, `labels_by.json`
(how many items the teacher and the critic labelled). The steps and passage-choice rules are documented in
`critic/annotate.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from critic.annotate import Annotator, PassageRules, RowVariants, annotate_file
from critic.composite import TeacherFirst
from critic.critic_data import in_dev_split
from critic.critic_model import open_critic
from critic.grounded import AnswerGroundedTeacher
from critic.sources import read_source_list
from critic.truth import data_report
from selfrag.artifacts import command_line, display_path, write_card
from selfrag.cli import run_or_exit
from selfrag.decoding.factory import check_backend
from selfrag.io import InputError, read_jsonl, write_text_atomic
from selfrag.models.loading import model_files, model_spec
from selfrag.overrides import hydra_app
from selfrag.retrieval.factory import open_configured_retriever
from selfrag.rundir import add_counts, claimed_output_dir, guard_settings
from selfrag.values import as_bool, as_choice, as_int


def write_stats(cfg: DictConfig, output_dir: Path, seeds) -> str:
    """stats.json / stats.md of `output_dir/train.jsonl` against `seeds`; returns the markdown."""
    stats, markdown = data_report(read_jsonl(output_dir / "train.jsonl"), {s.id: s for s in seeds},
                                  held_out=lambda q: in_dev_split(q, cfg.critic_dev_fraction))
    write_text_atomic(output_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    write_text_atomic(output_dir / "stats.md", markdown)
    return markdown


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
    critic_adapter = display_path(cfg.critic.adapter) if cfg.critic.adapter else None
    write_card(
        export,
        title="Self-RAG generator training data",
        summary="Instruction/output pairs with reflection tokens and passages inserted offline by the critic "
        "(`scripts/annotate.py`), in the released Self-RAG format `{instruction, input, output, id, dataset_name}`.",
        base=f"critic `{cfg.critic.name}` (adapter `{critic_adapter}`) on its base",
        data=[s.path for s in cfg.sources] + [export / "train.jsonl"],
        command=command_line(),
        sections={"Sources": sources, "Rules": rules, "Statistics": stats_md.split("\n", 2)[2]},
    )
    print(f"exported: {export}")


def run(cfg: DictConfig) -> Path:
    # Every setting is checked before the critic loads (a bad passage_order fails in a second, not after a load).
    critic_node = OmegaConf.to_container(cfg.critic, resolve=True, throw_on_missing=True)
    critic_spec = model_spec(critic_node, key="critic")
    try:
        rules = PassageRules(tuple(cfg.passage_order))
        variants = RowVariants(**OmegaConf.to_container(cfg.variants, resolve=True))
    except (TypeError, ValueError) as err:
        raise InputError(f"passage_order / variants: {err}") from None
    k = as_int(cfg.k, "k", minimum=1)
    min_chars = as_int(cfg.min_segment_chars, "min_segment_chars", minimum=0)
    batch_size = as_int(cfg.batch_size, "batch_size", minimum=1)
    critic_batch = as_int(cfg.critic_batch_size, "critic_batch_size", minimum=1)
    use_ctxs = as_bool(cfg.use_ctxs, "use_ctxs")
    labeler_kind = as_choice(cfg.labeler, "labeler", ("critic", "teacher_first"))
    backend = OmegaConf.to_container(cfg.backend, resolve=True, throw_on_missing=True)
    backend_name = backend.pop("name")
    check_backend(backend_name, backend)
    sources = OmegaConf.to_container(cfg.sources, resolve=True, throw_on_missing=True)
    retriever = OmegaConf.to_container(cfg.retriever, resolve=True)
    seeds = read_source_list(sources)
    with claimed_output_dir(cfg.output_dir) as output_dir:
        # Rows made with other settings never join this file (a re-run with the same settings resumes it).
        guard_settings(output_dir, {
            "sources": sources, "k": k, "use_ctxs": use_ctxs, "retriever": None if use_ctxs else retriever,
            "corpus.path": str(cfg.corpus.path), "critic": critic_node,
            "backend.name": backend_name, "passage_order": list(cfg.passage_order), "variants": dict(cfg.variants),
            "min_segment_chars": min_chars, "labeler": labeler_kind,
            "critic_files": model_files(critic_node),
        }, outputs=("train.jsonl",), added_keys=("critic_files",))  # older records lack it: checked on the rest
        search = None if use_ctxs else open_configured_retriever(retriever, cfg.corpus.path).batch_search
        critic = open_critic(critic_spec, backend_name, backend, batch_size=critic_batch)
        labeler = critic if labeler_kind == "critic" else TeacherFirst(AnswerGroundedTeacher(), critic)
        annotator = Annotator(labeler, search, k=k, rules=rules, variants=variants, min_segment_chars=min_chars)
        out = output_dir / "train.jsonl"
        stats = annotate_file(seeds, annotator, out, batch_size=batch_size)
        critic.backend.close()
        add_counts(output_dir / "critic_calls.json", stats.critic_calls)
        if labeler_kind == "teacher_first":
            add_counts(output_dir / "labels_by.json", dict(labeler.counts))
        markdown = write_stats(cfg, output_dir, seeds)
        if cfg.export_dir:
            export_dataset(cfg, output_dir, Path(cfg.export_dir), markdown)
    print(markdown)
    print(f"annotated {stats.seeds} new seeds ({stats.skipped_done} already done): {out}")
    return out


@hydra_app("annotate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

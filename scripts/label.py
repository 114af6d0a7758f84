"""Teacher labelling: seed data -> items with passages -> teacher labels -> balanced critic training data.

    python scripts/label.py [teacher=grounded|judge teacher.model=NAME] [k=3] output_dir=DIR

Writes `labels.jsonl` (resumable: a re-run skips seeds already labelled), `critic_train.jsonl` / `critic_dev.jsonl`
(the released `{instruction, input, output}` layout; `scripts/train_critic.py` trains on them) and `critic_data.md`
(label counts before and after balancing). Compare two teachers on the same seeds with `scripts/agreement.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from critic.critic_data import build_critic_data
from critic.labelling import label_seeds, read_labelled
from critic.sources import read_source_list
from selfrag.cli import run_or_exit
from selfrag.io import InputError, append_jsonl, write_jsonl_atomic, write_text_atomic
from selfrag.overrides import hydra_app
from selfrag.retrieval.factory import open_configured_retriever
from selfrag.rundir import claimed_output_dir, guard_settings
from selfrag.values import as_bool, as_int


def build_teacher(cfg: DictConfig) -> Any:
    """The labeler named by `teacher.name`."""
    options = OmegaConf.to_container(cfg.teacher, resolve=True, throw_on_missing=True)
    name = options.pop("name")
    if name == "grounded":
        from critic.grounded import AnswerGroundedTeacher

        return AnswerGroundedTeacher(**options)
    if name == "judge":
        from critic.judge import OpenAIJudge

        return OpenAIJudge(**options)
    raise InputError(f"teacher must be grounded or judge, got {name!r}")


def run(cfg: DictConfig) -> Path:
    # Settings are checked before anything is read or loaded.
    k = as_int(cfg.k, "k", minimum=1)
    batch_size = as_int(cfg.batch_size, "batch_size", minimum=1)
    utility_variants = as_bool(cfg.utility_variants, "utility_variants")
    sources = OmegaConf.to_container(cfg.sources, resolve=True, throw_on_missing=True)
    teacher_settings = OmegaConf.to_container(cfg.teacher, resolve=True, throw_on_missing=True)
    retriever_settings = OmegaConf.to_container(cfg.retriever, resolve=True)
    seeds = read_source_list(sources)
    with claimed_output_dir(cfg.output_dir) as output_dir:
        guard_settings(output_dir, {"sources": sources, "teacher": teacher_settings, "k": k,
                                    "utility_variants": utility_variants, "retriever": retriever_settings,
                                    "corpus.path": str(cfg.corpus.path), "seed": cfg.seed},
                       outputs=("labels.jsonl",))
        retriever = None
        if any(not s.passages for s in seeds):
            retriever = open_configured_retriever(retriever_settings, cfg.corpus.path)

        def find_passages(batch):
            return retriever.batch_search([s.instruction for s in batch], k)

        teacher = build_teacher(cfg)
        stats = label_seeds(
            seeds, teacher, output_dir / "labels.jsonl", find_passages=find_passages if retriever else None,
            k=k, utility_variants=utility_variants, batch_size=batch_size, seed=cfg.seed,
        )
        failures = getattr(teacher, "failures", None)
        if failures:  # judge replies that never parsed: the items are abstained on, the replies kept for a look
            append_jsonl(output_dir / "judge_failures.jsonl", [f.to_json() for f in failures])
            print(f"{len(failures)} item(s) got no parseable reply: see {output_dir / 'judge_failures.jsonl'}")
        items, labels = read_labelled(output_dir / "labels.jsonl")
        train, dev, report = build_critic_data(items, labels, seed=cfg.seed, **cfg.critic_data)
        write_jsonl_atomic(output_dir / "critic_train.jsonl", train)
        write_jsonl_atomic(output_dir / "critic_dev.jsonl", dev)
        summary = {
            "seeds": len(seeds), "labelled_now": stats.seeds, "resumed_done": stats.skipped_done,
            "items": len(items), "abstained": sum(lab is None for lab in labels),
            "train_rows": len(train), "dev_rows": len(dev),
        }
        write_text_atomic(output_dir / "label_stats.json", json.dumps(summary, indent=2) + "\n")
        write_text_atomic(output_dir / "critic_data.md", "# Critic data\n\n" + report.as_markdown() + "\n")
    print(report.as_markdown())
    print(json.dumps(summary))
    return output_dir


@hydra_app("label")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

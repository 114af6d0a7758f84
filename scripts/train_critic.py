"""Critic training: fine-tune a causal LM on teacher labels, then measure it against the teacher on the dev split.

    python scripts/train_critic.py data.train=DIR/critic_train.jsonl data.dev=DIR/critic_dev.jsonl \\
        [finetune=lora|full] [export_dir=artifacts/critic-smollm2-135m] output_dir=OUT

The critic answers with the label token itself (e.g. `[Relevant]`), so its prediction is read in one forward pass,
constrained to the aspect's labels (`critic/critic_model.py`). Writes `OUT/final/` (the adapter or checkpoint),
`OUT/critic_metrics.json` (per-aspect accuracy, kappa and confusion against the teacher) and `OUT/final/README.md` (the
card). Resumable: a re-run with the same output_dir continues from the last checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from critic.agreement import format_agreement
from critic.critic_model import open_critic
from critic.evaluation import confusion_markdown, evaluate_critic
from selfrag.artifacts import command_line, export_artifact, training_curve, write_card
from selfrag.cli import run_or_exit
from selfrag.io import read_jsonl, write_text_atomic
from selfrag.models.loading import ModelSpec, resolve_checkpoint
from selfrag.overrides import hydra_app
from selfrag.training.config import TrainConfig
from selfrag.training.sft_data import load_sft_dataset, load_training_tokenizer
from selfrag.training.trainer import train


def run(cfg: DictConfig) -> Path:
    started = time.perf_counter()
    output_dir = Path(cfg.output_dir)
    spec = ModelSpec(**OmegaConf.to_container(cfg.model, resolve=True))
    base = resolve_checkpoint(spec)
    config = TrainConfig(**OmegaConf.to_container(cfg.finetune, resolve=True))
    tokenizer = load_training_tokenizer(base)
    cache = output_dir / "data_cache"
    train_data, train_stats = load_sft_dataset(cfg.data.train, tokenizer, max_length=config.max_length,
                                               overflow=cfg.data.overflow, cache_dir=cache)
    dev_rows = read_jsonl(cfg.data.dev) if cfg.data.dev else []
    dev_data = None
    if dev_rows:
        dev_data, _ = load_sft_dataset(cfg.data.dev, tokenizer, max_length=config.max_length,
                                       overflow=cfg.data.overflow, cache_dir=cache)
    result = train(base, train_data, config, output_dir=output_dir, eval_dataset=dev_data)
    metrics: dict[str, Any] = {"train_data": train_stats.to_dict(), "train": result.stats}
    sections = {"Training": f"{json.dumps(asdict(config))}\n\n{training_curve(result.history)}"}
    if dev_rows:
        backend = OmegaConf.to_container(cfg.backend, resolve=True)
        trained = ModelSpec(name="critic", path=spec.path, packaged=spec.packaged,
                            add_reflection_tokens=spec.add_reflection_tokens, adapter=str(result.final_dir))
        if config.finetune == "full":
            trained = ModelSpec(name="critic", path=str(result.final_dir))
        critic = open_critic(trained, backend.pop("name"), backend)
        report = evaluate_critic(critic, dev_rows)
        critic.backend.close()
        metrics["dev"] = {aspect: asdict(result) for aspect, result in report.items()}
        sections["Dev accuracy against the teacher"] = format_agreement(report)
        sections["Confusion (dev)"] = confusion_markdown(report)
        print(format_agreement(report))
    metrics["seconds"] = time.perf_counter() - started
    write_text_atomic(output_dir / "critic_metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(result.final_dir / "critic_metrics.json", json.dumps(metrics, indent=2) + "\n")
    data_files = [cfg.data.train] + ([cfg.data.dev] if cfg.data.dev else [])
    write_card(
        result.final_dir,
        title=f"Self-RAG critic ({config.finetune}) on {spec.name}",
        summary="A critic that labels Retrieve / IsRel / IsSup / IsUse with the reflection-token strings, trained on "
        "teacher labels by `scripts/train_critic.py`. Use it with `scripts/annotate.py critic.adapter=<this dir>`.",
        base=f"{spec.name} ({spec.path or 'packaged: ' + str(spec.packaged)}), reflection tokens added",
        data=data_files,
        command=command_line(),
        sections=sections,
    )
    if cfg.export_dir:
        export_artifact(result.final_dir, Path(cfg.export_dir))
    print(f"critic: {result.final_dir}")
    return result.final_dir


@hydra_app("train_critic")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

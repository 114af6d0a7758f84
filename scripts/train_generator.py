"""Generator training: fine-tune a base LM on Self-RAG data, with the reflection tokens added to its vocabulary.

    python scripts/train_generator.py [data.train=FILE] [finetune=lora|full] [model=...] \\
        [export_dir=artifacts/selfrag-smollm2-135m] output_dir=OUT
    python scripts/train_generator.py data=notokens export_dir=artifacts/sft-smollm2-135m-notokens output_dir=OUT
    accelerate launch --config_file conf/accelerate/fsdp.yaml scripts/train_generator.py finetune=full ...

Trains on released-format jsonl (`{instruction, input, output, ...}`; passages masked out of the loss). When a dev set
is split off (`data.dev_fraction`) or the reflection tokens are stripped (`data=notokens`), the rows actually used
are written to `OUT/data/` first and trained on from there, so the card's sha256 is that of what the model saw.
Writes `OUT/final/` (LoRA adapter or checkpoint) with its card `README.md` (base, data and sha256, command, data
statistics, training curve, eval loss) and `OUT/train_metrics.json`; `export_dir` copies `final/`. Resumable: a
re-run with the same output_dir continues from the last checkpoint, or returns at once when the run is finished.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from selfrag.artifacts import command_line, display_path, export_artifact, file_sha256, training_curve, write_card
from selfrag.cli import run_or_exit
from selfrag.io import InputError, write_text_atomic
from selfrag.models.loading import ModelSpec, resolve_checkpoint
from selfrag.overrides import hydra_app
from selfrag.training.config import TrainConfig
from selfrag.training.data_files import TrainingFiles, prepare_training_files
from selfrag.training.sft_data import SFTStats, load_sft_dataset, load_training_tokenizer, reflection_weight_tokens
from selfrag.training.trainer import train


def _time_line(stats: dict[str, Any]) -> str:
    """How long training took, on what: from the trainer's stats (a resumed run counts this process's steps)."""
    resumed = stats.get("resumed_from_step") or 0
    return (f"{stats['steps'] - resumed} steps in {stats['seconds'] / 60:.1f} min ({stats['precision']}, "
            f"{stats['processes']} process(es){f', resumed from step {resumed}' if resumed else ''}).")


def _stats_table(stats: dict[str, SFTStats | None]) -> str:
    """Markdown table of SFT data statistics, one row per split."""
    fields = list(SFTStats().to_dict())
    lines = ["| split | " + " | ".join(fields) + " |", "|---|" + "---:|" * len(fields)]
    for split, value in stats.items():
        if value is not None:
            lines.append(f"| {split} | " + " | ".join(f"{v:,}" for v in value.to_dict().values()) + " |")
    return "\n".join(lines)


def _data_section(files: TrainingFiles) -> str:
    """Where the trained-on files come from (for derived files: the sources, their hashes and what was done)."""
    if not files.derived:
        return "Trained on the files above as they are."
    lines = ["Trained on files this run derived from:", ""]
    lines += [f"- `{display_path(path)}` (sha256 `{file_sha256(path)}`)" for path in files.sources]
    lines += ["", *[f"- {note}" for note in files.notes]]
    return "\n".join(lines)


def _file_records(paths: list[Path]) -> list[dict[str, str]]:
    return [{"path": display_path(path), "sha256": file_sha256(path)} for path in paths]


def run(cfg: DictConfig) -> Path:
    from accelerate import PartialState

    started = time.perf_counter()
    # One state for every process of an `accelerate launch` run: files are written by the main process only.
    state = PartialState()
    output_dir = Path(cfg.output_dir)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    spec = ModelSpec(**OmegaConf.to_container(cfg.model, resolve=True))
    config = TrainConfig(**OmegaConf.to_container(cfg.finetune, resolve=True))
    reflection_weight_tokens(data["reflection_weight"])  # checked before the base is converted or loaded
    with state.main_process_first():  # the first call converts / adds tokens and caches; the others reuse it
        base = resolve_checkpoint(spec)
    try:
        dev_fraction = float(data["dev_fraction"] or 0)
    except (TypeError, ValueError):
        raise InputError(f"data.dev_fraction={data['dev_fraction']!r}: must be a number in [0, 1)") from None
    prepare = {"dev_fraction": dev_fraction, "strip_reflection": bool(data["strip_reflection"]),
               "out_dir": output_dir / "data"}
    if state.is_main_process:
        files = prepare_training_files(data["train"], data["dev"], **prepare)
    state.wait_for_everyone()
    if not state.is_main_process:  # the paths the main process has just written
        files = prepare_training_files(data["train"], data["dev"], write=False, **prepare)

    tokenizer = load_training_tokenizer(base)
    encode = {"max_length": config.max_length, "overflow": data["overflow"],
              "reflection_weight": data["reflection_weight"],
              "supervise_close": bool(data.get("supervise_paragraph_close", True)),
              "prompt_style": data.get("prompt_style") or "selfrag",
              "supervise_irrelevant_answers": bool(data.get("supervise_irrelevant_answers", True)),
              "cache_dir": output_dir / "data_cache"}
    with state.main_process_first():  # tokenised once, loaded from the cache by the other processes
        train_data, train_stats = load_sft_dataset(files.train, tokenizer, **encode)
        dev_data, dev_stats = load_sft_dataset(files.dev, tokenizer, **encode) if files.dev else (None, None)
    if dev_data is not None and len(dev_data) == 0:
        dev_data = None  # every dev row dropped (too long / nothing supervised): no eval loss rather than a crash
    result = train(base, train_data, config, output_dir=output_dir, eval_dataset=dev_data)
    if not state.is_main_process:
        return result.final_dir

    eval_loss = result.stats.get("eval_loss")
    metrics: dict[str, Any] = {
        "train_data": train_stats.to_dict(), "dev_data": dev_stats.to_dict() if dev_stats else None,
        "train": result.stats, "eval_loss": eval_loss,
        "files": {"train": _file_records(files.train), "dev": _file_records(files.dev),
                  "sources": _file_records(files.sources), "notes": files.notes},
        "seconds": time.perf_counter() - started,
    }
    text = json.dumps(metrics, indent=2) + "\n"
    write_text_atomic(output_dir / "train_metrics.json", text)
    write_text_atomic(result.final_dir / "train_metrics.json", text)
    stripped = bool(data["strip_reflection"])
    kind = "LoRA adapter (merged into the base on load)" if config.finetune == "lora" else "full checkpoint"
    write_card(
        result.final_dir,
        title=(f"SFT baseline without reflection tokens ({config.finetune}) on {spec.name}" if stripped
               else f"Self-RAG generator ({config.finetune}) on {spec.name}"),
        summary=(
            f"A {kind} trained by `scripts/train_generator.py` on Self-RAG training rows "
            + ("with every reflection token and passage removed: the same instructions and answers as the Self-RAG "
               "generator, plain text only, for a fair comparison. Evaluate it as a plain model."
               if stripped else
               "with reflection tokens and retrieved passages (passage contents masked out of the loss). Use it with "
               "`scripts/infer.py model=selfrag_smollm2_135m` (or `model.adapter=<this dir>`).")
        ),
        base=f"{spec.name} ({spec.path or 'packaged: ' + str(spec.packaged)}), reflection tokens added",
        data=files.train + files.dev,
        command=command_line(),
        sections={
            "Data": _data_section(files),
            "SFT data statistics": _stats_table({"train": train_stats, "dev": dev_stats}),
            "Training": f"{_time_line(result.stats)}\n\n{json.dumps(asdict(config))}\n\n"
                        f"{training_curve(result.history)}",
            "Eval loss": (f"{eval_loss:.4f} (mean token cross-entropy on the dev set, supervised positions)"
                          if eval_loss is not None else "no dev set"),
        },
    )
    if cfg.export_dir:
        export_artifact(result.final_dir, Path(cfg.export_dir))
    print(f"generator: {result.final_dir}" + (f" (eval loss {eval_loss:.4f})" if eval_loss is not None else ""))
    return result.final_dir


@hydra_app("train_generator")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

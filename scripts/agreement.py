"""Per-aspect agreement (fraction identical, Cohen's kappa, confusion) between two labelling runs on the same items.

    python scripts/agreement.py a=outputs/label/grounded/labels.jsonl b=outputs/label/judge/labels.jsonl output_dir=DIR

Items are joined by (aspect, id); items either side abstained on are left out. Writes `agreement.md` / `.json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig

from critic.agreement import agreement, format_agreement
from critic.labelling import read_labelled
from selfrag.cli import run_or_exit
from selfrag.io import write_text_atomic
from selfrag.overrides import hydra_app


def run(cfg: DictConfig) -> Path:
    _, labels_a = read_labelled(cfg.a)
    _, labels_b = read_labelled(cfg.b)
    report = agreement([lab for lab in labels_a if lab], [lab for lab in labels_b if lab])
    output_dir = Path(cfg.output_dir)
    table = format_agreement(report)
    write_text_atomic(output_dir / "agreement.md", f"# Agreement\n\na: {cfg.a}\n\nb: {cfg.b}\n\n{table}\n")
    write_text_atomic(output_dir / "agreement.json",
                      json.dumps({k: asdict(v) for k, v in report.items()}, indent=2) + "\n")
    print(table)
    return output_dir


@hydra_app("agreement")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

"""Statistics of generator data and its truth table against the gold answers of its seeds (critic/truth.py).

    python scripts/data_stats.py [data=artifacts/generator-data/train.jsonl] [sources=...] [out_dir=DIR]

Writes `stats.md` and `stats.json` beside the data file (or in `out_dir`) and prints the markdown: the count of every
reflection token, and, for short-answer segments, how often `[Fully supported]` cites a passage holding the answer and
how often a passage holding the answer is labelled supported, plus the IsRel/IsSup agreement with the teacher.
`scripts/annotate.py` writes the same files at the end of every run.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from critic.critic_data import in_dev_split
from critic.sources import read_source_list
from critic.truth import data_report
from selfrag.cli import run_or_exit
from selfrag.io import InputError, read_jsonl, write_text_atomic
from selfrag.overrides import hydra_app


def run(cfg: DictConfig) -> Path:
    rows = read_jsonl(cfg.data_file)
    seeds = {s.id: s for s in read_source_list(OmegaConf.to_container(cfg.sources, resolve=True))}
    try:
        stats, markdown = data_report(rows, seeds, held_out=lambda q: in_dev_split(q, cfg.critic_dev_fraction))
    except KeyError as err:
        raise InputError(f"{cfg.data_file}: row of seed {err.args[0]!r} is not among the configured sources; pass the "
                         "sources the data was annotated from (sources=... or seeds=...)") from None
    out_dir = Path(cfg.out_dir) if cfg.out_dir else Path(cfg.data_file).parent
    write_text_atomic(out_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    write_text_atomic(out_dir / "stats.md", markdown)
    print(markdown)
    return out_dir / "stats.md"


@hydra_app("data_stats")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

"""Split the in-domain evaluation files by question into train / dev / test, once, and write the committed files.

    python scripts/make_splits.py        # reads ../shared/data (conf/make_splits.yaml)

For each file, in `data/splits/<name>/`: `ids.json` (the id lists, the source file's sha256 and the rule's settings)
and `{train,dev,test}.jsonl` (the rows of each split, in source order). The rule is
`selfrag.splits.assign_splits`. Results are reported on `test` only; `dev` is for tuning; `train` feeds the critic
and the generator data (tests/unit/test_splits.py checks that no test question reaches a training or tuning file).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig

from selfrag.cli import run_or_exit
from selfrag.io import read_jsonl, write_jsonl_atomic, write_text_atomic
from selfrag.overrides import hydra_app
from selfrag.splits import SPLITS, assign_splits


def run(cfg: DictConfig) -> None:
    out_root = Path(cfg.out_root)
    for spec in cfg.files:
        rows = read_jsonl(spec.path)
        ids = assign_splits(rows, test=spec.test, dev=spec.dev, salt=cfg.salt)
        record = {
            "source": Path(spec.path).name,
            "source_sha256": hashlib.sha256(Path(spec.path).read_bytes()).hexdigest(),
            "rule": f"selfrag.splits.assign_splits(test={spec.test}, dev={spec.dev}, salt={cfg.salt!r})",
            **ids,
        }
        write_text_atomic(out_root / spec.name / "ids.json", json.dumps(record, indent=1) + "\n")
        for split in SPLITS:
            wanted = set(ids[split])
            write_jsonl_atomic(out_root / spec.name / f"{split}.jsonl",
                               [row for row in rows if str(row["id"]) in wanted])
        print(f"{spec.name}: " + ", ".join(f"{s} {len(ids[s])}" for s in SPLITS))


@hydra_app("make_splits")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

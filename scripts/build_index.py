"""Build a BM25, dense or hybrid index of a passage corpus.

    python scripts/build_index.py corpus.path=data/corpus/wiki_passages.tsv retriever=bm25 output_dir=indexes/bm25
"""

from __future__ import annotations

import time

from omegaconf import DictConfig, OmegaConf

from selfrag.cli import run_or_exit
from selfrag.io import InputError
from selfrag.overrides import hydra_app
from selfrag.retrieval.factory import RETRIEVERS, build_index
from selfrag.retrieval.store import read_meta
from selfrag.rundir import claim_output_dir
from selfrag.values import as_choice, as_str


def run(cfg: DictConfig) -> None:
    """Build `cfg.retriever.name` over `cfg.corpus.path` into `cfg.output_dir` and print its meta."""
    options = OmegaConf.to_container(cfg.retriever, resolve=True)
    kind = options.pop("name")
    if kind == "none":
        raise InputError("retriever=none builds nothing; choose retriever=bm25, dense or hybrid")
    as_choice(kind, "retriever", RETRIEVERS)
    output_dir = claim_output_dir(cfg.output_dir)  # released when the process ends
    started = time.perf_counter()
    index_dir = build_index(kind, as_str(cfg.corpus.path, "corpus.path"), output_dir, options)
    meta = read_meta(index_dir)
    print(f"{kind} index of {meta['passages']} passages built in {time.perf_counter() - started:.1f}s: {index_dir}")


@hydra_app("build_index")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

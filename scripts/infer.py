"""Self-RAG inference: compose the config, build the decoder, decode the input file, write predictions.jsonl.

    python scripts/infer.py data.path=FILE task=popqa backend=hf output_dir=DIR decoding.threshold=0.5 ...

Resumable: predictions are appended per batch; a re-run with the same settings and output_dir skips finished ids
(the run machinery is `selfrag.decoding.run`, shared with `scripts/evaluate.py`). Every setting and the whole input
are checked before the model loads; one process writes an output_dir at a time.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import critic.relevance  # noqa: F401  (registers retriever.rerank=critic)
from selfrag.cli import run_or_exit
from selfrag.decoding.run import (
    DecodeSettings,
    SelfRAGPredictor,
    answer_printer,
    decode_file,
    run_settings,
    summary,
)
from selfrag.overrides import hydra_app
from selfrag.values import as_int


def run(cfg: DictConfig) -> Path:
    """Decode `cfg.data.path` into `cfg.output_dir/predictions.jsonl`; return that path."""
    config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    settings = DecodeSettings.from_config(config)
    examples = as_int(config["summary_examples"], "summary_examples", minimum=0)
    live = as_int(config.get("show_answers", 0), "show_answers", minimum=0)
    queries = settings.read_queries()
    result = decode_file(queries, lambda: SelfRAGPredictor.open(settings), Path(cfg.output_dir),
                         settings=run_settings(config), batch_size=settings.batch_size,
                         on_batch=answer_printer(live) if live else None)
    print(summary(result.rows, result.seconds, result.decoded, examples))
    print(f"\npredictions: {result.path}")
    return result.path


@hydra_app("infer")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

"""Serve Self-RAG over HTTP: an OpenAI-compatible chat endpoint, re-ranking without the model, and the trace page.

    python scripts/serve.py [model=custom model.path=DIR] [backend=hf|vllm] [task=popqa] [server.port=8000] ...

Then `http://127.0.0.1:8000/` (the page), `POST /v1/chat/completions` (OpenAI's format; per-request weights and
passages under `selfrag`), `POST /v1/selfrag/rerank`, `GET /v1/models`, `GET /health` (docs/serving.md). Every
setting is checked before the model loads; a bad one stops with one `error:` line (exit status 2).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

import critic.relevance  # noqa: F401  (registers retriever.rerank=critic)
from selfrag.cli import run_or_exit
from selfrag.overrides import hydra_app
from selfrag.serving.app import ServeConfig, serve


def run(cfg: DictConfig) -> None:
    """Check every setting, load the model, serve until interrupted."""
    config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    serve(ServeConfig.from_config(config))


@hydra_app("serve")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

"""Self-RAG inference: compose the config, build the decoder, decode the input file, write predictions.jsonl.

    python scripts/infer.py data.path=FILE task=popqa backend=hf output_dir=DIR decoding.threshold=0.5 ...

Resumable: predictions are appended per batch; a re-run with the same settings and output_dir skips finished ids.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from selfrag.cli import run_or_exit
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.factory import build_selfrag
from selfrag.decoding.records import prediction_to_json
from selfrag.inputs import iter_queries
from selfrag.io import InputError, append_jsonl, read_done_ids, read_jsonl, write_text_atomic
from selfrag.models.loading import ModelSpec
from selfrag.retrieval.factory import open_retriever

log = logging.getLogger("infer")

#: Settings that change predictions: a resumed run must match them.
_RUN_KEYS = ("model", "backend.name", "prompt", "decoding", "task", "retriever", "data.path", "corpus.path")


def _run_settings(cfg: DictConfig) -> dict[str, Any]:
    return {key: OmegaConf.to_container(OmegaConf.select(cfg, key), resolve=True)
            if OmegaConf.is_config(OmegaConf.select(cfg, key)) else OmegaConf.select(cfg, key) for key in _RUN_KEYS}


def _check_resume(output_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix predictions of different settings in one output_dir."""
    saved = output_dir / "run_config.json"
    if saved.is_file() and (output_dir / "predictions.jsonl").is_file():
        previous = json.loads(saved.read_text())
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings[k])
            raise InputError(
                f"{output_dir} holds predictions made with other settings ({', '.join(changed)} differ); "
                f"use a new output_dir or delete {output_dir / 'predictions.jsonl'}"
            )
    write_text_atomic(saved, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def _summary(rows: list[dict[str, Any]], seconds: float, decoded: int, examples: int) -> str:
    """A readable account of a run: counts, rates, and a few answers (retrieved and not, when both occur)."""
    n = len(rows)
    retrieved = [r for r in rows if r["retrieved"]]
    p_values = [r["p_retrieve"] for r in rows if r["p_retrieve"] is not None]
    lines = [f"{n} predictions ({decoded} decoded now in {seconds:.1f}s"
             + (f", {decoded / seconds:.2f} questions/s)" if decoded and seconds > 0 else ")"),
             f"retrieval rate: {len(retrieved)}/{n} = {len(retrieved) / max(n, 1):.1%}"
             + (f"; mean p_retrieve {sum(p_values) / len(p_values):.3f}" if p_values else ""),
             f"empty answers: {sum(not r['answer'] for r in rows)}"]
    shown = retrieved[: (examples + 1) // 2]
    shown += [r for r in rows if r not in shown][: examples - len(shown)]
    for row in sorted(shown, key=rows.index):
        best = max(row["candidates"], key=lambda c: c["scores"]["final"]) if row["candidates"] else None
        lines.append("")
        lines.append(f"Q [{row['id']}]: {row['question']}")
        lines.append(f"A: {row['answer'] or '(empty)'}")
        p = row["p_retrieve"]
        source = f"passage '{best['passage_title']}'" if best and best["passage_id"] else "no passage"
        lines.append(f"   p_retrieve={p:.3f} retrieved={row['retrieved']} best candidate from {source}"
                     if p is not None else f"   retrieved={row['retrieved']}")
    return "\n".join(lines)


def run(cfg: DictConfig) -> Path:
    """Decode `cfg.data.path` into `cfg.output_dir/predictions.jsonl`; return that path."""
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        decoding = DecodingConfig(**OmegaConf.to_container(cfg.decoding, resolve=True))
    except (TypeError, ValueError) as err:
        raise InputError(str(err)) from None
    # Read and validate the whole input before any model loads: a bad line fails in a second.
    queries = list(iter_queries(cfg.data.path, cfg.task.name, limit=cfg.data.limit))
    if cfg.batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {cfg.batch_size}")
    predictions_path = output_dir / "predictions.jsonl"
    _check_resume(output_dir, _run_settings(cfg))
    done = read_done_ids(predictions_path)
    todo = [q for q in queries if q.id not in done]
    log.info("%d queries, %d already done, %d to decode", len(queries), len(queries) - len(todo), len(todo))
    started = time.perf_counter()
    if todo:
        backend = OmegaConf.to_container(cfg.backend, resolve=True)
        retriever = None
        if cfg.retriever.name != "none":
            options = OmegaConf.to_container(cfg.retriever, resolve=True)
            # Queries with static passages (`ctxs`) keep them; the live retriever serves the others, and only once
            # the model has decided to retrieve (per segment in long form).
            retriever = open_retriever(options.pop("name"), index_dir=options.pop("index_dir", None),
                                       corpus_path=cfg.corpus.path, options=options)
        decoder = build_selfrag(
            ModelSpec(**OmegaConf.to_container(cfg.model, resolve=True)),
            backend=backend.pop("name"),
            backend_options=backend,
            prompt_style=cfg.prompt.style,
            decoding=decoding,
            retriever=retriever,
        )
        try:
            with tqdm(total=len(todo), desc="decoding", unit="q") as bar:
                for start in range(0, len(todo), cfg.batch_size):
                    batch = todo[start : start + cfg.batch_size]
                    predictions = decoder.predict(batch)
                    append_jsonl(predictions_path, (prediction_to_json(p, decoding.weights) for p in predictions))
                    bar.update(len(batch))
        finally:
            decoder.backend.close()
    seconds = time.perf_counter() - started
    by_id = {row["id"]: row for row in read_jsonl(predictions_path)}
    rows = [by_id[q.id] for q in queries if q.id in by_id]
    print(_summary(rows, seconds, len(todo), cfg.summary_examples))
    print(f"\npredictions: {predictions_path}")
    return predictions_path


@hydra.main(version_base="1.3", config_path="../conf", config_name="infer")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (bad input: one `error:` line, exit status 2)."""
    run_or_exit(run, cfg)


if __name__ == "__main__":
    main()

"""Resumable decoding of an input file into `predictions.jsonl`: the run machinery `infer` and `evaluate` share.

A run directory holds
- `predictions.jsonl`: one object per query (DESIGN §5), appended after every batch, so a killed run loses at most
  the batch in flight and a re-run decodes only the missing ids;
- `run_config.json`: the settings that change predictions (`run_settings`); a re-run with other settings is refused
  rather than mixing two kinds of prediction in one file;
- `timing.json`: decoding seconds and questions decoded, summed over every run that added rows, so a resumed run
  still reports a true questions-per-second.

What turns a batch of queries into prediction rows is a `Predictor`: the Self-RAG decoder (`SelfRAGPredictor`) here,
the no-retrieval and standard-RAG baselines in `eval.baselines`. It is opened only when some query is left to
decode, so re-running a finished run never loads a model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.pipeline import SelfRAG
from selfrag.decoding.records import prediction_to_json
from selfrag.inputs import iter_queries
from selfrag.io import InputError, append_jsonl, read_done_ids, read_jsonl, write_text_atomic
from selfrag.models.loading import ModelSpec
from selfrag.retrieval.base import Retriever
from selfrag.types import Query

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
RUN_CONFIG = "run_config.json"
TIMING = "timing.json"

#: Config keys (dotted) whose values change predictions: a resumed run must match them.
RUN_KEYS = ("model", "backend.name", "prompt", "decoding", "task", "retriever", "data.path", "corpus.path")


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def run_settings(config: Mapping[str, Any], keys: Sequence[str] = RUN_KEYS) -> dict[str, Any]:
    """The values of `keys` (dotted paths, e.g. "backend.name") in a plain nested config mapping; absent keys are
    None. This is what `run_config.json` records and what a resumed run is checked against."""
    return {key: _lookup(config, key) for key in keys}


def check_resume(output_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix predictions of different settings in one output_dir; record the settings otherwise.

    Raises:
        InputError: `output_dir` holds predictions made with other settings (naming the keys that differ).
    """
    saved = output_dir / RUN_CONFIG
    if saved.is_file() and (output_dir / PREDICTIONS).is_file():
        previous = json.loads(saved.read_text())
        if previous != settings:
            changed = sorted(k for k in {*settings, *previous} if previous.get(k) != settings.get(k))
            raise InputError(
                f"{output_dir} holds predictions made with other settings ({', '.join(changed)} differ); "
                f"use a new output_dir or delete {output_dir / PREDICTIONS}"
            )
    write_text_atomic(saved, json.dumps(settings, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class DecodeSettings:
    """Everything needed to decode an input file, read from the plain (resolved) mapping of an `infer`-style config.

    Attributes:
        model: the checkpoint to load.
        backend, backend_options: backend name ("hf" | "vllm") and its constructor options.
        prompt_style: "auto" | "selfrag" | "chat".
        decoding: the decoding settings (validated).
        task: the task name (decides how input rows become prompts).
        data_path, data_limit: the input file and how many of its rows to use (None: all).
        retriever, retriever_index_dir, retriever_options: the live retriever ("none": static passages only).
        corpus_path: the corpus a live retriever indexes when it has no index_dir.
        batch_size: queries per predictor call (results are appended after each).
    """

    model: ModelSpec
    backend: str
    prompt_style: str
    decoding: DecodingConfig
    task: str
    data_path: str
    data_limit: int | None = None
    retriever: str = "none"
    retriever_index_dir: str | None = None
    retriever_options: dict[str, Any] = field(default_factory=dict)
    corpus_path: str | None = None
    batch_size: int = 16
    backend_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DecodeSettings:
        """Build from a config with the `conf/infer.yaml` keys (model, backend, prompt, decoding, task, retriever,
        data, corpus, batch_size), as a plain mapping (`OmegaConf.to_container(cfg, resolve=True)`).

        Raises:
            InputError: a bad decoding value, unknown model key, or batch_size < 1 (naming the key).
        """
        try:
            decoding = DecodingConfig(**config["decoding"])
        except (TypeError, ValueError) as err:
            raise InputError(str(err)) from None
        try:
            model = ModelSpec(**config["model"])
        except TypeError as err:
            raise InputError(f"model: {err}; see conf/model/custom.yaml for the keys a model takes") from None
        batch_size = config.get("batch_size", 16)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        backend = dict(config["backend"])
        retriever = dict(config.get("retriever") or {"name": "none"})
        data = config["data"]
        return cls(
            model=model,
            backend=backend.pop("name"),
            backend_options=backend,
            prompt_style=config["prompt"]["style"],
            decoding=decoding,
            task=config["task"]["name"],
            data_path=str(data["path"]),
            data_limit=data.get("limit"),
            retriever=retriever.pop("name"),
            retriever_index_dir=retriever.pop("index_dir", None),
            retriever_options=retriever,
            corpus_path=_lookup(config, "corpus.path"),
            batch_size=batch_size,
        )

    def read_queries(self) -> list[Query]:
        """The whole (limited) input, validated up front: a bad line fails in a second, before any model loads."""
        return list(iter_queries(self.data_path, self.task, limit=self.data_limit))

    def open_retriever(self) -> Retriever | None:
        """The live retriever, or None for `retriever=none` (queries then use their static passages only)."""
        if self.retriever == "none":
            return None
        from selfrag.retrieval.factory import open_retriever

        return open_retriever(self.retriever, index_dir=self.retriever_index_dir, corpus_path=self.corpus_path,
                              options=dict(self.retriever_options))


class Predictor(Protocol):
    """Turns a batch of queries into `predictions.jsonl` objects (one per query, same order); owns a model."""

    def predict(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """One prediction row per query, in input order."""
        ...

    def close(self) -> None:
        """Release the model."""
        ...


class SelfRAGPredictor:
    """The Self-RAG decoder as a `Predictor`: rows carry every candidate with its raw group probabilities."""

    def __init__(self, decoder: SelfRAG) -> None:
        self.decoder = decoder

    @classmethod
    def open(cls, settings: DecodeSettings) -> SelfRAGPredictor:
        """Load the model of `settings` (checking its reflection tokens first) and its live retriever."""
        from selfrag.decoding.factory import build_selfrag

        retriever = settings.open_retriever()
        return cls(build_selfrag(settings.model, backend=settings.backend,
                                 backend_options=dict(settings.backend_options), prompt_style=settings.prompt_style,
                                 decoding=settings.decoding, retriever=retriever))

    def predict(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        weights = self.decoder.config.weights
        return [prediction_to_json(p, weights) for p in self.decoder.predict(queries)]

    def close(self) -> None:
        self.decoder.backend.close()


@dataclass(frozen=True)
class DecodeResult:
    """What `decode_file` did.

    Attributes:
        path: the predictions file.
        rows: the prediction rows of the given queries that the file holds, in query order.
        decoded: queries decoded by this call (0 when everything was already done).
        seconds: decoding wall time of this call (model loading excluded).
        load_seconds: time this call spent opening the predictor (0 when nothing was decoded).
        total_decoded, total_seconds: the same summed over every run into this directory (from `timing.json`).
    """

    path: Path
    rows: list[dict[str, Any]]
    decoded: int
    seconds: float
    load_seconds: float
    total_decoded: int
    total_seconds: float


def read_timing(output_dir: Path) -> dict[str, float]:
    """The summed decoding time of a run directory: {"seconds", "decoded", "load_seconds"} (zeros when absent)."""
    path = output_dir / TIMING
    timing = {"seconds": 0.0, "decoded": 0, "load_seconds": 0.0}
    if path.is_file():
        timing.update(json.loads(path.read_text()))
    return timing


def decode_file(
    queries: Sequence[Query],
    open_predictor: Callable[[], Predictor],
    output_dir: Path,
    *,
    settings: dict[str, Any],
    batch_size: int,
    desc: str = "decoding",
) -> DecodeResult:
    """Decode the queries not yet in `output_dir/predictions.jsonl`, appending rows after every batch.

    Args:
        queries: the whole input (already read and validated).
        open_predictor: called once, only if some query is left to decode.
        output_dir: the run directory (created).
        settings: what `run_config.json` records (see `check_resume`).
        batch_size: queries per `predict` call.

    Raises:
        InputError: the directory holds predictions made with other settings, or batch_size < 1.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / PREDICTIONS
    check_resume(output_dir, settings)
    done = read_done_ids(path)
    todo = [q for q in queries if q.id not in done]
    log.info("%d queries, %d already done, %d to decode", len(queries), len(queries) - len(todo), len(todo))
    timing = read_timing(output_dir)
    seconds = load_seconds = 0.0
    if todo:
        started = time.perf_counter()
        predictor = open_predictor()
        load_seconds = time.perf_counter() - started
        timing["load_seconds"] = load_seconds
        try:
            with tqdm(total=len(todo), desc=desc, unit="q") as bar:
                for start in range(0, len(todo), batch_size):
                    batch = todo[start : start + batch_size]
                    began = time.perf_counter()
                    rows = predictor.predict(batch)
                    append_jsonl(path, rows)
                    elapsed = time.perf_counter() - began
                    seconds += elapsed
                    # Written after the rows: a crash in between under-counts time, never counts rows twice.
                    timing["seconds"] += elapsed
                    timing["decoded"] += len(batch)
                    write_text_atomic(output_dir / TIMING, json.dumps(timing, indent=2) + "\n")
                    bar.update(len(batch))
        finally:
            predictor.close()
    by_id = {row["id"]: row for row in read_jsonl(path)} if path.is_file() else {}
    return DecodeResult(
        path=path,
        rows=[by_id[q.id] for q in queries if q.id in by_id],
        decoded=len(todo),
        seconds=seconds,
        load_seconds=load_seconds,
        total_decoded=int(timing["decoded"]),
        total_seconds=float(timing["seconds"]),
    )


def summary(rows: Sequence[dict[str, Any]], seconds: float, decoded: int, examples: int) -> str:
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
    order = {id(r): i for i, r in enumerate(rows)}
    for row in sorted(shown, key=lambda r: order[id(r)]):
        best = max(row["candidates"], key=lambda c: c["scores"]["final"]) if row["candidates"] else None
        lines.append("")
        lines.append(f"Q [{row['id']}]: {row['question']}")
        lines.append(f"A: {row['answer'] or '(empty)'}")
        p = row["p_retrieve"]
        source = f"passage '{best['passage_title']}'" if best and best["passage_id"] else "no passage"
        lines.append(f"   p_retrieve={p:.3f} retrieved={row['retrieved']} best candidate from {source}"
                     if p is not None else f"   retrieved={row['retrieved']}")
    return "\n".join(lines)

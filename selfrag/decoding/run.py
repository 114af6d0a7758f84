"""Resumable decoding of an input file into `predictions.jsonl`: the run machinery `infer` and `evaluate` share.

A run directory holds
- `predictions.jsonl`: one object per query (docs/formats.md), appended after every batch, so a killed run loses at most
  the batch in flight and a re-run decodes only the missing ids (a torn last line is cut off; any other malformed
  line stops the run with its line number, `selfrag.io.read_done_ids`);
- `run_config.json`: the settings that change predictions (`run_settings`); a re-run with other settings is refused
  rather than mixing two kinds of prediction in one file (`selfrag.rundir.guard_settings`);
- `timing.json`: decoding seconds and questions decoded, summed over every run that added rows, so a resumed run
  still reports a true questions-per-second.

One process writes a run directory at a time (`selfrag.rundir.claim_output_dir`): a second run into it is refused.

Every setting is checked when `DecodeSettings` is built (`from_config`), and the input is read and checked by
`read_queries`, both before any model loads: a typo costs a second, not a model load.

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

from selfrag.decoding.budget import fit_budget
from selfrag.decoding.config import DecodingConfig, with_default_weights
from selfrag.decoding.context import ContextGuard, check_queries
from selfrag.decoding.factory import PROMPT_CHOICES, answer_reader, build_selfrag, check_backend
from selfrag.decoding.frontend_models import make_rewriter, open_front_end
from selfrag.decoding.pipeline import SelfRAG
from selfrag.decoding.records import prediction_to_json
from selfrag.decoding.wellformed import well_formed_summary
from selfrag.inputs import iter_queries
from selfrag.io import InputError, append_jsonl, read_done_ids, read_json, read_jsonl, write_text_atomic
from selfrag.models.loading import ModelSpec, model_files, model_spec
from selfrag.prompts import TASKS
from selfrag.retrieval.base import Retriever
from selfrag.retrieval.factory import RETRIEVERS, close_retriever, front_end_config, with_search_queries
from selfrag.rundir import RUN_CONFIG, claimed_output_dir, guard_settings
from selfrag.types import Query
from selfrag.values import as_choice, as_int, as_str

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
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
    None. This is what `run_config.json` records and what a resumed run is checked against.

    With `model` among the keys, `model_files` records the contents of the model's directories as well: an adapter
    replaced in place under the same path would otherwise resume a finished run with the old model's predictions.
    `model.judges_only` is left out (it changes no prediction). The `decoding` node is recorded with its reward
    weights resolved (a `null` weight as the library default), so the record says which weights were used and
    matches runs recorded when the configs spelled the numbers out.
    """
    settings = {key: _lookup(config, key) for key in keys}
    if isinstance(settings.get("model"), Mapping):
        # `model.judges_only` only refuses a run (`answer_reader`), it changes no prediction: left out, so runs
        # recorded before the key existed still resume.
        settings["model"] = {k: v for k, v in settings["model"].items() if k != "judges_only"}
        settings["model_files"] = model_files(settings["model"])
    if isinstance(settings.get("decoding"), Mapping):
        settings["decoding"] = with_default_weights(settings["decoding"])
    return settings


def check_resume(output_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix predictions of different settings in one output_dir; record the settings otherwise.

    Raises:
        InputError: `output_dir` holds predictions made with other settings (naming the keys that differ).
    """
    # `model_files` is newer than some recorded runs: a record without it is checked on the rest (and gains it).
    guard_settings(output_dir, settings, outputs=(PREDICTIONS,), record=RUN_CONFIG, added_keys=("model_files",))


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
        retriever_front: what wraps it (query-writing front-end, reranker) and the writer `decoding.corrective`
            rewrites with (`selfrag.retrieval.factory.FrontEndConfig`).
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
    retriever_front: Any = None  # selfrag.retrieval.factory.FrontEndConfig

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DecodeSettings:
        """Build from a config with the `conf/infer.yaml` keys (model, backend, prompt, decoding, task, retriever,
        data, corpus, batch_size), as a plain mapping (`OmegaConf.to_container(cfg, resolve=True)`).

        Every value is checked here, before any model loads: types (strict booleans and numbers), ranges, names
        (prompt style, task, backend and its options, model keys) and the model's paths.

        Raises:
            InputError: the first bad value, naming its key.
        """
        decoding = DecodingConfig.from_mapping(config["decoding"])
        model = model_spec(config["model"])
        batch_size = as_int(config.get("batch_size", 16), "batch_size", minimum=1)
        backend = dict(config["backend"])
        name = backend.pop("name", None)
        check_backend(name, backend)
        prompt_style = as_choice(config["prompt"]["style"], "prompt.style", PROMPT_CHOICES)
        task = as_choice(config["task"]["name"], "task", TASKS)
        retriever, front = front_end_config(dict(config.get("retriever") or {"name": "none"}))
        retriever_name = as_choice(retriever.pop("name", None), "retriever", ("none", *RETRIEVERS))
        data = config["data"]
        if decoding.budget_data is not None and not Path(decoding.budget_data).is_file():
            raise InputError(f"decoding.budget_data={decoding.budget_data}: no such file (a dev file of the task)")
        answer_reader(model, decoding)  # who writes the answers, refused now if nobody can
        if decoding.corrective and (retriever_name == "none" or decoding.long_form):
            raise InputError("decoding.corrective retries retrieval in short form: it needs a live retriever "
                             "(retriever=bm25|dense|hybrid) and decoding.long_form=false")
        return cls(
            model=model,
            backend=str(name),
            backend_options=backend,
            prompt_style=str(prompt_style),
            decoding=decoding,
            task=str(task),
            data_path=str(as_str(data.get("path"), "data.path")),
            data_limit=as_int(data.get("limit"), "data.limit", minimum=1, allow_none=True),
            retriever=str(retriever_name),
            retriever_index_dir=as_str(retriever.pop("index_dir", None), "retriever.index_dir", allow_none=True),
            retriever_options=retriever,
            retriever_front=front,
            corpus_path=_lookup(config, "corpus.path"),
            batch_size=int(batch_size),  # type: ignore[arg-type]
        )

    def read_queries(self) -> list[Query]:
        """The whole (limited) input, validated up front: a bad line fails in a second, before any model loads.

        Raises:
            InputError: a malformed file or row (see `iter_queries`), or no rows at all (a run over nothing would
                "succeed" with an empty result).
        """
        queries = list(iter_queries(self.data_path, self.task, limit=self.data_limit))
        if not queries:
            raise InputError(f"{self.data_path}: no input rows (the file is empty or blank); check data.path")
        return queries

    def open_retriever(self) -> Retriever | None:
        """The live retriever, or None for `retriever=none` (queries then use their static passages only)."""
        if self.retriever == "none":
            return None
        from selfrag.retrieval.factory import open_retriever

        retriever = open_retriever(self.retriever, index_dir=self.retriever_index_dir, corpus_path=self.corpus_path,
                                   options=dict(self.retriever_options))
        return open_front_end(retriever, self.retriever_front) if self.retriever_front is not None else retriever


class Predictor(Protocol):
    """Turns a batch of queries into `predictions.jsonl` objects (one per query, same order); owns a model."""

    def predict(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """One prediction row per query, in input order."""
        ...

    def close(self) -> None:
        """Release the model."""
        ...


def check_inputs(predictor: Predictor, queries: Sequence[Query]) -> None:
    """Run the predictor's optional `check(queries)` (refuse inputs it cannot take, e.g. longer than the model's
    context) before anything is decoded; a predictor without one is not checked."""
    check = getattr(predictor, "check", None)
    if callable(check):
        check(queries)


class SelfRAGPredictor:
    """The Self-RAG decoder as a `Predictor`: rows carry every candidate with its raw group probabilities."""

    def __init__(self, decoder: SelfRAG, budget: dict[str, Any] | None = None) -> None:
        self.decoder = decoder
        self.budget = budget  # the retrieval budget's fitted threshold, carried by every row (`retrieval_budget`)

    @classmethod
    def open(cls, settings: DecodeSettings) -> SelfRAGPredictor:
        """Load the model of `settings` (checking its reflection tokens first) and its live retriever."""
        retriever = settings.open_retriever()
        decoder = build_selfrag(settings.model, backend=settings.backend,
                                backend_options=dict(settings.backend_options), prompt_style=settings.prompt_style,
                                decoding=settings.decoding, retriever=retriever)
        if settings.decoding.corrective and settings.retriever_front is not None:
            decoder.rewriter = make_rewriter(settings.retriever_front)
        budget = None
        if settings.decoding.retrieval_budget is not None:
            budget = fit_budget(decoder, settings.task, batch_size=settings.batch_size)
            log.info("retrieval budget %.2f: threshold %.4f (rate %.3f on %d questions of %s)", budget["budget"],
                     budget["threshold"], budget["budget_retrieval_rate"], budget["budget_questions"],
                     budget["budget_data"])
        return cls(decoder, budget)

    def check(self, queries: Sequence[Query]) -> None:
        """Refuse a query whose first step does not fit the model's context (`selfrag.decoding.context`)."""
        backend = self.decoder.backend
        check_queries(self.decoder, queries, backend.limit if isinstance(backend, ContextGuard) else None)

    def predict(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        weights = self.decoder.config.weights
        rows = [prediction_to_json(p, weights) for p in self.decoder.predict(queries)]
        if self.budget is not None:
            for row in rows:
                row["retrieval_budget"] = self.budget
        return with_search_queries(rows, self.decoder.retriever)

    def close(self) -> None:
        self.decoder.close()
        close_retriever(self.decoder.retriever)


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
        saved = read_json(path)
        if not isinstance(saved, dict):
            raise InputError(f"{path}: expected a JSON object of timings; delete it (timing restarts from zero)")
        timing.update(saved)
    return timing


def decode_file(
    queries: Sequence[Query],
    open_predictor: Callable[[], Predictor],
    output_dir: Path,
    *,
    settings: dict[str, Any],
    batch_size: int,
    desc: str = "decoding",
    on_batch: Callable[[list[dict[str, Any]], Callable[[str], None]], None] | None = None,
) -> DecodeResult:
    """Decode the queries not yet in `output_dir/predictions.jsonl`, appending rows after every batch.

    The directory is claimed for this process while it works (a second writer is refused), the settings are checked
    against the ones its predictions were made with, and the predictor's `check` (if it has one) sees every query
    before the first is decoded.

    Args:
        queries: the whole input (already read and validated).
        open_predictor: called once, only if some query is left to decode.
        output_dir: the run directory (created).
        settings: what `run_config.json` records (see `check_resume`).
        batch_size: queries per `predict` call.
        on_batch: called with each batch's rows once they are saved, and a `write(line)` that prints above the
            progress bar (e.g. `answer_printer`, so a user sees answers while the run goes on).

    Raises:
        InputError: the directory is in use by another run or holds predictions made with other settings, a line of
            its predictions is malformed, a query does not fit the model, or batch_size < 1.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    with claimed_output_dir(output_dir):
        return _decode_claimed(queries, open_predictor, output_dir, settings=settings, batch_size=batch_size,
                               desc=desc, on_batch=on_batch)


def _decode_claimed(
    queries: Sequence[Query],
    open_predictor: Callable[[], Predictor],
    output_dir: Path,
    *,
    settings: dict[str, Any],
    batch_size: int,
    desc: str,
    on_batch: Callable[[list[dict[str, Any]], Callable[[str], None]], None] | None,
) -> DecodeResult:
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
            check_inputs(predictor, todo)
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
                    if on_batch is not None:
                        on_batch(rows, bar.write)
        finally:
            predictor.close()
    by_id = {str(row["id"]): row for row in read_jsonl(path)} if path.is_file() else {}
    return DecodeResult(
        path=path,
        rows=[by_id[q.id] for q in queries if q.id in by_id],
        decoded=len(todo),
        seconds=seconds,
        load_seconds=load_seconds,
        total_decoded=int(timing["decoded"]),
        total_seconds=float(timing["seconds"]),
    )


def answer_printer(limit: int) -> Callable[[list[dict[str, Any]], Callable[[str], None]], None]:
    """An `on_batch` for `decode_file` that prints the first `limit` answers of a run as their batches finish."""
    shown = 0

    def show(rows: list[dict[str, Any]], write: Callable[[str], None]) -> None:
        nonlocal shown
        for row in rows[: max(limit - shown, 0)]:
            source = "with retrieval" if row["retrieved"] else "no retrieval"
            write(f"Q: {row['question']}\n   A: {row['answer'] or '(empty)'}   ({source})")
            shown += 1

    return show


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
    if any(r.get("candidates") for r in rows):
        # an answer with reflection or passage markup (or a fragment it left) only wins when no candidate is clean
        form = well_formed_summary(rows)
        lines.append(f"ill-formed chosen answers: {round((1 - form['chosen']) * n)} of {n}"
                     + (f" (most common: {next(iter(form['problems']))})" if form["problems"] else ""))
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

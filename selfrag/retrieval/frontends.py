"""Retriever front-ends: the query a retriever sees is written by a language model first.

- `rewrite`: the model rewrites the question into one search query.
- `hyde`: the model writes a short hypothetical passage answering the question; that passage (after the question,
  with `include_question`) is the query (Gao et al., 2022), for dense and BM25 alike.
- `fusion`: the model writes `n_queries - 1` variants; the original question and each variant are retrieved
  (`candidates` passages each) and the lists fused by reciprocal rank fusion (k = `rrf_k`, per-query `weights`:
  the original's first), RAG-Fusion style.

`FrontEndRetriever` wraps any `Retriever` and is one itself, so `infer`, `evaluate`, `retrieve`, `eval_retrieval`
and the server use it unchanged. The text a model wrote is cached per (writer, prompt, question) in a SQLite file,
and the queries each question was searched with are kept (`queries_for`) so runs can write them out.

`TextWriter` is what writes: `selfrag.decoding.frontend_models.BackendTextWriter` runs a chat model through a
decoding backend (transformers or vLLM), batched; tests use a scripted one.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from selfrag.io import InputError
from selfrag.retrieval.base import Retriever
from selfrag.retrieval.fusion import reciprocal_rank_fusion
from selfrag.types import Passage
from selfrag.values import as_bool, as_choice, as_float_list, as_int

FRONTENDS = ("none", "rewrite", "hyde", "fusion")

#: The instruction each front-end gives the writer ({question}, and {n} for fusion). Part of the cache key.
PROMPTS = {
    "rewrite": "Rewrite the question below as a short web search query. Reply with the query only.\n\n"
               "Question: {question}",
    "hyde": "Write a short encyclopedia passage (two or three sentences) that answers the question below.\n\n"
            "Question: {question}",
    "fusion": "Write {n} different short web search queries that would find the answer to the question below, one "
              "per line, without numbering.\n\nQuestion: {question}",
}


class TextWriter(Protocol):
    """Writes one completion per prompt (greedy); `name` identifies the model in cache keys."""

    name: str

    def write(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """The completion of each prompt, in input order."""
        ...


class WrittenTextCache:
    """SQLite cache of written text keyed by (writer name, prompt template hash, question); thread-safe."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS written (key TEXT PRIMARY KEY, text TEXT NOT NULL)")

    @staticmethod
    def key(writer: str, template: str, question: str) -> str:
        return hashlib.sha256("\x1f".join((writer, template, question)).encode()).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM written WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put_many(self, items: Sequence[tuple[str, str]]) -> None:
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO written (key, text) VALUES (?, ?)", items)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM written").fetchone()[0])

    def close(self) -> None:
        self._db.close()


_LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|q\d+:)\s*", re.IGNORECASE)


def parse_variants(text: str, question: str, limit: int) -> list[str]:
    """Up to `limit` distinct query variants from a model's one-per-line answer: list marks and quotes stripped,
    blank lines and repeats (of each other or of the question, case-insensitively) dropped, in order."""
    seen = {question.strip().lower()}
    variants = []
    for line in text.splitlines():
        query = _LIST_MARK.sub("", line).strip().strip('"').strip()
        if query and query.lower() not in seen:
            seen.add(query.lower())
            variants.append(query)
        if len(variants) == limit:
            break
    return variants


@dataclass(frozen=True)
class FrontEndSettings:
    """How a front-end writes its queries (see the module docstring).

    Attributes:
        kind: one of FRONTENDS.
        n_queries: fusion: queries fused per question, the original included (>= 2).
        weights: fusion: RRF weight per query, the original's first (None: all 1.0); shorter lists are padded with
            the last weight (so [2.0, 1.0] weighs the question twice any variant).
        rrf_k: fusion: the RRF constant.
        candidates: fusion: passages retrieved per query before fusing (at least k).
        include_question: hyde: search with the question followed by the passage (False: the passage alone).
        max_new_tokens: the writer's budget (hyde needs more than rewrite).
    """

    kind: str = "none"
    n_queries: int = 4
    weights: tuple[float, ...] | None = None
    rrf_k: int = 60
    candidates: int = 20
    include_question: bool = True
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        # The one place these settings are checked (types and ranges), naming the config key of each.
        key = "retriever.frontend_options"
        as_choice(self.kind, "retriever.frontend", FRONTENDS)
        as_int(self.n_queries, f"{key}.n_queries", minimum=2)
        for name in ("rrf_k", "candidates", "max_new_tokens"):
            as_int(getattr(self, name), f"{key}.{name}", minimum=1)
        object.__setattr__(self, "include_question", as_bool(self.include_question, f"{key}.include_question"))
        if self.weights is not None:
            weights = tuple(as_float_list(self.weights, f"{key}.weights", minimum=0.0))
            if not any(w > 0 for w in weights):
                raise InputError(f"{key}.weights={list(weights)}: at least one weight must be > 0")
            object.__setattr__(self, "weights", weights)

    def query_weights(self, n: int) -> list[float]:
        """RRF weights for `n` fused queries (the original first)."""
        given = list(self.weights or [1.0])
        return [given[min(i, len(given) - 1)] for i in range(n)]


class FrontEndRetriever:
    """A `Retriever` that has a `TextWriter` write the query (or queries) for each question first.

    Args:
        retriever: the retriever searched with the written queries.
        writer: the language model that writes them.
        settings: which front-end and its options.
        cache: where written text is kept (None: not cached).
    """

    def __init__(self, retriever: Retriever, writer: TextWriter, settings: FrontEndSettings,
                 cache: WrittenTextCache | None = None) -> None:
        if settings.kind == "none":
            raise ValueError("FrontEndRetriever needs a front-end other than none")
        self.retriever = retriever
        self.writer = writer
        self.settings = settings
        self.cache = cache
        self._queries: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def _template(self) -> str:
        s = self.settings
        return PROMPTS[s.kind].replace("{n}", str(s.n_queries - 1))

    def written(self, questions: Sequence[str]) -> list[str]:
        """What the writer wrote for each question (from the cache where it has it; the rest in one batch)."""
        template = self._template()
        keys = [WrittenTextCache.key(self.writer.name, template, q) for q in questions]
        texts: list[str | None] = [self.cache.get(k) if self.cache is not None else None for k in keys]
        todo = [i for i, t in enumerate(texts) if t is None]
        unique = list(dict.fromkeys(questions[i] for i in todo))
        if unique:
            fresh = dict(zip(unique, self.writer.write([template.format(question=q) for q in unique],
                                                       self.settings.max_new_tokens)))
            for i in todo:
                texts[i] = fresh[questions[i]]
            if self.cache is not None:
                self.cache.put_many([(WrittenTextCache.key(self.writer.name, template, q), fresh[q]) for q in unique])
        return [t or "" for t in texts]

    def search_queries(self, questions: Sequence[str]) -> list[list[str]]:
        """The queries each question is searched with (fusion: the question first, then its variants)."""
        s = self.settings
        texts = self.written(questions)
        out = []
        for question, text in zip(questions, texts):
            text = text.strip()
            if s.kind == "rewrite":
                first = text.splitlines()[0].strip().strip('"') if text else ""
                out.append([first or question])
            elif s.kind == "hyde":
                out.append([f"{question} {text}".strip() if s.include_question else (text or question)])
            else:
                out.append([question] + parse_variants(text, question, s.n_queries - 1))
        return out

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        searched = self.search_queries(queries)
        with self._lock:
            self._queries.update(zip(queries, searched))
        if self.settings.kind != "fusion":
            return self.retriever.batch_search([q[0] for q in searched], k)
        flat = [q for group in searched for q in group]
        found = self.retriever.batch_search(flat, max(k, self.settings.candidates))
        results, start = [], 0
        for group in searched:
            lists = found[start : start + len(group)]
            start += len(group)
            results.append(reciprocal_rank_fusion(lists, k=self.settings.rrf_k,
                                                  weights=self.settings.query_weights(len(group)), limit=k))
        return results

    def queries_for(self, question: str) -> list[str] | None:
        """The queries `question` was last searched with (None: not searched through this front-end)."""
        with self._lock:
            return self._queries.get(question)

    def release_models(self) -> None:
        """Close the writer's model (the inner retriever stays open)."""
        close = getattr(self.writer, "close", None)
        if callable(close):
            close()

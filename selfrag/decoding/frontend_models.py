"""The models behind retrieval front-ends and reranking: a chat model that writes queries, the generator's IsRel as a
relevance score, and `open_front_end`, which builds what a retriever config's `frontend*`/`rerank*` keys ask for and
wraps the retriever (`selfrag.retrieval.factory.wrap_retriever`).

These sit in the decoding layer because they run models through the decoding backends (transformers or vLLM); the
retrieval layer below only sees the `TextWriter` / `RelevanceScorer` protocols. The critic's scorer lives in
`critic.relevance` (registered in `selfrag.retrieval.rerank.SCORER_BUILDERS` when imported, as the scripts do).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selfrag import tokens as T
from selfrag.decoding.backend import make_backend
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.critique import isrel_score
from selfrag.io import InputError
from selfrag.models.loading import ModelSpec, load_tokenizer, resolve_checkpoint
from selfrag.prompts import passage_block
from selfrag.retrieval.base import Retriever
from selfrag.retrieval.factory import FrontEndConfig, wrap_retriever, written_queries_cache
from selfrag.retrieval.frontends import FrontEndRetriever, FrontEndSettings
from selfrag.retrieval.rerank import SCORER_BUILDERS, CrossEncoderRelevance
from selfrag.types import Passage, ScoreRequest

#: The repository's shipped artifacts (the default critic and generator of `rerank=critic|generator`).
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


class BackendTextWriter:
    """A chat model behind a decoding backend: each prompt is one user turn of the model's chat template.

    The backend is opened on first use (a run whose queries are all cached loads no model).
    """

    def __init__(self, model_dir: str, backend: str = "hf", backend_options: dict[str, Any] | None = None, *,
                 name: str | None = None) -> None:
        self.model_dir = model_dir
        self.backend_name = backend
        self.backend_options = dict(backend_options or {})
        self.name = name or Path(model_dir).name
        self._backend: Any = None
        self._tokenizer: Any = None

    def _open(self) -> None:
        if self._backend is None:
            self._tokenizer = load_tokenizer(self.model_dir)
            self._backend = make_backend(self.backend_name, self.model_dir, **self.backend_options)

    def write(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        if not prompts:
            return []
        self._open()
        tok = self._tokenizer
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
                 for p in prompts]
        ids = [tuple(tok(text, add_special_tokens=False)["input_ids"]) for text in texts]
        stops = tuple(i for i in {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")} if isinstance(i, int))
        completions = self._backend.generate(ids, max_new_tokens=max_new_tokens, stop_token_ids=stops)
        return [tok.decode(c.token_ids, skip_special_tokens=True).strip() for c in completions]

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


class GeneratorRelevance:
    """A Self-RAG generator's IsRel after each passage (`selfrag.decoding.pipeline.SelfRAG`), scored in one batch."""

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder

    def relevance(self, pairs: Sequence[tuple[str, Passage]]) -> list[float]:
        decoder = self.decoder
        group = decoder.codec.group(T.ISREL_GROUP)
        add_special = decoder.prompt.style != "chat"
        requests = []
        for question, passage in pairs:
            ids = tuple(decoder.codec.encode_prompt(decoder.prompt(question), add_special_tokens=add_special))
            ids += tuple(decoder.codec.encode(passage_block(passage)))
            requests.append(ScoreRequest(ids, ((len(ids), group),)))
        answers = decoder.backend.score(requests) if requests else []
        return [isrel_score(dict(zip(T.ISREL_GROUP, map(math.exp, a[0])))) for a in answers]

    def close(self) -> None:
        self.decoder.backend.close()


def open_writer(config: FrontEndConfig) -> BackendTextWriter:
    """The configured writer: `frontend_options.model_path`, or the packaged SmolLM2-135M-Instruct base."""
    if config.writer_model is None:
        spec = ModelSpec(name="smollm2_135m_instruct", packaged="smollm2_135m_instruct", add_reflection_tokens=False)
    else:
        spec = ModelSpec(name=Path(config.writer_model).name, path=config.writer_model, add_reflection_tokens=False)
    return BackendTextWriter(str(resolve_checkpoint(spec)), config.writer_backend, name=spec.name)


def open_scorer(config: FrontEndConfig) -> Any:
    """The configured reranker's scorer (generator, cross_encoder, or a registered one such as the critic's)."""
    if config.rerank == "cross_encoder":
        return CrossEncoderRelevance(str(config.rerank_model))
    if config.rerank == "generator":
        from selfrag.decoding.factory import build_selfrag

        if config.rerank_model is None:  # the embedded generator, as conf/model/selfrag_smollm2_135m.yaml has it
            spec = ModelSpec(name="selfrag_smollm2_135m", packaged="smollm2_135m_instruct",
                             add_reflection_tokens=True, adapter=str(ARTIFACTS / "selfrag-smollm2-135m"),
                             prompt="chat")
        else:
            spec = ModelSpec(name=Path(config.rerank_model).name, path=config.rerank_model)
        decoder = build_selfrag(spec, backend=config.rerank_backend, backend_options={}, prompt_style="auto",
                                decoding=DecodingConfig())
        return GeneratorRelevance(decoder)
    builder = SCORER_BUILDERS.get(config.rerank)
    if builder is None:
        raise InputError(f"retriever.rerank={config.rerank}: its scorer is not registered; import critic.relevance "
                         "first (the scripts do)")
    return builder(config)


def open_front_end(retriever: Retriever, config: FrontEndConfig) -> Retriever:
    """`retriever` wrapped as `config` says, with its writer and scorer built (models load on first use)."""
    if not config.active:
        return retriever
    writer = open_writer(config) if config.frontend.kind != "none" else None
    scorer = open_scorer(config) if config.rerank != "none" else None
    return wrap_retriever(retriever, config, writer=writer, scorer=scorer)


def make_rewriter(config: FrontEndConfig) -> Callable[[Sequence[str]], list[str]]:
    """questions -> one rewritten search query each, by the configured writer and the `rewrite` prompt (cached like
    the front-end's own queries): what `decoding.corrective` retries with."""
    settings = FrontEndSettings(kind="rewrite", max_new_tokens=config.frontend.max_new_tokens)
    front = FrontEndRetriever(_NoSearch(), open_writer(config), settings, written_queries_cache(config))
    return lambda questions: [queries[0] for queries in front.search_queries(questions)]


class _NoSearch:
    """The retriever of a front-end used only to write queries."""

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        raise AssertionError("a rewriter does not search")

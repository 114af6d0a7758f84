"""The transformers backend: batched greedy `generate` on CPU or GPU, and exact scoring by forward passes.

Per-token log-probabilities, and those of the tracked reflection tokens, are recorded during generation by a logits
processor that reads the raw distribution at each step (one gather per step, never a vocabulary-sized Python
structure). `score` runs one forward pass per distinct
sequence and reads the requested rows of its log-softmax.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

from selfrag.io import InputError
from selfrag.types import Completion, ScoreRequest
from selfrag.values import as_choice, as_int, as_str, check_keys

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"backend.dtype must be auto, float32, bfloat16 or float16, got {dtype!r}") from None


def check_device(device: Any, key: str = "backend.device") -> None:
    """`auto`, `cpu`, `mps`, `cuda` or `cuda:N`, and present on this machine (checked without loading a model).

    Raises:
        InputError: another value, or a CUDA / MPS device this machine does not have.
    """
    if device in ("auto", "cpu"):
        return
    match = re.fullmatch(r"cuda(?::(\d+))?", device) if isinstance(device, str) else None
    if match is None and device != "mps":
        raise InputError(f"{key} must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
    import torch

    if device == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"{key}=mps: this machine has no MPS device; use {key}=cpu or auto")
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(match.group(1) or 0)  # type: ignore[union-attr]
    if index >= count:
        have = f"{count} CUDA device(s) (cuda:0..cuda:{count - 1})" if count else "no CUDA device"
        raise InputError(f"{key}={device}: this machine has {have}; use {key}=cpu, auto or an existing device")


def check_options(options: Mapping[str, Any]) -> None:
    """Check `backend.*` options for `HFBackend` before any model loads: known keys, types, dtype, device.

    Raises:
        InputError: naming the key.
    """
    known = [name for name in inspect.signature(HFBackend.__init__).parameters if name not in ("self", "model_dir")]
    check_keys(options, "backend", known)
    as_choice(options.get("dtype", "auto"), "backend.dtype", DTYPES)
    check_device(options.get("device", "auto"))
    as_int(options.get("batch_size", 16), "backend.batch_size", minimum=1)
    as_str(options.get("attn_implementation"), "backend.attn_implementation", allow_none=True)


class HFBackend:
    """Greedy decoding with a transformers causal LM.

    Args:
        model_dir: checkpoint directory (tokenizer files beside the weights).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ...
        dtype: "auto" (bf16 on a bf16-capable GPU, else fp32), "float32", "bfloat16" or "float16".
        batch_size: prompts per `generate` call and sequences per scoring forward pass.
        attn_implementation: passed to `from_pretrained` (e.g. "sdpa", "flash_attention_2").
    """

    def __init__(
        self,
        model_dir: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 16,
        attn_implementation: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if batch_size < 1:
            raise ValueError(f"backend.batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        kwargs: dict[str, Any] = {"dtype": _resolve_dtype(dtype, device)}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs).to(self.device).eval()
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        stop_token_ids: Sequence[int] = (),
        track_token_ids: Sequence[int] = (),
    ) -> list[Completion]:
        """See `Backend.generate`. Prompts are sorted by length and left-padded in batches."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[Completion | None] = [None] * len(prompts)
        stops = {self.eos_token_id, *stop_token_ids}
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            completions = self._generate_batch([prompts[i] for i in batch], max_new_tokens, stops, track_token_ids)
            for i, completion in zip(batch, completions):
                results[i] = completion
        return [r for r in results if r is not None]

    def _generate_batch(
        self, prompts: list[Sequence[int]], max_new_tokens: int, stops: set[int], track: Sequence[int]
    ) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            attention[row, width - len(prompt) :] = 1
        steps: list[torch.Tensor] = []
        tracked_steps: list[torch.Tensor] = []
        track_index = torch.tensor(list(track), dtype=torch.long, device=self.device)

        class RecordLogprobs(LogitsProcessor):
            # Greedy decoding with no other processors picks the argmax of the raw logits, so the chosen token's
            # log-probability is the row maximum of the log-softmax.
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
                logprobs = torch.log_softmax(scores.float(), dim=-1)
                steps.append(logprobs.max(dim=-1).values)
                tracked_steps.append(logprobs.index_select(1, track_index))
                return scores

        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=sorted(stops),
            pad_token_id=self.pad_token_id,
        )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                generation_config=config,
                logits_processor=LogitsProcessorList([RecordLogprobs()]),
            )
        generated = out[:, width:].tolist()
        logprobs = torch.stack(steps, dim=1).tolist() if steps else [[] for _ in prompts]
        tracked = torch.stack(tracked_steps, dim=1).tolist() if tracked_steps else [[] for _ in prompts]
        completions = []
        for ids, lps, rows in zip(generated, logprobs, tracked):
            n = len(ids)
            for j, tok in enumerate(ids):
                if tok in stops:
                    n = j + 1
                    break
            stopped = n < len(ids) or (n > 0 and ids[n - 1] in stops)
            completions.append(
                Completion(
                    token_ids=tuple(ids[:n]),
                    logprobs=tuple(lps[:n]),
                    stopped=stopped,
                    tracked=tuple(tuple(row) for row in rows[:n]) if len(track) else (),
                )
            )
        return completions

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[list[float]]]:
        """See `Backend.score`: one right-padded forward pass per batch of sequences.

        Only the hidden states at the requested positions go through the output layer, so a batch never
        materialises a (batch x length x vocabulary) logits tensor.
        """
        import torch

        results: list[list[list[float]]] = [[] for _ in requests]
        # Requests without queries need no forward pass.
        lengths_of = {i: max(p for p, _ in r.queries) for i, r in enumerate(requests) if r.queries}
        order = sorted(lengths_of, key=lengths_of.__getitem__)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            lengths = [lengths_of[i] for i in batch]
            if min(lengths) < 1:
                raise ValueError("score positions must be >= 1 (a position needs a non-empty prefix)")
            width = max(lengths)
            input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            rows, cols, token_ids = [], [], []
            for row, (i, length) in enumerate(zip(batch, lengths)):
                input_ids[row, :length] = torch.tensor(requests[i].sequence[:length], dtype=torch.long)
                attention[row, :length] = 1
                for position, ids in requests[i].queries:
                    rows.append(row)
                    cols.append(position - 1)
                    token_ids.append(list(ids))
            width_ids = max(len(ids) for ids in token_ids)
            padded = torch.tensor([ids + [ids[0]] * (width_ids - len(ids)) for ids in token_ids], device=self.device)
            with torch.inference_mode():
                hidden = self.model.base_model(
                    input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device)
                ).last_hidden_state
                logits = self._logits(hidden[torch.tensor(rows), torch.tensor(cols)])
                picked = torch.log_softmax(logits.float(), dim=-1).gather(1, padded).tolist()
            q = 0
            for i in batch:
                answer = []
                for _, ids in requests[i].queries:
                    answer.append(picked[q][: len(ids)])
                    q += 1
                results[i] = answer
        return results

    def _logits(self, hidden: Any) -> Any:
        """The output layer applied to selected final hidden states (with the model's logit soft-capping, if any)."""
        import torch

        logits = self.model.get_output_embeddings()(hidden)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def close(self) -> None:
        """Drop the model so its memory can be reclaimed."""
        del self.model

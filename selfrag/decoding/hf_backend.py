"""The transformers backend: batched greedy `generate` on CPU or GPU, and exact scoring by forward passes.

Per-token log-probabilities are recorded during generation by a logits processor that reads the raw distribution at
each step (one gather per step, never a vocabulary-sized Python structure). `score` runs one forward pass per distinct
sequence and reads the requested rows of its log-softmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selfrag.types import Completion, ScoreRequest


def _resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"backend.dtype must be auto, float32, bfloat16 or float16, got {dtype!r}") from None


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
        self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, stop_token_ids: Sequence[int] = ()
    ) -> list[Completion]:
        """See `Backend.generate`. Prompts are sorted by length and left-padded in batches."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[Completion | None] = [None] * len(prompts)
        stops = {self.eos_token_id, *stop_token_ids}
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            for i, completion in zip(batch, self._generate_batch([prompts[i] for i in batch], max_new_tokens, stops)):
                results[i] = completion
        return [r for r in results if r is not None]

    def _generate_batch(self, prompts: list[Sequence[int]], max_new_tokens: int, stops: set[int]) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            attention[row, width - len(prompt) :] = 1
        steps: list[torch.Tensor] = []

        class RecordLogprobs(LogitsProcessor):
            # Greedy decoding with no other processors picks the argmax of the raw logits, so the chosen token's
            # log-probability is the row maximum of the log-softmax.
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
                steps.append(torch.log_softmax(scores.float(), dim=-1).max(dim=-1).values)
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
        completions = []
        for ids, lps in zip(generated, logprobs):
            n = len(ids)
            for j, tok in enumerate(ids):
                if tok in stops:
                    n = j + 1
                    break
            stopped = n < len(ids) or (n > 0 and ids[n - 1] in stops)
            completions.append(Completion(token_ids=tuple(ids[:n]), logprobs=tuple(lps[:n]), stopped=stopped))
        return completions

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[list[float]]]:
        """See `Backend.score`: one right-padded forward pass per batch of sequences."""
        import torch

        results: list[list[list[float]]] = [[] for _ in requests]
        # Requests without queries need no forward pass.
        order = sorted((i for i, r in enumerate(requests) if r.queries), key=lambda i: max(p for p, _ in requests[i].queries))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            lengths = [max(p for p, _ in requests[i].queries) for i in batch]
            if min(lengths) < 1:
                raise ValueError("score positions must be >= 1 (a position needs a non-empty prefix)")
            width = max(lengths)
            input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (i, length) in enumerate(zip(batch, lengths)):
                input_ids[row, :length] = torch.tensor(requests[i].sequence[:length], dtype=torch.long)
                attention[row, :length] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device)).logits
            for row, i in enumerate(batch):
                answer = []
                for position, token_ids in requests[i].queries:
                    logprobs = torch.log_softmax(logits[row, position - 1].float(), dim=-1)
                    answer.append(logprobs[list(token_ids)].tolist())
                results[i] = answer
        return results

    def close(self) -> None:
        """Drop the model so its memory can be reclaimed."""
        del self.model

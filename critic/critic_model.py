"""Critic inference: a trained critic labels items, its answer constrained to the item's aspect labels.

The label is not free-generated and then parsed: every label of the aspect is scored under the model and the most
probable one wins, so the critic can never answer with another aspect's label or with free text. Each label's
probability is read exactly through the backend's `score` verb (transformers or vLLM), in one batched call:

- when every label is a single token (a critic trained by `scripts/train_critic.py`, whose vocabulary has the 15
  reflection tokens), one query at the end of the prompt reads all labels at once;
- otherwise (e.g. the released Self-RAG critic, which writes labels as plain strings) each label's token sequence is
  appended to the prompt and its log-probability summed over its tokens.

`confidence` is the winning label's probability renormalised over the aspect's labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from critic.aspects import ASPECT_LABELS, Label, LabelItem
from critic.prompts import critic_prompt
from selfrag.decoding.backend import Backend, make_backend
from selfrag.models.loading import ModelSpec, load_tokenizer, resolve_checkpoint
from selfrag.types import ScoreRequest


class CriticLabeler:
    """A `Labeler` over a critic model served by a backend.

    Args:
        backend: a `selfrag.decoding.backend.Backend` over the critic checkpoint.
        tokenizer: the critic's tokenizer (turns prompts and labels into ids).
        batch_size: items per backend call (progress is reported per call).
        name: the labeler name written into labels.
    """

    def __init__(self, backend: Backend, tokenizer: Any, *, batch_size: int = 64, name: str = "critic") -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.name = name
        self._label_ids = {
            aspect: [tuple(tokenizer(lab, add_special_tokens=False)["input_ids"]) for lab in labels]
            for aspect, labels in ASPECT_LABELS.items()
        }

    def label(self, items: Sequence[LabelItem], *, progress: bool = False) -> list[Label | None]:
        decided = self.label_prompts([(item.aspect, critic_prompt(item)) for item in items], progress=progress)
        return [
            Label(item.aspect, item.id, label, self.name, confidence=confidence)
            for item, (label, confidence) in zip(items, decided)
        ]

    def label_prompts(self, prompts: Sequence[tuple[str, str]], *, progress: bool = False) -> list[tuple[str, float]]:
        """(label, confidence) for each (aspect, full prompt text) pair; the batch-level verb behind `label`."""
        out: list[tuple[str, float]] = []
        starts = range(0, len(prompts), self.batch_size)
        for start in tqdm(starts, desc="critic", unit="batch", disable=not progress):
            out.extend(self._label_batch(prompts[start : start + self.batch_size]))
        return out

    def label_distributions(self, prompts: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        """Each label's probability, renormalised over the aspect's labels, for each (aspect, prompt) pair."""
        out: list[dict[str, float]] = []
        for start in range(0, len(prompts), self.batch_size):
            out.extend(self._distributions(prompts[start : start + self.batch_size]))
        return out

    def _label_batch(self, prompts: Sequence[tuple[str, str]]) -> list[tuple[str, float]]:
        decided = []
        for dist in self._distributions(prompts):
            best = max(dist, key=dist.__getitem__)  # max keeps the first of equal values: the aspect's label order
            decided.append((best, dist[best]))
        return decided

    def _distributions(self, prompts: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        requests: list[ScoreRequest] = []
        plan: list[tuple[int, int]] = []  # per prompt: (first request index, number of requests)
        for aspect, text in prompts:
            prompt = tuple(self.tokenizer(text)["input_ids"])
            label_ids = self._label_ids[aspect]
            first = len(requests)
            if all(len(ids) == 1 for ids in label_ids):
                requests.append(ScoreRequest(prompt, ((len(prompt), tuple(ids[0] for ids in label_ids)),)))
            else:
                for ids in label_ids:
                    sequence = prompt + ids
                    queries = tuple((len(prompt) + j, (tok,)) for j, tok in enumerate(ids))
                    requests.append(ScoreRequest(sequence, queries))
            plan.append((first, len(requests) - first))
        answers = self.backend.score(requests)
        distributions = []
        for (aspect, _), (first, count) in zip(prompts, plan):
            if count == 1:
                logps = answers[first][0]
            else:
                logps = [sum(lp[0] for lp in answers[first + k]) for k in range(count)]
            peak = max(logps)
            weights = [math.exp(lp - peak) for lp in logps]
            total = sum(weights)
            distributions.append({label: w / total for label, w in zip(ASPECT_LABELS[aspect], weights)})
        return distributions


def open_critic(spec: ModelSpec, backend: str = "hf", backend_options: dict[str, Any] | None = None, *,
                batch_size: int = 64) -> CriticLabeler:
    """A CriticLabeler over the checkpoint `spec` resolves to (an adapter is merged into its base once, cached)."""
    checkpoint = resolve_checkpoint(spec)
    return CriticLabeler(make_backend(backend, checkpoint, **(backend_options or {})), load_tokenizer(checkpoint),
                         batch_size=batch_size, name=f"critic:{spec.name}")

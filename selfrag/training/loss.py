"""The loss: cross-entropy at the supervised positions only, without materialising the full logits tensor.

The decoder's hidden states at positions whose next label is not -100 are gathered and only those go through the LM
head, so the [batch, seq, vocab] logits tensor (the main cost for a large vocabulary when prompts and passages are
masked) is never built.
"""

from __future__ import annotations

from typing import Any

import torch

from selfrag.training.sft_data import IGNORE_INDEX


def supervised_loss(
    causal_lm: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    loss_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy of `causal_lm` at the supervised positions only.

    Labels are unshifted (`labels[:, t]` is the target of the prediction made at position t-1), -100 where ignored.
    Runs the decoder, gathers the hidden states at positions whose next label is supervised, and applies the LM head
    to those rows only. `causal_lm` is a transformers `*ForCausalLM` (for a peft model, its `get_base_model()`).

    Returns:
        (Σ w·CE, Σ w, Σ CE, number of supervised positions), w = `loss_weights` (1 where not given).
        `Σ w·CE / Σ w` equals `causal_lm(input_ids, attention_mask=..., labels=labels).loss` when no weights are given.
    """
    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][keep]).float()
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if softcap:  # models whose forward caps logits (e.g. Gemma 2) must be scored the same way here
        logits = torch.tanh(logits / softcap) * softcap
    ce = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="none")
    weights = loss_weights[:, 1:][keep].to(ce.dtype) if loss_weights is not None else torch.ones_like(ce)
    return (ce * weights).sum(), weights.sum(), ce.detach().sum(), keep.sum()


class SupervisedLossModule(torch.nn.Module):
    """Wraps the trained model so `accelerate.prepare` (DDP/FSDP/autocast) sees one forward that returns the loss."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels, loss_weights=None):
        causal_lm = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return supervised_loss(causal_lm, input_ids, attention_mask, labels, loss_weights)

"""Decoding settings: one validated dataclass, built from `conf/decoding/*.yaml` or keyword arguments."""

from __future__ import annotations

from dataclasses import dataclass

from selfrag.decoding.critique import RETRIEVAL_MODES, RewardWeights


@dataclass(frozen=True)
class DecodingConfig:
    """How the Self-RAG decoder behaves. Defaults are the paper's.

    Attributes:
        mode: "adaptive" (retrieve iff p_ret > threshold), "always" or "never".
        threshold: the adaptive-retrieval threshold on p_ret, in [0, 1].
        ndocs: passages per retrieval (one candidate continuation each).
        max_new_tokens: generation limit per candidate (per segment in long form).
        w_rel, w_sup, w_use, use_seqscore: the reward weights (see `RewardWeights`).
        long_form: segment-level beam search instead of one-step short form.
        beam_width, max_depth: long-form beam width and maximum number of segments.
        score_all_paths: short form only; decode both the no-retrieval answer and the passage candidates for every
            question, so saved predictions can later be re-thresholded without the model (costs the `always` run).
    """

    mode: str = "adaptive"
    threshold: float = 0.2
    ndocs: int = 5
    max_new_tokens: int = 100
    w_rel: float = 1.0
    w_sup: float = 1.0
    w_use: float = 0.5
    use_seqscore: bool = True
    long_form: bool = False
    beam_width: int = 2
    max_depth: int = 7
    score_all_paths: bool = False

    def __post_init__(self) -> None:
        if self.mode not in RETRIEVAL_MODES:
            raise ValueError(f"decoding.mode must be one of {', '.join(RETRIEVAL_MODES)}, got {self.mode!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"decoding.threshold is a probability and must be in [0, 1], got {self.threshold!r}")
        for name in ("ndocs", "max_new_tokens", "beam_width", "max_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"decoding.{name} must be an integer >= 1, got {value!r}")
        RewardWeights(self.w_rel, self.w_sup, self.w_use, self.use_seqscore)  # raises on a bad weight

    @property
    def weights(self) -> RewardWeights:
        """The reward weights as their own value (validated)."""
        return RewardWeights(w_rel=self.w_rel, w_sup=self.w_sup, w_use=self.w_use, use_seqscore=self.use_seqscore)

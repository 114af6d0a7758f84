"""Decoding settings: one validated dataclass, built from `conf/decoding/*.yaml` or keyword arguments.

The checks of the retrieval mode, the threshold and the reward weights live here once (`parse_mode`,
`parse_threshold`, `parse_weights`) and are what `DecodingConfig` runs, so `infer`, `evaluate`, `rerank` and `sweep`
accept and refuse exactly the same values.

The reward weights' defaults live in one place, `RewardWeights`' field defaults: `DecodingConfig` takes its own from
there (`DEFAULT_WEIGHTS`), and a weight given as None (`null` in a config, which is how `conf/decoding/default.yaml`
and `conf/rerank.yaml` write them) means that default. Runs record the resolved numbers (`metrics.json`,
`run_config.json`), never the `null`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from selfrag.decoding.critique import RETRIEVAL_MODES, RewardWeights
from selfrag.io import InputError
from selfrag.values import as_bool, as_choice, as_float, as_int, check_keys


def parse_mode(value: Any, key: str = "decoding.mode", *, allow_none: bool = False) -> str | None:
    """A retrieval mode: adaptive, always or never (None only with `allow_none`: "keep the saved decisions")."""
    return as_choice(value, key, RETRIEVAL_MODES, allow_none=allow_none)


def parse_threshold(value: Any, key: str = "decoding.threshold", *, allow_none: bool = False) -> float | None:
    """The adaptive-retrieval threshold: a probability in [0, 1] (p_ret is compared with it as a probability)."""
    if value is not None or not allow_none:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0
        if not ok:
            raise InputError(f"{key} is a probability and must be in [0, 1], got {value!r}")
        return float(value)
    return None


#: The library's default reward weights (`RewardWeights`' own field defaults).
DEFAULT_WEIGHTS = RewardWeights()
#: Who writes the candidates' answers (`decoding.reader`): the generator itself, or the base model it was trained from.
READERS = ("generator", "base")
#: The settings that make up the reward weights, as named in configs (`decoding.w_rel`, ...).
WEIGHT_KEYS = ("w_rel", "w_sup", "w_use", "use_seqscore")


def parse_weights(
    w_rel: Any = None, w_sup: Any = None, w_use: Any = None, use_seqscore: Any = None, *, prefix: str = "decoding"
) -> RewardWeights:
    """The reward weights: each a finite number >= 0, `use_seqscore` a strict boolean; None means the default.

    Raises:
        InputError: naming the key (`{prefix}.w_sup`, ...).
    """
    values = {}
    for name, value in (("w_rel", w_rel), ("w_sup", w_sup), ("w_use", w_use)):
        key = f"{prefix}.{name}"
        if value is None:
            values[name] = getattr(DEFAULT_WEIGHTS, name)
            continue
        try:
            values[name] = as_float(value, key, minimum=0.0)
        except InputError:
            raise InputError(f"{key} must be a number >= 0, got {value!r}: a negative weight would reward the "
                             "opposite of the critique; set it to 0 to ignore that aspect") from None
    seqscore = DEFAULT_WEIGHTS.use_seqscore if use_seqscore is None else as_bool(use_seqscore, f"{prefix}.use_seqscore")
    return RewardWeights(**values, use_seqscore=bool(seqscore))


def with_default_weights(values: Mapping[str, Any]) -> dict[str, Any]:
    """A `decoding` mapping with every reward weight that is None (a config's `null`) replaced by its default, the
    other keys untouched: what a run records, so a run made before the weights were `null` still matches."""
    return {k: getattr(DEFAULT_WEIGHTS, k) if k in WEIGHT_KEYS and v is None else v for k, v in values.items()}


@dataclass(frozen=True)
class DecodingConfig:
    """How the Self-RAG decoder behaves. Defaults are the paper's (the weights': `RewardWeights`').

    Attributes:
        mode: "adaptive" (retrieve iff p_ret > threshold), "always" or "never".
        threshold: the adaptive-retrieval threshold on p_ret, in [0, 1].
        ndocs: passages per retrieval (one candidate continuation each).
        max_new_tokens: generation limit per candidate (per segment in long form).
        w_rel, w_sup, w_use, use_seqscore: the reward weights (see `RewardWeights`); None means the default and is
            replaced by it on construction.
        long_form: segment-level beam search instead of one-step short form.
        beam_width, max_depth: long-form beam width and maximum number of segments.
        score_all_paths: short form only; decode both the no-retrieval answer and the passage candidates for every
            question, so saved predictions can later be re-thresholded without the model (costs the `always` run).
        corrective: short form only; when every passage candidate's IsRel is below `corrective_threshold`, rewrite
            the question once (the retriever front-end's writer), retrieve again and decode the new passages too
            (CRAG's corrective step, bounded to one retry; recorded as the prediction's `corrective`).
        corrective_threshold: the IsRel probability (renormalised p([Relevant])) a candidate must reach to count.
        retrieval_budget: at most this share of questions retrieves: the threshold is set, before decoding, to the
            p_ret quantile of the questions in `budget_data` (`selfrag.decoding.budget`); None: `threshold` as given.
        budget_data: the file (same task) whose questions set the budget's threshold: a dev split, never the test.
        reader: who writes each candidate's answer. "generator": the generator, reflection tokens and all (the
            paper's decoding). "base": the base model the generator's adapter was trained from answers from each
            passage alone in its own prompt format (`method=standard_rag`'s prompt with one passage), and the
            generator critiques that answer by teacher forcing (`SelfRAG.critique`); so a generator whose tuning cost
            reading can still choose among the base's answers. Short form only; the model needs `model.adapter`.

    Raises (on construction):
        InputError (a ValueError): a value of the wrong type or out of range, naming its key (`decoding.threshold`).
    """

    mode: str = "adaptive"
    threshold: float = 0.2
    ndocs: int = 5
    max_new_tokens: int = 100
    w_rel: float = DEFAULT_WEIGHTS.w_rel
    w_sup: float = DEFAULT_WEIGHTS.w_sup
    w_use: float = DEFAULT_WEIGHTS.w_use
    use_seqscore: bool = DEFAULT_WEIGHTS.use_seqscore
    long_form: bool = False
    beam_width: int = 2
    max_depth: int = 7
    score_all_paths: bool = False
    corrective: bool = False
    corrective_threshold: float = 0.5
    retrieval_budget: float | None = None
    budget_data: str | None = None
    reader: str = "generator"

    def __post_init__(self) -> None:
        parse_mode(self.mode)
        as_choice(self.reader, "decoding.reader", READERS)
        parse_threshold(self.threshold)
        for name in ("ndocs", "max_new_tokens", "beam_width", "max_depth"):
            as_int(getattr(self, name), f"decoding.{name}", minimum=1)
        for name in ("long_form", "score_all_paths", "corrective"):
            as_bool(getattr(self, name), f"decoding.{name}")
        parse_threshold(self.corrective_threshold, "decoding.corrective_threshold")
        if self.retrieval_budget is not None:
            as_float(self.retrieval_budget, "decoding.retrieval_budget", minimum=0.0, maximum=1.0)
            if self.budget_data is None:
                raise InputError("decoding.retrieval_budget needs decoding.budget_data=FILE: the dev questions whose "
                                 "p_ret set the threshold (never the file being evaluated)")
            if self.mode != "adaptive":
                raise InputError(f"decoding.retrieval_budget sets the adaptive threshold; decoding.mode={self.mode} "
                                 "ignores it (use decoding.mode=adaptive)")
        weights = parse_weights(self.w_rel, self.w_sup, self.w_use, self.use_seqscore)
        for name in WEIGHT_KEYS:
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(weights, name))
        # Strings "true"/"false" pass the strict check; store real booleans so `if config.long_form` means it.
        for name in ("use_seqscore", "long_form", "score_all_paths", "corrective"):
            object.__setattr__(self, name, as_bool(getattr(self, name), f"decoding.{name}"))
        if self.reader == "base" and self.long_form:
            raise InputError("decoding.reader=base answers each passage in one step (short form); set "
                             "decoding.long_form=false or decoding.reader=generator")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DecodingConfig:
        """Build from the `decoding` node of a config; a key the dataclass does not have is refused by name.

        Raises:
            InputError: an unknown key or a bad value (naming `decoding.<key>`).
        """
        check_keys(values, "decoding", [f.name for f in fields(cls)])
        return cls(**values)

    @property
    def weights(self) -> RewardWeights:
        """The reward weights as their own value (validated)."""
        return RewardWeights(w_rel=self.w_rel, w_sup=self.w_sup, w_use=self.w_use, use_seqscore=self.use_seqscore)

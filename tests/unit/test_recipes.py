"""`recipe=judge` (conf/recipe/) and `model.judges_only`: the answer judge decoded as the README's results were, in
one setting, and never asked to write answers it was not trained to write."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.critique import RewardWeights
from selfrag.decoding.factory import answer_reader
from selfrag.decoding.run import RUN_KEYS, run_settings
from selfrag.io import InputError
from selfrag.models.loading import ModelSpec, model_spec
from tests.helpers import compose_config

CONF = Path(__file__).resolve().parents[2] / "conf"
#: How scripts/reproduce_results.sh decoded the answer judge before the recipe existed (its committed test runs).
SPELLED_OUT = ("model=selfrag_smollm2_135m_judge", "decoding.reader=base", "decoding.ndocs=5", "decoding.w_rel=1",
               "decoding.w_sup=1", "decoding.w_use=0", "decoding.use_seqscore=false")


@pytest.mark.parametrize("script", ["infer", "evaluate", "serve"])
def test_the_judge_recipe_sets_the_model_and_wins_over_the_task(script):
    plain = compose_config(script, "task=popqa")
    assert plain["decoding"]["ndocs"] == 2 and plain["decoding"]["reader"] == "generator"  # PopQA's own default
    cfg = compose_config(script, "task=popqa", "recipe=judge")
    assert cfg["model"]["name"] == "selfrag_smollm2_135m_judge" and cfg["model"]["judges_only"] is True
    decoding = DecodingConfig.from_mapping(cfg["decoding"])
    assert (decoding.reader, decoding.ndocs) == ("base", 5)
    assert decoding.weights == RewardWeights(w_rel=1.0, w_sup=1.0, w_use=0.0, use_seqscore=False)
    assert cfg["decoding"]["max_new_tokens"] == plain["decoding"]["max_new_tokens"]  # what it does not name: the task's


def test_the_command_line_wins_over_the_recipe():
    cfg = compose_config("evaluate", "recipe=judge", "decoding.ndocs=7", "task=arc_challenge", "decoding.w_use=0.5")
    assert (cfg["decoding"]["ndocs"], cfg["decoding"]["w_use"], cfg["decoding"]["max_new_tokens"]) == (7, 0.5, 50)
    assert compose_config("evaluate", "recipe=judge", "model=selfrag_smollm2_135m_isrel")["model"]["name"] == (
        "selfrag_smollm2_135m_isrel")


def test_the_recipe_records_what_the_spelled_out_flags_recorded():
    """So the runs made with the flags (docs/results/popqa/judge/) resume under `recipe=judge`."""
    flags = run_settings(compose_config("evaluate", *SPELLED_OUT), (*RUN_KEYS, "method"))
    recipe = run_settings(compose_config("evaluate", "recipe=judge"), (*RUN_KEYS, "method"))
    assert recipe == flags and "judges_only" not in recipe["model"]


def test_a_judge_is_never_asked_for_its_own_answers():
    judge = model_spec({"name": "j", "packaged": "smollm2_135m_instruct", "add_reflection_tokens": True,
                        "adapter": str(CONF), "judges_only": "true"})  # any existing directory passes the check
    assert judge.judges_only is True
    with pytest.raises(InputError, match=r"model 'j' only judges \(model.judges_only\).*use recipe=judge"):
        answer_reader(judge, DecodingConfig())
    assert answer_reader(judge, DecodingConfig(reader="base")) == ModelSpec("j base", packaged="smollm2_135m_instruct")
    generator = ModelSpec("g", packaged="smollm2_135m_instruct", add_reflection_tokens=True)
    assert answer_reader(generator, DecodingConfig()) is None  # the paper's decoding: the generator writes
    with pytest.raises(InputError, match="model.judges_only must be true or false"):
        model_spec({"name": "j", "packaged": "smollm2_135m_instruct", "judges_only": "maybe"})

"""The reward weights' defaults have one home, `RewardWeights`' field defaults; everything else defers to it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from selfrag.decoding.config import DEFAULT_WEIGHTS, WEIGHT_KEYS, DecodingConfig, parse_weights
from selfrag.decoding.critique import RewardWeights
from selfrag.decoding.run import run_settings

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_configs_name_the_weights_without_restating_them():
    default = OmegaConf.load(CONF / "decoding" / "default.yaml")
    rerank = OmegaConf.load(CONF / "rerank.yaml").decoding
    for node in (default, rerank):
        assert {k: node[k] for k in WEIGHT_KEYS} == dict.fromkeys(WEIGHT_KEYS)  # keys kept, values null


def test_null_means_the_library_default_everywhere():
    assert DEFAULT_WEIGHTS == RewardWeights()
    assert parse_weights(None, None, None, None) == RewardWeights()
    assert parse_weights(None, 2, None, "false") == RewardWeights(w_sup=2.0, use_seqscore=False)
    from_config = DecodingConfig.from_mapping(dict.fromkeys(WEIGHT_KEYS))
    assert from_config == DecodingConfig() and from_config.weights == RewardWeights()
    assert {k: asdict(DecodingConfig())[k] for k in WEIGHT_KEYS} == asdict(RewardWeights())


def test_runs_record_resolved_weights():
    """run_config.json holds numbers, so a run recorded when the configs spelled them out still resumes."""
    recorded = run_settings({"decoding": {"mode": "adaptive", **dict.fromkeys(WEIGHT_KEYS), "w_use": 1.0}})
    assert recorded["decoding"] == {"mode": "adaptive", **asdict(RewardWeights(w_use=1.0))}

"""Generator training as a user runs it, on a tiny model: `scripts/train_generator.py` (adapter, card, resume, the
no-reflection-token baseline), the trained adapter through `resolve_checkpoint` and `scripts/infer.py`, and the
configs a run composes (Hydra, and the accelerate FSDP / DeepSpeed files read the way `accelerate launch` reads them).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from selfrag import tokens as T
from selfrag.artifacts import file_sha256
from selfrag.io import InputError, read_jsonl
from tests.helpers import run_script

ROOT = Path(__file__).resolve().parents[2]


def _passage(title: str, text: str) -> str:
    return f"{T.RETRIEVAL}{T.PARAGRAPH_OPEN}{title}\n{text}{T.PARAGRAPH_CLOSE}"


#: Released-format rows (passages and reflection tokens in `output`) over the tiny tokenizer's words.
ROWS = [
    ("who is alice ?", f"{_passage('alice', 'alice is a singer from paris .')}{T.RELEVANT}alice is a singer ."
                       f"{T.FULLY_SUPPORTED}[Utility:5]"),
    ("who is bob ?", f"{_passage('bob', 'bob was born in london .')}{T.IRRELEVANT}bob is an actor .[Utility:2]"),
    ("what is the capital of france ?", f"{T.NO_RETRIEVAL}paris is the capital .[Utility:4]"),
    ("who is carol ?", f"{_passage('carol', 'carol is a politician .')}{T.RELEVANT}carol is a politician ."
                       f"{T.PARTIALLY_SUPPORTED}{_passage('carol', 'carol was born in england .')}{T.RELEVANT}"
                       f"she was born in england .{T.FULLY_SUPPORTED}[Utility:5]"),
    ("who is dave ?", f"{_passage('dave', 'dave is an actor .')}{T.RELEVANT}dave is an actor .{T.FULLY_SUPPORTED}"
                      "[Utility:4]"),
    ("who is eve ?", f"{T.NO_RETRIEVAL}eve is a singer .[Utility:3]"),
]

#: The overrides of a 2-step LoRA run (everything else from conf/train_generator.yaml).
SMALL_RUN = ("finetune.max_steps=2", "finetune.batch_size=2", "finetune.grad_accum=1", "finetune.lora_r=4")


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("generator-data") / "train.jsonl"
    path.write_text("".join(json.dumps({"instruction": q, "input": "", "output": o, "id": str(i),
                                        "dataset_name": "tiny"}) + "\n" for i, (q, o) in enumerate(ROWS)))
    return path


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory):
    """Merged adapters and converted checkpoints go to a temporary cache, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SELFRAG_CACHE", str(tmp_path_factory.mktemp("selfrag-cache")))
        yield


@pytest.fixture(scope="module")
def trained(tiny_model_dir, train_file, tmp_path_factory, isolated_cache) -> tuple[Path, tuple[str, ...]]:
    """One finished LoRA run: (output_dir, the overrides it was run with)."""
    out = tmp_path_factory.mktemp("train-generator") / "run"
    overrides = ("model=custom", f"model.path={tiny_model_dir}", f"data.train={train_file}", *SMALL_RUN,
                 f"export_dir={out.parent / 'artifact'}", f"output_dir={out}")
    run_script("train_generator", *overrides)
    return out, overrides


def test_writes_adapter_card_and_metrics_and_a_rerun_returns_at_once(trained, train_file):
    out, overrides = trained
    final = out / "final"
    for name in ("adapter_config.json", "adapter_model.safetensors", "selfrag_adapter.json", "train_metrics.json"):
        assert (final / name).is_file(), name
    # the default dev_fraction split off one whole question; both parts together are the file's rows
    train_rows, dev_rows = read_jsonl(out / "data" / "train.jsonl"), read_jsonl(out / "data" / "dev.jsonl")
    assert len(dev_rows) == 1 and sorted(r["id"] for r in train_rows + dev_rows) == [str(i) for i in range(6)]

    card = (final / "README.md").read_text()
    assert "## Command" in card and "scripts/train_generator.py" in card and "finetune.max_steps=2" in card
    assert f"sha256 `{file_sha256(out / 'data' / 'train.jsonl')}`" in card  # the file trained on
    assert f"`{train_file}` (sha256 `{file_sha256(train_file)}`)" in card  # and the file it came from
    assert "| step | epoch | loss |" in card and "| 2 |" in card and "## Eval loss" in card
    assert "| train | 5 | 5 |" in card  # SFT data statistics
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["train"]["steps"] == 2 and metrics["train_data"]["kept"] == 5
    assert metrics["eval_loss"] is not None and metrics["eval_loss"] == metrics["train"]["eval_loss"]
    assert (out.parent / "artifact" / "adapter_model.safetensors").is_file()  # export_dir

    log = (out / "train_log.jsonl").read_bytes()
    weights = (final / "adapter_model.safetensors").read_bytes()
    proc = run_script("train_generator", *overrides)
    assert "already holds the finished run" in proc.stdout + proc.stderr
    assert (out / "train_log.jsonl").read_bytes() == log  # no step was trained again
    assert (final / "adapter_model.safetensors").read_bytes() == weights


def test_notokens_trains_on_the_same_rows_stripped(tiny_model_dir, train_file, tmp_path, isolated_cache):
    out = tmp_path / "notokens"
    run_script("train_generator", "model=custom", f"model.path={tiny_model_dir}", "data=notokens",
               f"data.train={train_file}", "data.dev_fraction=0", *SMALL_RUN, "finetune.max_steps=1",
               f"output_dir={out}")
    stripped = out / "data" / "train.jsonl"
    rows = read_jsonl(stripped)
    assert [r["instruction"] for r in rows] == [q for q, _ in ROWS]
    for row, (_, output) in zip(rows, ROWS):
        assert not any(token in row["output"] for token in T.REFLECTION_TOKENS)
        assert T.PARAGRAPH_OPEN not in row["output"] and "london" not in row["output"]  # passages went too
        assert row["output"] == T.strip_reflection(output) and row["output"]
    assert not (out / "data" / "dev.jsonl").exists()
    card = (out / "final" / "README.md").read_text()
    assert "without reflection tokens" in card and f"sha256 `{file_sha256(stripped)}`" in card


def test_the_trained_adapter_loads_and_infer_runs_on_it(trained, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfrag.models.loading import ModelSpec, resolve_checkpoint
    from selfrag.models.reflection import reflection_token_ids

    out, _ = trained
    final = out / "final"
    merged = resolve_checkpoint(ModelSpec("generator", path=tiny_model_dir, adapter=str(final)),
                                cache_dir=tmp_path / "cache")
    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert len(reflection_token_ids(tokenizer)) == 15

    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": 1, "question": "who is alice ?", "answers": ["singer"],
         "ctxs": [{"id": "a1", "title": "alice", "text": "alice is a singer from paris ."},
                  {"id": "b1", "title": "bob", "text": "bob was born in london ."}]},
        {"id": 2, "question": "who is carol ?", "answers": ["politician"],
         "ctxs": [{"id": "c1", "title": "carol", "text": "carol is a politician ."}]},
    ]))
    predictions = tmp_path / "infer"
    run_script("infer", "model=custom", f"model.path={tiny_model_dir}", f"model.adapter={final}", "prompt=selfrag",
               "backend=hf", f"data.path={questions}", "task=popqa", "decoding.mode=always", "decoding.ndocs=2",
               "decoding.max_new_tokens=20", f"output_dir={predictions}")
    rows = read_jsonl(predictions / "predictions.jsonl")
    assert [r["id"] for r in rows] == ["1", "2"]
    assert all(r["retrieved"] and r["candidates"] and isinstance(r["answer"], str) for r in rows)

    # decoding.reader=base: the adapter's base (the tiny model itself) answers each passage, the merged generator
    # critiques. IsRel is read where generation reads it, so it equals the run above's; IsSup after the greedy IsRel
    # token and the answer equals a direct forward pass of the merged model over that sequence.
    import torch

    from selfrag.prompts import official_prompt, passage_block

    read_by_base = tmp_path / "infer_base_reader"
    run_script("infer", "model=custom", f"model.path={tiny_model_dir}", f"model.adapter={final}", "prompt=selfrag",
               "backend=hf", f"data.path={questions}", "task=popqa", "decoding.mode=always", "decoding.ndocs=2",
               "decoding.max_new_tokens=20", "decoding.reader=base", f"output_dir={read_by_base}")
    based = read_jsonl(read_by_base / "predictions.jsonl")
    assert json.loads((read_by_base / "run_config.json").read_text())["decoding"]["reader"] == "base"
    for own, base in zip(rows, based, strict=True):
        assert [c["passage_id"] for c in base["candidates"]] == [c["passage_id"] for c in own["candidates"]]
        for mine, theirs in zip(own["candidates"], base["candidates"], strict=True):
            assert theirs["probs"]["rel"] == pytest.approx(mine["probs"]["rel"], abs=1e-5)
    candidate = based[0]["candidates"][0]
    passage = SimpleNamespace(title=candidate["passage_title"], text=candidate["passage_text"])
    rel_token = max(T.ISREL_GROUP, key=lambda t: candidate["probs"]["rel"][t])

    def encode(text, special=False):
        return tokenizer(text, add_special_tokens=special)["input_ids"]

    ids = (encode(official_prompt("who is alice ?"), special=True) + encode(passage_block(passage))
           + tokenizer.convert_tokens_to_ids([rel_token]) + encode(candidate["answer"]))
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1].float()
    probs = torch.softmax(logits, -1)[tokenizer.convert_tokens_to_ids(list(T.ISSUP_GROUP))]
    assert [candidate["probs"]["sup"][t] for t in T.ISSUP_GROUP] == pytest.approx(probs.tolist(), rel=1e-4)


# --- configs, no training -------------------------------------------------------------------------------------------


@pytest.fixture()
def compose_generator():
    """Compose conf/train_generator.yaml with overrides, `${hydra:...}` resolvable, as the script would see it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    import selfrag.overrides  # noqa: F401  (registers the resolvers conf/ uses)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        def _compose(*overrides: str):
            cfg = compose("train_generator", overrides=list(overrides), return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            return cfg

        yield _compose


def test_generator_config_composes_for_each_finetune_and_data_choice(compose_generator):
    from omegaconf import OmegaConf

    from selfrag.models.loading import ModelSpec
    from selfrag.training.config import TrainConfig
    from selfrag.training.sft_data import reflection_weight_tokens

    def dry_start(*overrides):
        """What `run` builds before any work: the model spec, the training config and the data settings."""
        cfg = compose_generator(*overrides)
        spec = ModelSpec(**OmegaConf.to_container(cfg.model, resolve=True))
        config = TrainConfig(**OmegaConf.to_container(cfg.finetune, resolve=True))
        return cfg, spec, config, OmegaConf.to_container(cfg.data, resolve=True)

    cfg, spec, config, data = dry_start()
    assert (spec.name, spec.packaged, spec.add_reflection_tokens, spec.adapter) == \
        ("smollm2_135m_instruct", "smollm2_135m_instruct", True, None)
    assert config.finetune == "lora" and config.learning_rate == pytest.approx(2e-4)
    assert data == {"train": str(ROOT / "artifacts/generator-data/train.jsonl"), "dev": None, "dev_fraction": 0.05,
                    "strip_reflection": False, "reflection_weight": None, "supervise_paragraph_close": False,
                    "supervise_irrelevant_answers": True, "prompt_style": "selfrag", "overflow": "truncate"}
    assert cfg.export_dir is None and str(cfg.output_dir).startswith("outputs/train_generator/")

    _, _, config, _ = dry_start("finetune=full")
    assert config.finetune == "full" and config.learning_rate == pytest.approx(2e-5)

    _, _, config, data = dry_start("data=notokens", "finetune.max_steps=3")
    assert data["strip_reflection"] is True and data["dev_fraction"] == 0.05 and data["train"].endswith("train.jsonl")
    assert config.max_steps == 3

    # Per-group loss weights from the command line: a mapping the data loader accepts, and a typo refused by name.
    _, _, _, data = dry_start("data.reflection_weight={isrel:4,issup:2}")
    assert reflection_weight_tokens(data["reflection_weight"])[T.IRRELEVANT] == 4.0
    _, _, _, data = dry_start("data.reflection_weight={isrell:4}")
    with pytest.raises(InputError, match=r"unknown token groups \['isrell'\]; use some of retrieve, isrel"):
        reflection_weight_tokens(data["reflection_weight"])

    for name, artifact in [("selfrag_smollm2_135m", "selfrag-smollm2-135m"),
                           ("sft_smollm2_135m_notokens", "sft-smollm2-135m-notokens")]:
        _, spec, _, _ = dry_start(f"model={name}")
        assert spec.name == name and spec.packaged == "smollm2_135m_instruct" and spec.add_reflection_tokens
        assert spec.adapter == str(ROOT / "artifacts" / artifact)


def test_accelerate_configs_read_as_accelerate_launch_reads_them(monkeypatch):
    from accelerate.commands.config import load_config_from_file
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env
    from torch.distributed.fsdp import CPUOffloadPolicy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    monkeypatch.chdir(ROOT)  # the DeepSpeed JSON path is relative to the repository root, where runs start
    fsdp = load_config_from_file("conf/accelerate/fsdp.yaml")
    assert isinstance(fsdp, ClusterConfig) and fsdp.distributed_type == DistributedType.FSDP
    assert fsdp.mixed_precision == "bf16" and fsdp.num_processes > 1
    assert fsdp.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == LlamaDecoderLayer.__name__
    zero3 = load_config_from_file("conf/accelerate/deepspeed_zero3.yaml")
    assert isinstance(zero3, ClusterConfig) and zero3.distributed_type == DistributedType.DEEPSPEED

    def launch_env(config_file, prepare):
        """The environment `accelerate launch --config_file ... scripts/train_generator.py` gives its processes."""
        args = launch_command_parser().parse_args(["--config_file", config_file, "scripts/train_generator.py"])
        args, defaults, mixed_precision_from_config = _validate_launch_command(args)
        if args.use_deepspeed:  # what `launch_command` adds before calling the DeepSpeed launcher
            fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mixed_precision_from_config else [])
            args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        env = prepare(args)
        return env[1] if isinstance(env, tuple) else env

    for key, value in launch_env("conf/accelerate/fsdp.yaml", prepare_multi_gpu_env).items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True  # FULL_SHARD
    assert plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"] and not plugin.cpu_ram_efficient_loading
    assert not isinstance(plugin.cpu_offload, CPUOffloadPolicy)

    for key, value in launch_env("conf/accelerate/deepspeed_zero3.yaml", prepare_deepspeed_cmd_env).items():
        if key.startswith("ACCELERATE_"):
            monkeypatch.setenv(key, value)
    ds = DeepSpeedPlugin()
    zero = ds.deepspeed_config["zero_optimization"]
    assert ds.zero_stage == 3 and not ds.zero3_init_flag
    assert zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "none"
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True  # final/ can be gathered
    assert ds.deepspeed_config["bf16"]["enabled"] == "auto"
    assert ds.deepspeed_config["gradient_accumulation_steps"] == "auto"


def test_deepspeed_values_the_trainer_decides_are_filled_in():
    from selfrag.training.config import TrainConfig
    from selfrag.training.trainer import _configure_deepspeed

    def accelerator(ds_config):
        return SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(deepspeed_config=ds_config)),
                               num_processes=4)

    config = TrainConfig(batch_size=2, grad_accum=8, max_grad_norm=0.5)
    ds = {"gradient_accumulation_steps": "auto", "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
          "gradient_clipping": "auto"}
    assert _configure_deepspeed(accelerator(ds), config) is True
    assert ds == {"gradient_accumulation_steps": 1, "train_micro_batch_size_per_gpu": 2, "train_batch_size": 8,
                  "gradient_clipping": 0.5}
    with pytest.raises(InputError, match="gradient_accumulation_steps=4.*finetune.grad_accum"):
        _configure_deepspeed(accelerator({"gradient_accumulation_steps": 4}), config)
    assert _configure_deepspeed(SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=None)), config) is False

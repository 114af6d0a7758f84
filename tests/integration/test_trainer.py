"""The SFT trainer on tiny Llamas: LoRA trains the token rows and nothing frozen, full FT learns, resume is exact,
the supervised-positions loss equals the HF loss, and a merged adapter gives the peft model's logits."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from selfrag import tokens as T
from selfrag.io import InputError
from selfrag.models.adapters import merged_checkpoint
from selfrag.models.loading import ModelSpec, resolve_checkpoint
from selfrag.training import trainer as trainer_module
from selfrag.training.batching import plan_epoch
from selfrag.training.checkpoints import ADAPTER_WEIGHTS, adapter_from_checkpoint, checkpoint_steps
from selfrag.training.config import TrainConfig
from selfrag.training.loss import supervised_loss
from selfrag.training.sft_data import load_sft_dataset, load_training_tokenizer
from selfrag.training.trainer import train
from tests.helpers import TRAINING_TEXTS, build_tiny_selfrag_model, build_tokenizer


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: thread start-up costs more than it saves, and badly so when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build_tied_base(directory):
    """A tiny Llama whose LM head is tied to its input embedding, without reflection tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Plain bases (no reflection tokens): the helpers' untied tiny Llama and a tied one."""
    root = tmp_path_factory.mktemp("bases")
    return {
        "untied": build_tiny_selfrag_model(root / "untied", with_tokens=False),
        "tied": _build_tied_base(root / "tied"),
    }


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """Released-format rows from the helpers' Self-RAG texts (12 rows, 1-2 passages each)."""
    rows = []
    for copy in range(3):
        for text in TRAINING_TEXTS:
            prompt, response = text.split(" ### Response : ")
            rows.append({"instruction": prompt.removeprefix("### Instruction : "), "input": "", "output": response,
                         "id": f"{copy}-{len(rows)}"})
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _dataset(base, data_file, **kwargs):
    dataset, _ = load_sft_dataset(data_file, load_training_tokenizer(base), max_length=96, **kwargs)
    return dataset


def _config(**overrides):
    settings = dict(learning_rate=1e-2, warmup_ratio=0.0, batch_size=2, grad_accum=2, max_steps=1,
                    save_every_steps=None, log_every_steps=1, precision="fp32", seed=0)
    return TrainConfig(**{**settings, **overrides})


def _base_with_tokens(base):
    """The base as training starts from it: reflection tokens added (rows initialised from their descriptions)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfrag.models.reflection import add_reflection_tokens

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base)
    add_reflection_tokens(model, tokenizer)
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def lora_runs(bases, data_file, tmp_path_factory):
    """One LoRA optimizer step over all 12 rows on each base."""
    runs = {}
    for kind, base in bases.items():
        out = tmp_path_factory.mktemp(f"lora-{kind}")
        config = _config(finetune="lora", save_every_steps=1, batch_size=4, grad_accum=3, max_steps=2)
        runs[kind] = train(base, _dataset(base, data_file), config, output_dir=out, progress=False)
    return runs


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_lora_step_trains_token_rows_and_leaves_base_frozen(kind, bases, lora_runs, data_file, tmp_path):
    from transformers import AutoModelForCausalLM

    result = lora_runs[kind]
    before, tokenizer = _base_with_tokens(bases[kind])
    ids = sorted(tokenizer.convert_tokens_to_ids(list(T.REFLECTION_TOKENS)))
    merged = AutoModelForCausalLM.from_pretrained(merged_checkpoint(bases[kind], result.final_dir, tmp_path),
                                                  dtype=torch.float32)
    others = [i for i in range(len(tokenizer)) if i not in ids]
    sides = [("input", before.get_input_embeddings().weight, merged.get_input_embeddings().weight),
             ("output", before.get_output_embeddings().weight, merged.get_output_embeddings().weight)]
    # An input row gets a gradient only where its token occurs in the data; an output row gets one from every
    # softmax (and, tied, the one shared row gets both).
    occurring = {i for row in _dataset(bases[kind], data_file)["input_ids"] for i in row if i in ids}
    assert 5 < len(occurring) < len(ids)
    for side, old, new in sides:
        changed = {i for i in ids if (old[i] - new[i]).abs().max() > 1e-4}
        assert changed == (occurring if side == "input" and kind == "untied" else set(ids)), side
        assert torch.equal(old[others], new[others]), f"{side} rows of ordinary tokens changed"
    if kind == "tied":
        assert torch.equal(merged.get_input_embeddings().weight, merged.get_output_embeddings().weight)
    # Weights LoRA does not adapt must come back bit-identical: they were frozen.
    assert torch.equal(before.model.norm.weight, merged.model.norm.weight)
    assert torch.equal(before.model.layers[0].input_layernorm.weight, merged.model.layers[0].input_layernorm.weight)
    # ...while the adapted projections moved (B left its zero init after the step).
    q_before, q_after = before.model.layers[0].self_attn.q_proj.weight, merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q_before, q_after)

    adapter = load_file(str(result.final_dir / "adapter_model.safetensors"))
    assert all("lora_" in k or "trainable_tokens_delta" in k for k in adapter)
    token_rows = [k for k in adapter if "trainable_tokens_delta" in k]
    assert len(token_rows) == (1 if kind == "tied" else 2)
    assert checkpoint_steps(result.final_dir.parent) == [1]
    checkpoint = load_file(str(result.final_dir.parent / "checkpoints" / "step-1" / "model.safetensors"))
    assert checkpoint and all("lora_" in k or "trainable_tokens_delta" in k for k in checkpoint)
    info = json.loads((result.final_dir / "selfrag_adapter.json").read_text())
    assert info["trainable_token_ids"] == ids and info["vocab_size"] == len(tokenizer)
    # the base is named, not located: no path of this machine in the adapter's files
    from pathlib import Path

    assert info["base_model"] == Path(bases[kind]).name and len(info["base_content_fingerprint"]) == 16
    peft_config = json.loads((result.final_dir / "adapter_config.json").read_text())
    assert peft_config["base_model_name_or_path"] == Path(bases[kind]).name


def test_merged_checkpoint_matches_peft_logits(bases, lora_runs, data_file, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base, adapter = bases["untied"], lora_runs["untied"].final_dir
    model, _ = _base_with_tokens(base)
    peft_model = PeftModel.from_pretrained(model, adapter).eval()
    merged_dir = merged_checkpoint(base, adapter, tmp_path)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    ids = torch.tensor([_dataset(base, data_file)[3]["input_ids"]])
    with torch.no_grad():
        expected, got = peft_model(input_ids=ids).logits, merged(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-5), (expected - got).abs().max()
    # ModelSpec(adapter=...) resolves to the same cached merge; the tokenizer comes along.
    spec = ModelSpec("lora", path=str(base), adapter=str(adapter))
    assert resolve_checkpoint(spec, cache_dir=tmp_path) == str(merged_dir)
    assert (merged_dir / "tokenizer.json").is_file()


def test_full_finetuning_lowers_the_loss(bases, data_file, tmp_path):
    from transformers import AutoModelForCausalLM

    base = bases["untied"]
    dataset = _dataset(base, data_file)
    result = train(base, dataset, _config(finetune="full", learning_rate=5e-3, max_steps=20, log_every_steps=10),
                   output_dir=tmp_path, eval_dataset=dataset, progress=False)
    batch = _padded(dataset, range(len(dataset)))

    def loss_of(model):
        with torch.no_grad():
            return float(model(**{k: v for k, v in batch.items() if k != "loss_weights"}).loss)

    before, _ = _base_with_tokens(base)
    after = AutoModelForCausalLM.from_pretrained(result.final_dir, dtype=torch.float32).eval()
    assert loss_of(after) < 0.6 * loss_of(before)
    assert result.stats["eval_loss"] == pytest.approx(loss_of(after), rel=1e-4)
    losses = [row["loss"] for row in result.history if "loss" in row]
    assert len(losses) == 2 and losses[1] < losses[0]


def _padded(dataset, indices):
    rows = dataset[list(indices)]
    width = max(len(ids) for ids in rows["input_ids"])
    batch = {"input_ids": torch.zeros(len(rows["input_ids"]), width, dtype=torch.long),
             "attention_mask": torch.zeros(len(rows["input_ids"]), width, dtype=torch.long),
             "labels": torch.full((len(rows["input_ids"]), width), -100, dtype=torch.long)}
    for i, (ids, labels) in enumerate(zip(rows["input_ids"], rows["labels"])):
        batch["input_ids"][i, : len(ids)] = torch.tensor(ids)
        batch["attention_mask"][i, : len(ids)] = 1
        batch["labels"][i, : len(ids)] = torch.tensor(labels)
    if "loss_weights" in rows:
        batch["loss_weights"] = torch.zeros(len(rows["input_ids"]), width)
        for i, weights in enumerate(rows["loss_weights"]):
            batch["loss_weights"][i, : len(weights)] = torch.tensor(weights)
    return batch


def test_supervised_positions_loss_equals_hf_loss(bases, data_file):
    model, _ = _base_with_tokens(bases["untied"])
    batch = _padded(_dataset(bases["untied"], data_file, reflection_weight=2.5), range(5))
    with torch.no_grad():
        weighted, weight, ce_sum, count = supervised_loss(model, batch["input_ids"], batch["attention_mask"],
                                                          batch["labels"])
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"]).loss
        assert torch.allclose(weighted / weight, reference, atol=1e-6)
        assert int(count) == int((batch["labels"][:, 1:] != -100).sum()) and torch.allclose(ce_sum, weighted)
        # With loss weights: the weighted mean of the same per-token cross-entropies, from full logits.
        weighted, weight, _, _ = supervised_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"],
                                                 batch["loss_weights"])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        targets, weights = batch["labels"][:, 1:], batch["loss_weights"][:, 1:]
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                               reduction="none", ignore_index=-100)
        expected = (ce * weights.reshape(-1)).sum() / weights.sum()
    assert torch.allclose(weighted / weight, expected, atol=1e-6)
    assert weight > int(count)  # reflection tokens really were up-weighted


class _Crash(RuntimeError):
    pass


def _crash_after_first_checkpoint(base, dataset, config, output_dir, monkeypatch):
    """Run `config` into `output_dir` until it has written its first checkpoint, then crash it there."""
    save = trainer_module.save_checkpoint

    def save_then_crash(accelerator, root, step, *args):
        save(accelerator, root, step, *args)
        raise _Crash(f"killed after checkpoint {step}")

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_crash)
    with pytest.raises(_Crash):
        train(base, dataset, config, output_dir=output_dir, progress=False)
    monkeypatch.setattr(trainer_module, "save_checkpoint", save)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_resumed_run_ends_with_identical_weights(finetune, bases, data_file, tmp_path, monkeypatch):
    base = bases["tied"] if finetune == "full" else bases["untied"]
    dataset = _dataset(base, data_file)
    # 3 steps per epoch: the crash at step 2 resumes mid-epoch and the run then crosses into epoch 1.
    config = _config(finetune=finetune, learning_rate=5e-3, max_steps=4, save_every_steps=2, lora_dropout=0.2)
    straight = train(base, dataset, config, output_dir=tmp_path / "straight", progress=False)
    _crash_after_first_checkpoint(base, dataset, config, tmp_path / "resumed", monkeypatch)
    resumed = train(base, dataset, config, output_dir=tmp_path / "resumed", progress=False)

    assert resumed.stats["resumed_from_step"] == 2 and straight.stats["resumed_from_step"] == 0
    name = "adapter_model.safetensors" if finetune == "lora" else "model.safetensors"
    expected, got = load_file(str(straight.final_dir / name)), load_file(str(resumed.final_dir / name))
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert [r["step"] for r in resumed.history] == [1, 2, 3, 4]
    assert [r["loss"] for r in resumed.history] == pytest.approx([r["loss"] for r in straight.history], abs=1e-9)
    # A finished run is not redone.
    again = train(base, dataset, config, output_dir=tmp_path / "resumed", progress=False)
    assert again.stats == resumed.stats


def test_resume_may_turn_on_gradient_checkpointing(bases, data_file, tmp_path, monkeypatch):
    """A run that ran out of memory resumes with gradient checkpointing: the same forward is recomputed (dropout masks
    included), so it ends with the weights of the straight run."""
    base = bases["untied"]
    dataset = _dataset(base, data_file)
    config = _config(finetune="lora", learning_rate=5e-3, max_steps=4, save_every_steps=2, lora_dropout=0.2)
    straight = train(base, dataset, config, output_dir=tmp_path / "straight", progress=False)
    _crash_after_first_checkpoint(base, dataset, config, tmp_path / "resumed", monkeypatch)
    resumed = train(base, dataset, dataclasses.replace(config, gradient_checkpointing=True),
                    output_dir=tmp_path / "resumed", progress=False)
    assert resumed.stats["resumed_from_step"] == 2
    expected = load_file(str(straight.final_dir / "adapter_model.safetensors"))
    got = load_file(str(resumed.final_dir / "adapter_model.safetensors"))
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)


def test_resume_refuses_other_settings(bases, data_file, tmp_path):
    base = bases["untied"]
    dataset = _dataset(base, data_file)
    train(base, dataset, _config(finetune="lora"), output_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match="learning_rate"):
        train(base, dataset, _config(finetune="lora", learning_rate=1e-3), output_dir=tmp_path, progress=False)


def test_plan_epoch_is_deterministic_and_groups_by_length():
    lengths = np.random.default_rng(0).integers(5, 200, size=301)
    plan = plan_epoch(lengths, seed=3, epoch=1, batch_size=4, max_batch_tokens=None, group_size=8)
    assert plan == plan_epoch(lengths, seed=3, epoch=1, batch_size=4, max_batch_tokens=None, group_size=8)
    assert plan != plan_epoch(lengths, seed=3, epoch=2, batch_size=4, max_batch_tokens=None, group_size=8)
    assert sorted(i for batch in plan for i in batch) == list(range(301))
    assert all(len(batch) <= 4 for batch in plan)
    padded = sum(len(b) * max(lengths[b]) for b in plan)
    random_order = np.random.default_rng(1).permutation(301)
    padded_random = sum(4 * max(lengths[random_order[i : i + 4]]) for i in range(0, 301, 4))
    assert padded < 0.8 * padded_random  # grouping by length cuts padding

    by_tokens = plan_epoch(lengths, seed=3, epoch=1, batch_size=None, max_batch_tokens=400, group_size=8)
    assert sorted(i for batch in by_tokens for i in batch) == list(range(301))
    assert all(len(b) * max(lengths[b]) <= 400 for b in by_tokens)


def test_token_learning_rate_gives_the_reflection_rows_their_own_group(bases):
    """finetune.token_learning_rate: the reflection-token rows (and only they) get their own rate; without it one
    rate for all; full fine-tuning refuses it."""
    config = _config(finetune="lora", learning_rate=5e-5, token_learning_rate=1e-3)
    model, _, token_ids = trainer_module.build_model(bases["untied"], config)
    optimizer = trainer_module._make_optimizer(model, config, torch.device("cpu"))
    rates = [group["lr"] for group in optimizer.param_groups]
    token_group = [g for g in optimizer.param_groups if g["lr"] == 1e-3]
    assert rates.count(1e-3) == 1 and set(rates) == {5e-5, 1e-3}
    rows = {id(p) for n, p in model.named_parameters() if trainer_module.TOKEN_ROWS in n}
    assert rows and {id(p) for p in token_group[0]["params"]} == rows and len(token_ids) == 15
    plain = trainer_module._make_optimizer(model, _config(finetune="lora", learning_rate=5e-5), torch.device("cpu"))
    assert {g["lr"] for g in plain.param_groups} == {5e-5}
    with pytest.raises(InputError, match="token_learning_rate applies to finetune=lora only"):
        _config(finetune="full", token_learning_rate=1e-3)


def test_snapshots_are_loadable_models_of_their_step(bases, data_file, tmp_path):
    """`snapshot_steps` writes `snapshots/step-N` during the run: a full model equal to what a run stopped at N gives
    (constant schedule, so the first N steps are the same), and not pruned like checkpoints."""
    from transformers import AutoModelForCausalLM

    base = bases["untied"]
    dataset = _dataset(base, data_file)
    settings = dict(finetune="full", learning_rate=5e-3, lr_scheduler="constant_with_warmup", warmup_ratio=0.0)
    train(base, dataset, _config(**settings, max_steps=3, snapshot_steps=[1, 2]), output_dir=tmp_path / "long",
          progress=False)
    short = train(base, dataset, _config(**settings, max_steps=2), output_dir=tmp_path / "short", progress=False)
    assert sorted(p.name for p in (tmp_path / "long" / "snapshots").iterdir()) == ["step-1", "step-2"]
    snapshot = AutoModelForCausalLM.from_pretrained(tmp_path / "long" / "snapshots" / "step-2", dtype=torch.float32)
    stopped = AutoModelForCausalLM.from_pretrained(short.final_dir, dtype=torch.float32)
    for (name, a), (_, b) in zip(snapshot.state_dict().items(), stopped.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_lora_checkpoint_becomes_the_adapter_of_its_step(bases, data_file, tmp_path):
    """`adapter_from_checkpoint` turns `checkpoints/step-2` of a LoRA run into the adapter the run's snapshot at step
    2 holds (same tensor names, values and dtypes), with the template's config and tokenizer; another configuration is
    refused by name."""
    base = bases["untied"]
    dataset = _dataset(base, data_file)
    config = _config(finetune="lora", learning_rate=5e-3, max_steps=3, save_every_steps=2, snapshot_steps=[2])
    run = train(base, dataset, config, output_dir=tmp_path / "run", progress=False)
    converted = adapter_from_checkpoint(tmp_path / "run" / "checkpoints" / "step-2", run.final_dir,
                                        tmp_path / "step-2")
    expected = load_file(str(tmp_path / "run" / "snapshots" / "step-2" / ADAPTER_WEIGHTS))
    got = load_file(str(converted / ADAPTER_WEIGHTS))
    assert expected.keys() == got.keys()
    for key in expected:
        assert got[key].dtype == expected[key].dtype and torch.equal(got[key], expected[key]), key
    final = load_file(str(run.final_dir / ADAPTER_WEIGHTS))
    assert any(not torch.equal(final[key], got[key]) for key in final)  # step 3 moved on from step 2
    assert (converted / "adapter_config.json").read_text() == (run.final_dir / "adapter_config.json").read_text()
    assert not (converted / "README.md").exists()  # the final card describes another step

    other = train(base, dataset, _config(finetune="lora", lora_r=4, max_steps=1), output_dir=tmp_path / "r4",
                  progress=False)
    with pytest.raises(InputError, match=r"step-2: its tensors do not match the adapter .*r4"):
        adapter_from_checkpoint(tmp_path / "run" / "checkpoints" / "step-2", other.final_dir, tmp_path / "bad")
    with pytest.raises(InputError, match="already exists"):
        adapter_from_checkpoint(tmp_path / "run" / "checkpoints" / "step-2", run.final_dir, converted)


def test_init_adapter_starts_from_the_adapters_weights(bases, data_file, tmp_path):
    """`init_adapter`: a LoRA run starts from another run's adapter (LoRA weights and token rows), so at learning rate
    0 its final adapter is that adapter, tensor for tensor, where a fresh start differs; another LoRA shape, a full
    fine-tune, a path without an adapter and a changed starting adapter on resumption are refused by name."""
    base = bases["untied"]
    dataset = _dataset(base, data_file)
    first = train(base, dataset, _config(finetune="lora", learning_rate=5e-3, max_steps=2), output_dir=tmp_path / "a",
                  progress=False)
    still = dict(finetune="lora", learning_rate=0.0, max_steps=1, seed=1)
    continued = train(base, dataset, _config(**still, init_adapter=str(first.final_dir)), output_dir=tmp_path / "b",
                      progress=False)
    fresh = train(base, dataset, _config(**still), output_dir=tmp_path / "c", progress=False)
    start = load_file(str(first.final_dir / ADAPTER_WEIGHTS))
    got = load_file(str(continued.final_dir / ADAPTER_WEIGHTS))
    assert start.keys() == got.keys() and any("trainable_tokens" in key for key in got)
    assert all(torch.equal(got[key], start[key]) for key in start)
    fresh_weights = load_file(str(fresh.final_dir / ADAPTER_WEIGHTS))
    assert not all(torch.equal(fresh_weights[key], start[key]) for key in start)

    with pytest.raises(InputError, match=r"LoRA settings are not this run's \(r 16 vs 4"):
        train(base, dataset, _config(**still, lora_r=4, init_adapter=str(first.final_dir)),
              output_dir=tmp_path / "d", progress=False)
    with pytest.raises(InputError, match="init_adapter applies to finetune=lora only"):
        _config(finetune="full", init_adapter=str(first.final_dir))
    with pytest.raises(InputError, match=r"init_adapter=.*: not a LoRA adapter directory"):
        _config(finetune="lora", init_adapter=str(tmp_path))
    partial = tmp_path / "partial"  # the adapter without its token rows: those would start fresh, silently
    shutil.copytree(first.final_dir, partial)
    save_file({k: v for k, v in start.items() if "trainable_tokens" not in k}, str(partial / ADAPTER_WEIGHTS))
    with pytest.raises(InputError, match=r"does not hold this run's trained tensors \(e.g. .*trainable_tokens"):
        train(base, dataset, _config(**still, init_adapter=str(partial)), output_dir=tmp_path / "f", progress=False)
    dropped = sorted(k for k in start if "lora_A" in k)[0]  # one LoRA matrix gone: it would keep peft's random init
    save_file({k: v for k, v in start.items() if k != dropped}, str(partial / ADAPTER_WEIGHTS))
    with pytest.raises(InputError, match=r"does not hold this run's trained tensors \(1 missing, 0 without a place"):
        train(base, dataset, _config(**still, init_adapter=str(partial)), output_dir=tmp_path / "g", progress=False)
    other = train(base, dataset, _config(finetune="lora", learning_rate=5e-3, max_steps=1, seed=3),
                  output_dir=tmp_path / "e", progress=False)
    (first.final_dir / ADAPTER_WEIGHTS).write_bytes((other.final_dir / ADAPTER_WEIGHTS).read_bytes())
    with pytest.raises(InputError, match="init_adapter_fingerprint"):  # the starting adapter at that path changed
        train(base, dataset, _config(**still, init_adapter=str(first.final_dir)), output_dir=tmp_path / "b",
              progress=False)

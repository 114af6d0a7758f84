"""The critic end to end on a tiny model: constrained critic inference (exact against the model's own logits), and
label -> train_critic -> annotate as a user runs them."""

from __future__ import annotations

import json

import pytest

from critic.aspects import ASPECT_LABELS, ISREL, ISSUP, ISUSE, RETRIEVE, LabelItem
from critic.critic_model import CriticLabeler
from critic.prompts import critic_prompt
from critic.released import parse_output
from selfrag import tokens as T
from selfrag.types import Passage
from tests.helpers import run_script, write_tsv_corpus

ALICE = Passage("p1", "alice", "alice is a singer from paris .")
ITEMS = [
    LabelItem(RETRIEVE, "r", "who is alice ?"),
    LabelItem(ISREL, "rel", "who is alice ?", evidence=ALICE),
    LabelItem(ISSUP, "sup", "who is alice ?", output="alice is a singer .", evidence=ALICE),
    LabelItem(ISUSE, "use", "who is alice ?", output="alice is a singer ."),
]


@pytest.fixture(scope="module")
def labeler(tiny_model_dir):
    from transformers import AutoTokenizer

    from selfrag.decoding.hf_backend import HFBackend

    return CriticLabeler(HFBackend(tiny_model_dir, device="cpu"), AutoTokenizer.from_pretrained(tiny_model_dir))


def _next_logprobs(labeler, ids):
    import torch

    with torch.no_grad():
        logits = labeler.backend.model(torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), dim=-1)


def test_labels_are_constrained_to_the_aspect_and_exact(labeler):
    labels = labeler.label(ITEMS)
    for item, label in zip(ITEMS, labels):
        assert label.aspect == item.aspect and label.label in ASPECT_LABELS[item.aspect]
        prompt = labeler.tokenizer(critic_prompt(item))["input_ids"]
        logp = _next_logprobs(labeler, prompt)
        ids = labeler.tokenizer.convert_tokens_to_ids(list(ASPECT_LABELS[item.aspect]))
        probs = logp[ids].exp()
        best = int(probs.argmax())
        assert label.label == ASPECT_LABELS[item.aspect][best]
        assert label.confidence == pytest.approx(float(probs[best] / probs.sum()), rel=1e-4)


def test_multi_token_labels_are_scored_by_their_summed_log_probability(labeler):
    """The released critic writes labels as plain strings: each label's pieces are scored in sequence."""
    vocab = labeler.tokenizer.get_vocab()
    two, one = (vocab["relevant"], vocab["fact"]), (vocab["irrelevant"],)
    labeler._label_ids = {**labeler._label_ids, ISREL: [two, one]}
    try:
        (label,) = labeler.label([ITEMS[1]])
    finally:
        del labeler._label_ids
        labeler.__init__(labeler.backend, labeler.tokenizer)
    prompt = labeler.tokenizer(critic_prompt(ITEMS[1]))["input_ids"]
    first = _next_logprobs(labeler, prompt)
    lp_two = float(first[two[0]] + _next_logprobs(labeler, prompt + [two[0]])[two[1]])
    lp_one = float(first[one[0]])
    import math

    expected = T.RELEVANT if lp_two > lp_one else T.IRRELEVANT
    top, other = max(lp_two, lp_one), min(lp_two, lp_one)
    assert label.label == expected
    assert label.confidence == pytest.approx(1 / (1 + math.exp(other - top)), rel=1e-4)


def test_label_train_critic_and_annotate_scripts(tiny_model_dir, tmp_path):
    seeds = tmp_path / "qa.jsonl"
    rows = [
        {"id": "a", "question": "who is alice ?", "answers": ["singer"], "s_wiki_title": "alice"},
        {"id": "b", "question": "who is bob ?", "answers": ["actor"], "s_wiki_title": "bob"},
        {"id": "c", "question": "who is carol ?", "answers": ["politician"], "s_wiki_title": "carol"},
        {"id": "d", "question": "what is the capital of france ?", "answers": ["paris"]},
    ]
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = write_tsv_corpus(
        tmp_path / "corpus.tsv",
        [
            ("p1", "alice is a singer from paris .", "alice"),
            ("p2", "bob was born in london .", "bob"),
            ("p3", "carol is a politician .", "carol"),
            ("p4", "the capital of france is paris .", "france"),
        ],
    )
    sources = f"sources=[{{path:'{seeds}',dataset:qa}}]"
    labels = tmp_path / "label"
    # half the questions in the critic's dev split, so a dev set exists with only four seeds
    dev_half = "critic_data.dev_fraction=0.5"
    proc = run_script("label", sources, f"corpus.path={corpus}", "k=2", dev_half, f"output_dir={labels}")
    summary = json.loads((labels / "label_stats.json").read_text())
    assert summary["seeds"] == 4 and summary["abstained"] == 0 and summary["train_rows"] > 0
    assert "| isrel | [Relevant] |" in proc.stdout
    # a second labeler's run over the same seeds is compared item by item (here: the same teacher, full agreement)
    again = tmp_path / "label-again"
    run_script("label", sources, f"corpus.path={corpus}", "k=2", dev_half, f"output_dir={again}")
    proc = run_script("agreement", f"a={labels}/labels.jsonl", f"b={again}/labels.jsonl", f"output_dir={tmp_path}/agr")
    report = json.loads((tmp_path / "agr" / "agreement.json").read_text())
    assert {aspect: r["agreement"] for aspect, r in report.items()} == {a: 1.0 for a in (RETRIEVE, ISREL, ISSUP, ISUSE)}

    critic = tmp_path / "critic"
    run_script(
        "train_critic",
        "model=custom",
        f"model.path={tiny_model_dir}",
        f"data.train={labels}/critic_train.jsonl",
        f"data.dev={labels}/critic_dev.jsonl",
        "finetune.max_steps=2",
        "finetune.batch_size=4",
        "finetune.grad_accum=1",
        "finetune.lora_r=4",
        f"export_dir={tmp_path}/artifact",
        f"output_dir={critic}",
    )
    metrics = json.loads((critic / "critic_metrics.json").read_text())
    assert set(metrics["dev"]) <= {RETRIEVE, ISREL, ISSUP, ISUSE} and metrics["dev"]
    card = (tmp_path / "artifact" / "README.md").read_text()
    assert "## Command" in card and "critic_train.jsonl" in card and "sha256" in card

    out = tmp_path / "annotated"
    run_script(
        "annotate",
        sources,
        "model@critic=custom",
        f"critic.path={tiny_model_dir}",
        f"critic.adapter={tmp_path}/artifact",
        f"corpus.path={corpus}",
        "backend=hf",
        "k=2",
        f"output_dir={out}",
    )
    annotated = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    main = [r for r in annotated if "/" not in r["id"]]
    assert [r["id"] for r in main] == ["qa-a", "qa-b", "qa-c", "qa-d"]
    # extra rows of a seed (another supported passage, rejected passages) follow it and cite another passage
    assert all(r["id"].split("/")[1][:3] in ("sup", "rej") for r in annotated if r not in main)
    for row, seed in zip(main, rows):
        assert set(row) == {"instruction", "input", "output", "id", "dataset_name"}
        assert row["instruction"] == seed["question"]
        parsed = parse_output(row["output"])
        assert parsed.compose() == row["output"] and parsed.utility in T.UTILITY
        assert parsed.segments[0].decision in (T.RETRIEVAL, T.NO_RETRIEVAL)
        assert T.strip_reflection(row["output"]) == seed["answers"][0]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows"] == len(annotated) and sum(stats["tokens"][u] for u in T.UTILITY) == len(annotated)
    assert stats["truth"]["rows"] == len(annotated)
    # a re-run with other settings into the same directory is refused instead of mixing rows
    proc = run_script("annotate", sources, "model@critic=custom", f"critic.path={tiny_model_dir}",
                      f"critic.adapter={tmp_path}/artifact", f"corpus.path={corpus}", "backend=hf", "k=1",
                      f"output_dir={out}", check=False)
    assert proc.returncode == 2 and "k" in proc.stderr.strip().splitlines()[-1]

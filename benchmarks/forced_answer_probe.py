"""What a run's empty candidates would have answered: re-decode them with the reflection tokens banned at the first
answer position (diagnosis only; dev splits).

A generator whose reflection tokens were up-weighted in training often writes `[Irrelevant][Utility:5]` (or, without
a passage, `[Utility:5]`) and no answer at all. This takes a saved short-form Self-RAG run (`scripts/evaluate.py`
output with `decoding.score_all_paths=true`), and for each candidate with an empty answer decodes again from the
same prefix — prompt, passage block and the IsRel token the model wrote (or `[No Retrieval]`) — greedily, except
that the first generated token may not be a reflection token or EOS (transformers backend, fp32). The new
candidate keeps the saved IsRel probabilities; IsSup, IsUse and the sequence score come from the new continuation
(the sequence score counts the forced first token at its unconstrained log-probability). The run is then
re-chosen under its own weights (`selfrag.decoding.records.rerank`) and scored, and the reflection block printed,
and the new predictions written to OUTPUT_DIR/predictions.jsonl.

    python benchmarks/forced_answer_probe.py --run outputs/dev/popqa/RUN --adapter outputs/train_generator/X/final \\
        --output outputs/dev/popqa/RUN_forced

Used for docs/results/dev-retrain/README.md (fourteenth sitting); never run it on a test split.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from eval.reflection import reflection_diagnostics
from eval.tasks import get_task, read_golds, score_predictions
from selfrag import tokens as T
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.critique import RewardWeights, sequence_score
from selfrag.decoding.factory import build_selfrag
from selfrag.decoding.records import candidate_from_json, candidate_to_json, rerank
from selfrag.inputs import query_from_row
from selfrag.io import read_jsonl, write_jsonl_atomic
from selfrag.models.loading import ModelSpec
from selfrag.prompts import passage_block

BATCH = 16


class BanFirstStep(LogitsProcessor):
    """Bans `banned` at the first generated position and records, per step, the chosen token's log-probability
    under the unconstrained distribution and the reflection tokens' log-probabilities."""

    def __init__(self, banned: torch.Tensor, tracked: list[int]) -> None:
        self.banned, self.tracked = banned, tracked
        self.chosen: list[torch.Tensor] = []
        self.reflection: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logprobs = torch.log_softmax(scores.float(), dim=-1)
        if not self.chosen:
            scores = scores.clone()
            scores[:, self.banned] = -math.inf
        # greedy picks the argmax of the (banned) scores; its log-prob is read from the unconstrained distribution
        self.chosen.append(logprobs.gather(1, scores.argmax(dim=-1, keepdim=True)).squeeze(1))
        self.reflection.append(logprobs[:, self.tracked])
        return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a short-form Self-RAG evaluate output_dir")
    parser.add_argument("--adapter", type=Path, required=True, help="the generator adapter the run decoded with")
    parser.add_argument("--output", type=Path, required=True, help="where the re-chosen predictions.jsonl goes")
    parser.add_argument("--prompt", default="chat", help="the prompt style the run decoded with (default chat)")
    args = parser.parse_args()

    metrics = json.loads((args.run / "metrics.json").read_text())
    decoding = metrics["decoding"]
    weights = RewardWeights(decoding["w_rel"], decoding["w_sup"], decoding["w_use"], decoding["use_seqscore"])
    rows = list(read_jsonl(args.run / "predictions.jsonl"))
    inputs = {str(r["id"]): r for r in read_jsonl(metrics["data"]["path"])}
    spec = ModelSpec(name="generator", packaged="smollm2_135m_instruct", add_reflection_tokens=True,
                     adapter=str(args.adapter.resolve()), prompt=args.prompt)
    decoder = build_selfrag(spec, backend="hf", backend_options={"dtype": "float32"},
                            prompt_style=args.prompt, decoding=DecodingConfig(ndocs=decoding["ndocs"]))
    codec, backend = decoder.codec, decoder.backend
    tracked = list(codec.group(T.REFLECTION_TOKENS))
    eos = backend.eos_token_id
    stops = sorted({eos, *codec.stop_ids})

    jobs = []  # (row, candidate, prefix ids, IsRel token written or "", its log-probs)
    for i, row in enumerate(rows):
        prompt = decoder.prompt_ids(query_from_row(inputs[str(row["id"])], metrics["task"], where=str(row["id"]),
                                                   default_id=str(row["id"])))
        for j, saved in enumerate(row["candidates"]):
            if saved["answer"].strip():
                continue
            if saved["passage_id"] is None:
                jobs.append((i, j, prompt + (codec.ids[T.NO_RETRIEVAL],), "", []))
                continue
            isrel = T.find_tokens(saved["text"])[0]
            passage = candidate_from_json(saved).passage
            jobs.append((i, j, prompt + tuple(codec.encode(passage_block(passage))) + (codec.ids[isrel],), isrel,
                         [math.log(saved["probs"]["rel"][isrel])]))
    print(f"{len(jobs)} empty candidates of {sum(len(r['candidates']) for r in rows)} to re-decode", flush=True)

    for start in range(0, len(jobs), BATCH):
        batch = jobs[start:start + BATCH]
        width = max(len(job[2]) for job in batch)
        input_ids = torch.full((len(batch), width), backend.pad_token_id)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for r, job in enumerate(batch):
            input_ids[r, width - len(job[2]):] = torch.tensor(job[2])
            attention[r, width - len(job[2]):] = 1
        ban = BanFirstStep(torch.tensor([*tracked, eos]), tracked)
        config = GenerationConfig(do_sample=False, max_new_tokens=decoding["max_new_tokens"], eos_token_id=stops,
                                  pad_token_id=backend.pad_token_id)
        with torch.inference_mode():
            out = backend.model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config,
                                         logits_processor=LogitsProcessorList([ban]))
        chosen = torch.stack(ban.chosen, 1).tolist()
        reflection = torch.stack(ban.reflection, 1).tolist()
        for (i, j, _, isrel, head), ids, logprobs, tracks in zip(batch, out[:, width:].tolist(), chosen, reflection):
            n = next((k + 1 for k, tok in enumerate(ids) if tok in stops), len(ids))
            finished = n > 0 and ids[n - 1] in stops
            n -= int(finished and ids[n - 1] == eos)  # EOS is not part of the text (the pipeline's stops are)
            ids, logprobs, tracks = ids[:n], logprobs[:n], tracks[:n]

            def group_probs(group, ids=ids, tracks=tracks):
                at = codec.first_position(tuple(ids), group)
                return None if at is None else {t: math.exp(tracks[at][T.REFLECTION_TOKENS.index(t)]) for t in group}

            text = isrel + codec.decode(ids)
            new = dataclasses.replace(candidate_from_json(rows[i]["candidates"][j]), text=text,
                                      answer=T.strip_reflection(text), seq=sequence_score(head + logprobs),
                                      sup_probs=group_probs(T.ISSUP_GROUP), use_probs=group_probs(T.ISUSE_GROUP),
                                      finished=finished)
            rows[i]["candidates"][j] = candidate_to_json(new, weights)
        print(f"{start + len(batch)}/{len(jobs)}", flush=True)
    backend.close()

    rows = [rerank(row, weights) for row in rows]
    task = get_task(metrics["task"])
    golds = read_golds(task, metrics["data"]["gold"])
    per_question = score_predictions(task, rows, golds)
    block = reflection_diagnostics(task, rows, golds, per_question, weights)
    args.output.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(args.output / "predictions.jsonl", rows)
    primary = task.metrics[0]
    print(f"{primary}: {sum(s[primary] for s in per_question.values()) / len(per_question):.3f} "
          f"(saved run: {metrics[primary]:.3f}); empty answers left: "
          f"{sum(not c['answer'].strip() for r in rows for c in r['candidates'])}")
    print(json.dumps({k: v for k, v in block.items() if k not in ("reliability", "retrieval_usefulness")}, indent=1))


if __name__ == "__main__":
    main()

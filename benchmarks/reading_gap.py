"""Where a generator loses against its base when both read the same single passage (PopQA dev, diagnosis only).

Takes a standard-RAG run of the base with `decoding.ndocs=1` (its `predictions.jsonl` holds the one BM25 passage each
question saw) and decodes the generator from that same passage twice, with the transformers backend in fp32:

- `free`: as the Self-RAG decoder does, the generator writes its IsRel token and then its answer;
- `forced_relevant`: `[Relevant]` is appended after the passage, so the answer is always written as if read from it.

It prints, over the same questions: the base's match, the base's match on its first sentence only (the generator was
trained on first-sentence answers, and a longer answer names more gold strings), and the generator's two matches.
The steps between them split the gap: answer length, reading, and answers written from memory after `[Irrelevant]`.
Used for docs/results/dev-retrain/README.md; never run it on a test split.

    python benchmarks/reading_gap.py --base-run outputs/dev/popqa/base_standard_rag_k1 \
        --adapter artifacts/selfrag-smollm2-135m --data data/splits/popqa_longtail/dev.jsonl
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from critic.self_distill import split_sentences
from eval.metrics import match
from selfrag import tokens as T
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.factory import build_selfrag
from selfrag.io import read_jsonl
from selfrag.models.loading import ModelSpec
from selfrag.prompts import passage_block
from selfrag.types import Passage, Query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-run", type=Path, required=True, help="a standard_rag run of the base, ndocs=1")
    parser.add_argument("--adapter", type=Path, required=True, help="the generator's LoRA adapter directory")
    parser.add_argument("--data", type=Path, required=True, help="the split the run answered (gold answers)")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    args = parser.parse_args()

    gold = {str(row["id"]): row["answers"] for row in read_jsonl(args.data)}
    base = list(read_jsonl(args.base_run / "predictions.jsonl"))
    if any(len(row["docs"]) != 1 for row in base):
        parser.error(f"{args.base_run}: every prediction must hold exactly one passage (run it with decoding.ndocs=1)")
    spec = ModelSpec(name="generator", packaged="smollm2_135m_instruct", add_reflection_tokens=True,
                     adapter=str(args.adapter.resolve()), prompt="chat")
    decoder = build_selfrag(spec, backend="hf", backend_options={"batch_size": 25, "dtype": "float32"},
                            prompt_style="chat", decoding=DecodingConfig(ndocs=1))
    codec = decoder.codec

    def score(answers: list[str]) -> float:
        return sum(match(a, gold[str(row["id"])]) for a, row in zip(answers, base, strict=True)) / len(base)

    print(f"questions: {len(base)}")
    print(f"base, its whole answer:        {score([row['answer'] for row in base]):.1%}")
    print(f"base, first sentence only:     {score([split_sentences(row['answer'])[0] for row in base]):.1%}")
    prompts = []
    for row in base:
        doc = row["docs"][0]
        passage = Passage(id=str(doc["id"]), title=doc.get("title", ""), text=doc["text"])
        query = Query(id=str(row["id"]), question=row["question"], instruction=row["question"])
        prompts.append(decoder.prompt_ids(query) + codec.encode(passage_block(passage)))
    for name, suffix in (("free", ()), ("forced_relevant", (codec.ids[T.RELEVANT],))):
        start = time.perf_counter()
        outputs = decoder.backend.generate([p + suffix for p in prompts], max_new_tokens=args.max_new_tokens,
                                           stop_token_ids=codec.stop_ids)
        answers = [T.strip_reflection(codec.decode(o.token_ids)) for o in outputs]
        empty = sum(not a.strip() for a in answers)
        print(f"generator, {name + ':':<20}{score(answers):.1%}   (empty {empty}, "
              f"{time.perf_counter() - start:.0f} s)")
    decoder.backend.close()


if __name__ == "__main__":
    main()

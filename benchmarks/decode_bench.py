"""Decoder speed: Self-RAG scoring our way against the reference code's way and against plain generation.

Every way decodes the same candidates (N questions x ndocs passages, greedy, max_new_tokens each) on one engine:

- plain:     the candidates' generation alone, no log-probabilities at all (the floor);
- reference: the same generation asking for log-probabilities over the whole vocabulary at every generated token,
             which is how the paper's code reads reflection-token probabilities (logprobs=32016 / 5000);
- ours:      `SelfRAG.predict` (mode=always): the same generation with only the chosen token's log-prob, plus exact
             reflection-group scores read by one-token `logprob_token_ids` requests (vLLM) or one forward pass (hf).

Reported: seconds and questions/second of each way in one run, and the ratios ours/reference and plain/ours.

    python benchmarks/decode_bench.py --backend vllm --questions 8 --ndocs 2 --max-new-tokens 50
    python benchmarks/decode_bench.py --backend hf --device cuda --random-weights --questions 64 --ndocs 5
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from selfrag import tokens as T
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.pipeline import SelfRAG
from selfrag.inputs import iter_queries
from selfrag.prompts import PromptFormatter, passage_block

ROOT = Path(__file__).resolve().parents[1]


def _checkpoint(args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    from selfrag.models.loading import ModelSpec, resolve_checkpoint

    return resolve_checkpoint(ModelSpec("smollm2_135m_instruct", packaged="smollm2_135m_instruct",
                                        add_reflection_tokens=True))


def _random_weights_copy(checkpoint: str, out: Path) -> str:
    """Same config and tokenizer, random weights (for machines the real weights cannot reach)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(checkpoint))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(out)
    return str(out)


def _candidate_prompts(decoder: SelfRAG, queries, ndocs: int) -> list[tuple[int, ...]]:
    prompts = []
    for query in queries:
        base = decoder.prompt_ids(query)
        for passage in query.passages[:ndocs]:
            prompts.append(base + decoder.codec.encode(passage_block(passage)))
    return prompts


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _measure(ways: dict, repeats: int) -> dict[str, float]:
    """Warm every way up once, then time them interleaved `repeats` times; the median of each.

    Interleaving spreads machine noise over all ways instead of charging it to whichever ran during a slow spell.
    """
    for fn in ways.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, fn in ways.items():
            samples[name].append(_timed(fn))
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_vllm(args, checkpoint, tokenizer, queries, config) -> dict:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from selfrag.decoding.vllm_backend import VLLMBackend

    backend = VLLMBackend(checkpoint, dtype=args.dtype, engine_options={"max_logprobs": -1, **args.engine_options})
    decoder = SelfRAG(backend, tokenizer, config, prompt=PromptFormatter(args.prompt))
    prompts = [TokensPrompt(prompt_token_ids=list(p)) for p in _candidate_prompts(decoder, queries, args.ndocs)]
    vocab = len(tokenizer)
    reflection = [decoder.codec.ids[t] for t in T.REFLECTION_TOKENS]

    def plain():
        return backend.llm.generate(prompts, SamplingParams(temperature=0, max_tokens=args.max_new_tokens),
                                    use_tqdm=False)

    def reference():
        outputs = backend.llm.generate(
            prompts, SamplingParams(temperature=0, max_tokens=args.max_new_tokens, logprobs=vocab), use_tqdm=False
        )
        # what the reference code then does: look the reflection tokens up in each position's logprob dict
        found = 0
        for output in outputs:
            for step in output.outputs[0].logprobs:
                found += sum(1 for t in reflection if t in step)
        return found

    ways = {"plain": plain, "ours": lambda: decoder.predict(queries)}
    timings = _measure(ways, args.repeats)
    if args.reference:
        # far slower: timed once (after the others), without a separate warm-up
        timings["reference"] = _timed(reference)
    backend.close()
    return timings


def bench_hf(args, checkpoint, tokenizer, queries, config) -> dict:
    import torch

    from selfrag.decoding.hf_backend import HFBackend

    backend = HFBackend(checkpoint, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    decoder = SelfRAG(backend, tokenizer, config, prompt=PromptFormatter(args.prompt))
    prompts = _candidate_prompts(decoder, queries, args.ndocs)
    model, pad = backend.model, backend.pad_token_id

    def raw_generate(**options):
        """Plain batched `generate` over the candidate prompts (left-padded), in the given batch size."""
        for start in range(0, len(prompts), args.batch_size):
            batch = prompts[start : start + args.batch_size]
            width = max(len(p) for p in batch)
            ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in batch], device=backend.device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=backend.device)
            with torch.inference_mode():
                yield model.generate(input_ids=ids, attention_mask=mask, do_sample=False, pad_token_id=pad,
                                     max_new_tokens=args.max_new_tokens, **options)

    def plain():
        for _ in raw_generate():
            pass
        if backend.device.type == "cuda":
            torch.cuda.synchronize()

    def ours():
        decoder.predict(queries)
        if backend.device.type == "cuda":
            torch.cuda.synchronize()

    timings = _measure({"plain": plain, "ours": ours}, args.repeats)
    if args.reference:
        # the reference way on transformers: full-vocabulary log-probs of every generated token moved to Python
        def reference():
            for out in raw_generate(output_logits=True, return_dict_in_generate=True):
                for step in out.logits:
                    torch.log_softmax(step.float(), -1).cpu().tolist()

        timings["reference"] = _timed(reference)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--model", help="checkpoint dir with reflection tokens (default: packaged SmolLM2 + tokens)")
    parser.add_argument("--random-weights", action="store_true", help="same shape and tokenizer, random weights")
    parser.add_argument("--data", default=str(ROOT / "data/popqa/popqa_longtail_w_gs_first100.jsonl"))
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--ndocs", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--prompt", default="selfrag", choices=["selfrag"])
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per way (median reported)")
    parser.add_argument("--engine-options", type=json.loads, default={}, help='JSON, e.g. {"enforce_eager": true}')
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    checkpoint = _checkpoint(args)
    if args.random_weights:
        import tempfile

        checkpoint = _random_weights_copy(checkpoint, Path(tempfile.mkdtemp(prefix="bench-model-")))
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    queries = list(iter_queries(args.data, "popqa", limit=args.questions))
    config = DecodingConfig(mode="always", ndocs=args.ndocs, max_new_tokens=args.max_new_tokens)
    run = bench_vllm if args.backend == "vllm" else bench_hf
    timings = run(args, checkpoint, tokenizer, queries, config)
    n = len(queries)
    result = {
        "backend": args.backend, "questions": n, "repeats": args.repeats, "ndocs": args.ndocs,
        "max_new_tokens": args.max_new_tokens,
        "model": Path(checkpoint).name, "random_weights": args.random_weights,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "questions_per_second": {k: round(n / v, 3) for k, v in timings.items()},
        "ours_over_plain_time": round(timings["ours"] / timings["plain"], 3),
    }
    if "reference" in timings:
        result["ours_speedup_over_reference"] = round(timings["reference"] / timings["ours"], 2)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    assert math.isfinite(timings["ours"])


if __name__ == "__main__":
    main()

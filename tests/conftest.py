"""Test-wide settings: no hub access, no non-loopback network, caches in a temporary directory, GPU tests skipped
without CUDA."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

# The suite never writes into the user's caches (~/.cache/selfrag's converted and merged models, vLLM's compile
# cache, ...): everything goes under one temporary directory, removed at the end. SELFRAG_TEST_CACHE names a
# directory to keep and reuse between runs instead (faster repeated runs; still not the user's cache).
_KEEP_CACHE = bool(os.environ.get("SELFRAG_TEST_CACHE"))
TEST_CACHE = Path(os.environ.get("SELFRAG_TEST_CACHE") or tempfile.mkdtemp(prefix="selfrag-test-cache-"))
os.environ["SELFRAG_CACHE"] = str(TEST_CACHE / "selfrag")
os.environ["XDG_CACHE_HOME"] = str(TEST_CACHE)
os.environ["VLLM_CACHE_ROOT"] = str(TEST_CACHE / "vllm")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    # vLLM's engine talks to its worker over local sockets; anything else would be a hub download or a leak.
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost", "0.0.0.0"):
            raise OSError(f"tests must not use the network (tried to connect to {address!r})")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny Llama with the reflection tokens, trained for a few steps to emit Self-RAG-formatted answers."""
    from tests.helpers import build_tiny_selfrag_model

    return str(build_tiny_selfrag_model(tmp_path_factory.mktemp("tiny-selfrag")))


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _KEEP_CACHE:
        shutil.rmtree(TEST_CACHE, ignore_errors=True)

"""Test-wide settings: no hub access, no non-loopback network, GPU tests skipped without CUDA."""

from __future__ import annotations

import os
import socket

import pytest

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

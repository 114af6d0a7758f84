"""Self-RAG: reflection tokens, exact critique scoring, adaptive retrieval and segment beam search.

The library has no Hydra and no CLI; `scripts/` are thin entry points over it. Start at `selfrag.decoding.pipeline`.
"""

__version__ = "0.1.0"

"""Retrieval: the retriever protocol used by decoding (corpora, dense/BM25 indexes and fusion build on it)."""

"""Self-RAG decoding: backends, exact critique scoring, short-form selection and long-form segment beam search."""

"""Model loading: the packaged SmolLM2 base, reflection-token vocabulary, and checkpoints ready for any backend."""

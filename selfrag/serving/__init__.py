"""Serving Self-RAG over HTTP: an OpenAI-compatible chat endpoint with per-request reward weights, re-ranking of a
returned trace without the model, and a page that shows and re-weights a trace in the browser.

- `config`: the server's settings (`conf/server/default.yaml`) and the per-request decoding settings, checked by the
  same code as the CLI's (`selfrag.decoding.config.DecodingConfig`);
- `schemas`: the request bodies (pydantic);
- `batcher`: collects concurrent requests for a short window and hands them, as one batch, to one worker thread;
- `engine`: turns a batch into decoder calls (one per group of requests that can share one) and traces;
- `app`: the FastAPI app (`create_app`), its errors, limits and bearer-key check, and `serve` (uvicorn);
- `static/`: the trace page served at `/`.

This package sits above `selfrag.decoding` (it imports the decoder; nothing in the library imports it). How to run
it and what each endpoint takes: docs/serving.md.
"""

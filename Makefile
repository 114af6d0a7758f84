# Two entry points (README): `make demo` and `make test`. Both create .venv from the pinned CPU set on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/cpu.txt setup.cfg | sha1sum | cut -c1-12)

.PHONY: setup demo serve test test-fast lint lock

$(STAMP): requirements/cpu.txt setup.cfg
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements/cpu.txt
	@# offline-friendly editable install from the pinned setuptools + wheel (no build-isolation download)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

# The main job: Self-RAG decoding of 100 PopQA questions (static passages) with the embedded default model on the
# vLLM CPU engine in eager mode (no compilation: starts ~60 s sooner, decodes ~20% slower, the better trade for 100
# questions; the transformers backend, said so, where vLLM is not installed), answers printed as they come;
# each run writes its own outputs/demo/<time>/. Extra Hydra overrides go in ARGS, e.g.
# make demo ARGS="data.limit=10 decoding.mode=always". Timings: docs/benchmarks.md (benchmarks/demo_bench.py).
demo: $(STAMP)
	@backend="backend=vllm +backend.engine_options.enforce_eager=true"; \
	$(PY) -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)" || \
	  { backend=backend=hf; echo "vLLM is not installed: the demo runs on the slower transformers backend"; }; \
	$(PY) scripts/infer.py $$backend show_answers=8 output_dir=outputs/demo/$$(date +%Y%m%d-%H%M%S) $(ARGS)

# Serve the embedded model: OpenAI-compatible API (per-request weights, traces) and the trace page on
# http://127.0.0.1:8000/ (docs/serving.md). Overrides in ARGS, e.g. make serve ARGS="server.port=8080 backend=vllm"
serve: $(STAMP)
	$(PY) scripts/serve.py $(ARGS)

# The whole suite, vLLM (CPU build) tests included; GPU tests skip themselves without CUDA.
test: $(STAMP)
	$(PY) -m pytest $(ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not vllm and not slow" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Re-pin requirements/cpu.txt from the current .venv (after installing a new dependency into it).
lock:
	$(PY) -m pip freeze --exclude-editable | sed -e 's/^torch==2.13.0+cpu/torch==2.13.0/' > requirements/cpu.lock.new
	@echo "review requirements/cpu.lock.new, keep the header of requirements/cpu.txt, then replace it"

"""selfrag.overrides: which override failures get the one-line "did you mean" and which are left to Hydra."""

from selfrag.overrides import override_problem


def test_unknown_keys_and_options_name_the_closest_real_one():
    assert override_problem("infer", ["decoding.ndocs=3"]) is None
    assert override_problem("infer", ["decoding.ndcos=3"]) == (
        "decoding.ndcos: no such setting in conf/infer.yaml; did you mean decoding.ndocs? (to add a new key on "
        "purpose: +decoding.ndcos=...)")
    assert override_problem("evaluate", ["retriever=bm2"]).startswith(
        "retriever=bm2: no such option in conf/retriever/; did you mean retriever=bm25? choices: bm25, dense")
    assert "did you mean" not in override_problem("infer", ["zzzz=1"])  # nothing close: no guess


def test_a_real_key_that_fails_for_another_reason_is_left_to_hydra():
    # engine_options exists; a dict merged into it fails in Hydra ("not in struct"), which is not a typo
    assert override_problem("infer", ["backend=vllm", "backend.engine_options={enforce_eager: true}"]) is None
    assert override_problem("infer", ["backend=vllm", "+backend.engine_options.enforce_eager=true"]) is None

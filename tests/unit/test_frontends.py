"""Retrieval front-ends (rewrite, HyDE, fusion), their cache, critic/generator reranking, the corrective retry and the
retrieval budget: scripted writers, retrievers and backends, results worked by hand."""

import pytest

from selfrag import tokens as T
from selfrag.decoding.budget import budget_threshold
from selfrag.decoding.config import DecodingConfig
from selfrag.decoding.pipeline import SelfRAG
from selfrag.decoding.records import prediction_to_json
from selfrag.io import InputError
from selfrag.retrieval.factory import front_end_config, with_search_queries, wrap_retriever
from selfrag.retrieval.frontends import (
    FrontEndRetriever,
    FrontEndSettings,
    WrittenTextCache,
    parse_variants,
)
from selfrag.retrieval.rerank import RerankingRetriever, rerank_by
from selfrag.types import Passage, Query
from tests.helpers import ScriptedBackend, tokenizer_with_reflection_tokens


def P(pid):
    return Passage(pid, pid, f"text of {pid}")


class ScriptedWriter:
    """Answers each prompt from a dict keyed by the question (the text after 'Question: '); counts calls."""

    name = "scripted"

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def write(self, prompts, max_new_tokens):
        self.calls.append(list(prompts))
        return [self.answers[p.rsplit("Question: ", 1)[1]] for p in prompts]


class TableRetriever:
    """Returns a fixed ranked list per query string; records every query it was asked."""

    def __init__(self, table):
        self.table = table
        self.asked = []

    def batch_search(self, queries, k):
        self.asked.append((list(queries), k))
        return [[P(pid) for pid in self.table.get(q, [])][:k] for q in queries]


def test_rewrite_searches_with_the_written_query_and_records_it():
    writer = ScriptedWriter({"who wrote hamlet?": "hamlet author\nignored second line"})
    inner = TableRetriever({"hamlet author": ["a", "b", "c"]})
    front = FrontEndRetriever(inner, writer, FrontEndSettings(kind="rewrite"))
    assert [[p.id for p in r] for r in front.batch_search(["who wrote hamlet?"], 2)] == [["a", "b"]]
    assert inner.asked == [(["hamlet author"], 2)]
    assert front.queries_for("who wrote hamlet?") == ["hamlet author"]
    rows = with_search_queries([{"question": "who wrote hamlet?"}, {"question": "other"}], front)
    assert rows == [{"question": "who wrote hamlet?", "queries": ["hamlet author"]}, {"question": "other"}]


def test_an_empty_rewrite_falls_back_to_the_question():
    front = FrontEndRetriever(TableRetriever({"q?": ["x"]}), ScriptedWriter({"q?": "  "}),
                              FrontEndSettings(kind="rewrite"))
    assert [p.id for p in front.batch_search(["q?"], 1)[0]] == ["x"]


@pytest.mark.parametrize("include_question, query", [(True, "q? Hamlet was written by Shakespeare."),
                                                     (False, "Hamlet was written by Shakespeare.")])
def test_hyde_searches_with_the_hypothetical_passage(include_question, query):
    writer = ScriptedWriter({"q?": "Hamlet was written by Shakespeare."})
    inner = TableRetriever({query: ["h"]})
    front = FrontEndRetriever(inner, writer, FrontEndSettings(kind="hyde", include_question=include_question))
    assert [p.id for p in front.batch_search(["q?"], 3)[0]] == ["h"]
    assert inner.asked == [([query], 3)]


def test_parse_variants_strips_marks_and_drops_repeats():
    text = "1. first query\n- Second\n\n\"first query\"\nQ?\n* third\nfourth"
    assert parse_variants(text, "q?", 3) == ["first query", "Second", "third"]


def test_fusion_fuses_the_question_and_its_variants_by_weighted_rrf():
    # n_queries=3: the question and two variants; weights [2, 1]: the question counts twice; rrf_k=1 so the sums are
    # easy: score(d) = sum_i w_i / (1 + rank_i(d)).
    writer = ScriptedWriter({"q?": "v1\nv2\nv3 (beyond n_queries - 1: dropped)"})
    inner = TableRetriever({"q?": ["a", "b"], "v1": ["b", "c"], "v2": ["c", "a"]})
    settings = FrontEndSettings(kind="fusion", n_queries=3, weights=(2.0, 1.0), rrf_k=1, candidates=5)
    front = FrontEndRetriever(inner, writer, settings)
    fused = front.batch_search(["q?"], 3)[0]
    # a: 2/2 + 1/3 = 1.3333; b: 2/3 + 1/2 = 1.1667; c: 1/3 + 1/2 = 0.8333
    assert [p.id for p in fused] == ["a", "b", "c"]
    assert [round(p.score, 4) for p in fused] == [1.3333, 1.1667, 0.8333]
    assert inner.asked == [(["q?", "v1", "v2"], 5)]  # every query in one batched call, `candidates` each
    assert front.queries_for("q?") == ["q?", "v1", "v2"]
    assert "2 different" in writer.calls[0][0]  # the prompt asks for n_queries - 1 variants


def test_written_queries_are_cached_per_writer_prompt_and_question(tmp_path):
    cache = WrittenTextCache(tmp_path / "written.sqlite")
    writer = ScriptedWriter({"q1?": "one", "q2?": "two"})
    inner = TableRetriever({"one": ["1"], "two": ["2"]})
    front = FrontEndRetriever(inner, writer, FrontEndSettings(kind="rewrite"), cache)
    front.batch_search(["q1?", "q2?", "q1?"], 1)
    assert writer.calls == [[
        "Rewrite the question below as a short web search query. Reply with the query only.\n\nQuestion: q1?",
        "Rewrite the question below as a short web search query. Reply with the query only.\n\nQuestion: q2?",
    ]]  # a repeated question is written once
    again = FrontEndRetriever(inner, writer, FrontEndSettings(kind="rewrite"), WrittenTextCache(tmp_path /
                                                                                                "written.sqlite"))
    assert [p.id for p in again.batch_search(["q2?"], 1)[0]] == ["2"]
    assert len(writer.calls) == 1  # served from the cache file
    hyde = FrontEndRetriever(inner, writer, FrontEndSettings(kind="hyde"), cache)
    hyde.batch_search(["q1?"], 1)
    assert len(writer.calls) == 2  # another prompt is another key
    assert len(cache) == 3


def test_rerank_orders_candidates_by_relevance_and_keeps_ties_in_retrieval_order():
    class Scorer:
        def __init__(self):
            self.pairs = []

        def relevance(self, pairs):
            self.pairs.append([(q, p.id) for q, p in pairs])
            return [{"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.5}[p.id] for _, p in pairs]

    inner = TableRetriever({"q?": ["a", "b", "c", "d"], "r?": ["d", "a"]})
    scorer = Scorer()
    ranked = RerankingRetriever(inner, scorer, candidates=4).batch_search(["q?", "r?"], 3)
    assert [[p.id for p in r] for r in ranked] == [["b", "c", "d"], ["d", "a"]]
    assert ranked[0][0].score == 0.9
    assert inner.asked == [(["q?", "r?"], 4)]
    assert len(scorer.pairs) == 1 and len(scorer.pairs[0]) == 6  # one batched scoring call
    assert [p.id for p in rerank_by([P("x"), P("y")], [0.2, 0.2], 1)] == ["x"]


def test_rerank_judges_against_the_question_not_the_written_query():
    class Scorer:
        def relevance(self, pairs):
            assert {q for q, _ in pairs} == {"q?"}
            return [1.0 for _ in pairs]

    front = FrontEndSettings(kind="rewrite")
    config = front_end_config({"name": "bm25", "frontend": "rewrite", "rerank": "generator"})[1]
    assert config.frontend == front and config.rerank == "generator"
    wrapped = wrap_retriever(TableRetriever({"rewritten": ["a"]}), config,
                             writer=ScriptedWriter({"q?": "rewritten"}), scorer=Scorer())
    assert [p.id for p in wrapped.batch_search(["q?"], 1)[0]] == ["a"]
    assert wrapped.queries_for("q?") == ["rewritten"]


@pytest.mark.parametrize("options, message", [
    ({"frontend": "hide"}, "retriever.frontend"),
    ({"frontend": "fusion", "frontend_options": {"n_queries": 1}}, "retriever.frontend_options.n_queries"),
    ({"frontend_options": {"weights": "2"}}, "retriever.frontend_options.weights"),
    ({"frontend_options": {"weights": [0, 0]}}, "retriever.frontend_options.weights"),
    ({"rerank": "cross_encoder"}, "retriever.rerank_options.model_path"),
    ({"rerank": "colbert"}, "retriever.rerank"),
    ({"frontend_options": {"backend": "tgi"}}, "retriever.frontend_options.backend"),
])
def test_front_end_settings_are_checked_naming_the_key(options, message):
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        front_end_config({"name": "bm25", **options})


def test_front_end_keys_are_split_from_the_retrievers_own():
    own, config = front_end_config({"name": "bm25", "k": 5, "frontend": "none", "frontend_options": {},
                                    "rerank": "none", "rerank_options": {}})
    assert own == {"name": "bm25", "k": 5} and not config.active


# ---- the retrieval budget -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("budget, expected", [(0.5, 0.4), (0.3, 0.7), (0.25, 0.7), (0.0, 0.9), (1.0, 0.0),
                                              (0.75, 0.1)])
def test_budget_threshold_lets_at_most_that_share_retrieve(budget, expected):
    p = [0.1, 0.9, 0.4, 0.7]
    threshold = budget_threshold(p, budget)
    assert threshold == expected
    assert sum(x > threshold for x in p) / len(p) <= budget


def test_budget_threshold_with_ties_stays_within_budget():
    # four questions tie at 0.5: a threshold below 0.5 would let all five retrieve; at 0.5 only the 0.8 one does
    assert budget_threshold([0.8, 0.5, 0.5, 0.5, 0.5], 0.6) == 0.5


def test_budget_needs_a_dev_file_and_adaptive_mode():
    with pytest.raises(InputError, match="decoding.budget_data"):
        DecodingConfig(retrieval_budget=0.3)
    with pytest.raises(InputError, match="decoding.mode"):
        DecodingConfig(retrieval_budget=0.3, budget_data="dev.jsonl", mode="always")
    with pytest.raises(InputError, match="decoding.retrieval_budget"):
        DecodingConfig(retrieval_budget=1.5, budget_data="dev.jsonl")


def test_fit_budget_sets_the_threshold_from_the_dev_questions(tmp_path):
    from selfrag.decoding.budget import fit_budget

    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(f'{{"id": {i}, "question": "who is {w} ?", "answers": ["x"]}}\n'
                           for i, w in enumerate(["alice", "bob", "carol", "dave"])))
    p_by_name = {"alice": 0.9, "bob": 0.2, "carol": 0.6, "dave": 0.4}

    def probs(prefix, group):
        assert group == T.RETRIEVE_GROUP
        p = next(v for k, v in p_by_name.items() if k in prefix)
        return (p, 1 - p)

    tokenizer = tokenizer_with_reflection_tokens()
    backend = ScriptedBackend(tokenizer, lambda _: "</s>", probs)
    decoder = SelfRAG(backend, tokenizer, DecodingConfig(retrieval_budget=0.5, budget_data=str(dev)))
    record = fit_budget(decoder, "popqa")
    # sorted: 0.9, 0.6, 0.4, 0.2; at most 2 of 4 above the threshold -> the third highest, 0.4
    assert decoder.config.threshold == pytest.approx(0.4)
    assert record["budget_retrieval_rate"] == 0.5 and record["budget_questions"] == 4


# ---- the corrective retry -------------------------------------------------------------------------------------------

GOOD = Passage("g", "alice", "alice is a singer .")
WEAK_1 = Passage("w1", "bob", "bob is an actor .")
WEAK_2 = Passage("w2", "carol", "carol is a politician .")


def _title(text):
    return text.rsplit("<paragraph>", 1)[1].split()[0] if "<paragraph>" in text else None


def _probs(prefix, group):
    if group == T.RETRIEVE_GROUP:
        return (0.9, 0.1)
    if group == T.ISREL_GROUP:
        return (0.9, 0.1) if _title(prefix) == "alice" else (0.2, 0.8)
    if group == T.ISSUP_GROUP:
        return (1.0, 0.0, 0.0)
    return (0, 0, 0, 0, 1.0)


def _continue(prompt):
    if _title(prompt) == "alice":
        return "[Relevant] alice is a singer . [Fully supported] [Utility:5] </s>"
    return "[Irrelevant] no . [Utility:1] </s>"


def _corrective_decoder(table, threshold=0.5):
    tokenizer = tokenizer_with_reflection_tokens()
    backend = ScriptedBackend(tokenizer, _continue, _probs)
    retriever = TableRetriever(table)
    rewrites = []

    def rewriter(questions):
        rewrites.append(list(questions))
        return [f"rewritten {q}" for q in questions]

    config = DecodingConfig(mode="always", ndocs=2, corrective=True, corrective_threshold=threshold)
    return SelfRAG(backend, tokenizer, config, retriever=retriever, rewriter=rewriter), retriever, rewrites


def test_corrective_retry_runs_once_when_every_passage_is_judged_irrelevant():
    query = Query(id="1", question="who is alice ?", instruction="who is alice ?")
    decoder, retriever, rewrites = _corrective_decoder({
        "who is alice ?": ["w1", "w2"], "rewritten who is alice ?": ["w2", "g"],
    })
    retriever.table = {q: ids for q, ids in retriever.table.items()}
    by_id = {"g": GOOD, "w1": WEAK_1, "w2": WEAK_2}
    retriever.batch_search = lambda qs, k: [[by_id[i] for i in retriever.table[q]][:k] for q in qs]
    [prediction] = decoder.predict([query])
    assert rewrites == [["who is alice ?"]]  # one retry, one rewrite
    assert [c.passage.id for c in prediction.candidates] == ["w1", "w2", "g"]  # w2 was tried already: not redone
    assert prediction.answer == "alice is a singer ."
    assert prediction_to_json(prediction, decoder.config.weights)["corrective"] == {
        "query": "rewritten who is alice ?", "passage_ids": ["g"]}


def test_corrective_retry_is_skipped_when_a_passage_is_relevant_and_bounded_to_one():
    by_id = {"g": GOOD, "w1": WEAK_1, "w2": WEAK_2}
    decoder, retriever, rewrites = _corrective_decoder({})
    # first search: a relevant passage -> no retry
    retriever.batch_search = lambda qs, k: [[GOOD, WEAK_1] for _ in qs]
    [kept] = decoder.predict([Query(id="1", question="who is alice ?", instruction="who is alice ?")])
    assert rewrites == [] and "corrective" not in prediction_to_json(kept, decoder.config.weights)
    # every search weak, the retry's too: still exactly one retry per question
    retriever.batch_search = lambda qs, k: [[by_id["w1"]] if not q.startswith("rewritten") else [by_id["w2"]]
                                            for q in qs]
    [weak] = decoder.predict([Query(id="2", question="who is bob ?", instruction="who is bob ?")])
    assert rewrites == [["who is bob ?"]]
    assert [c.passage.id for c in weak.candidates] == ["w1", "w2"]
    assert weak.corrective == {"query": "rewritten who is bob ?", "passage_ids": ["w2"]}


def test_corrective_retry_that_finds_only_tried_passages_calls_no_model():
    decoder, retriever, rewrites = _corrective_decoder({})
    retriever.batch_search = lambda qs, k: [[WEAK_1] for _ in qs]  # the rewrite finds the same weak passage
    [weak] = decoder.predict([Query(id="3", question="who is bob ?", instruction="who is bob ?")])
    assert rewrites == [["who is bob ?"]] and weak.corrective == {"query": "rewritten who is bob ?", "passage_ids": []}
    assert [c.passage.id for c in weak.candidates] == ["w1"]
    assert all(decoder.backend.generate_calls), "the backend was called with an empty batch"


def test_rerank_by_the_embedded_generator_uses_its_model_config(monkeypatch):
    """`rerank=generator` with no model scores with the embedded generator exactly as `model=selfrag_smollm2_135m`
    decodes with it: the same adapter and the prompt style it was trained with (it was built with the old
    `### Instruction` prompt while the model was trained in its chat template)."""
    from omegaconf import OmegaConf

    import selfrag.decoding.factory as factory
    import selfrag.overrides  # noqa: F401  (registers the resolver the model configs use)
    from selfrag.decoding.frontend_models import ARTIFACTS, open_scorer

    built = {}
    monkeypatch.setattr(factory, "build_selfrag", lambda spec, **kw: built.setdefault("spec", spec))
    _, config = front_end_config({"rerank": "generator"})
    open_scorer(config)
    conf = OmegaConf.load(ARTIFACTS.parent / "conf" / "model" / "selfrag_smollm2_135m.yaml")
    spec = built["spec"]
    assert (spec.prompt, spec.packaged, spec.add_reflection_tokens) == (conf.prompt, conf.packaged,
                                                                        conf.add_reflection_tokens)
    assert spec.prompt == "chat" and spec.adapter == str(ARTIFACTS / "selfrag-smollm2-135m")

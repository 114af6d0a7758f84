"""eval.tasks and eval.components: gold reading in the official formats, per-task scoring, ALCE citations with a
fake NLI scorer, and `Unavailable` flowing from a missing model to the report."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import pytest

from eval.components import (
    ComponentUnavailable,
    FactScoreResult,
    NLIFactScorer,
    TransformersNLIScorer,
    Unavailable,
    citation_scores,
    factscore_from_counts,
    find_citations,
    remove_citations,
    split_sentences,
)
from eval.stats import metric_scores
from eval.tasks import TASK_NAMES, format_metrics, get_task, jsonable, read_golds, score_predictions
from selfrag.io import InputError

ROOT = Path(__file__).resolve().parents[2]


def _real_rows(relative: str, lines: list[int]) -> list[dict]:
    """Selected 1-based lines of a data file, from the repository's data/ or the shared data beside the checkout;
    skips the test when neither has the file."""
    for base in (ROOT / "data", ROOT.parent / "shared" / "data"):
        path = base / relative
        if path.is_file():
            wanted = set(lines)
            with path.open(encoding="utf-8") as handle:
                rows = {i: json.loads(line) for i, line in enumerate(handle, start=1) if i in wanted}
                return [rows[i] for i in lines]
    pytest.skip(f"{relative} is not available here")


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _pred(row_id, answer, **extra):
    return {"id": row_id, "answer": answer, **extra}


class WordNLI:
    """Fake NLI: the premise entails the hypothesis iff every word of the hypothesis occurs in the premise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def entails(self, premise: str, hypothesis: str) -> bool:
        self.calls.append((premise, hypothesis))
        words = lambda text: set(re.findall(r"[a-z]+", text.lower()))  # noqa: E731
        return words(hypothesis) <= words(premise)


DOCS = [
    {"id": "1", "title": "Paris", "text": "Paris is the capital of France."},
    {"id": "2", "title": "Eiffel Tower", "text": "The Eiffel Tower is a landmark in Paris."},
    {"id": "3", "title": "Bananas", "text": "Bananas are yellow."},
]


# --- registry -------------------------------------------------------------------------------------------------------


def test_registry_knows_the_six_tasks_and_rejects_others():
    assert TASK_NAMES == ("popqa", "triviaqa", "pubhealth", "arc_challenge", "asqa", "bio")
    for name in TASK_NAMES:
        assert get_task(name).name == name
    with pytest.raises(InputError, match="unknown task 'hotpot'.*popqa"):
        get_task("hotpot")


# --- PopQA / TriviaQA / NQ ------------------------------------------------------------------------------------------


def test_popqa_golds_from_the_real_file_and_scores(tmp_path):
    rows = _real_rows("popqa/popqa_longtail_w_gs_first100.jsonl", [1, 2])
    task = get_task("popqa")
    golds = read_golds(task, _write(tmp_path / "p.jsonl", rows))
    assert golds["4382392"] == ("politician", "political leader", "political figure", "polit.", "pol")
    assert golds["1223902"] == ("journalist", "journo", "journalists")
    per_q = score_predictions(task, [_pred(4382392, "Henry Feilden was a Politician."),
                                     _pred(1223902, "He is a journalist.")], golds)
    # "Henry Feilden was a Politician." vs "politician": tokens [henry, feilden, was, politician]: P 1/4, R 1,
    # F1 = 2 * 0.25 / 1.25 = 0.4; the capital P defeats the case-sensitive reference match.
    assert per_q["4382392"] == {"match": 1.0, "match_original": 0.0, "em": 0.0, "f1": pytest.approx(0.4)}
    assert per_q["1223902"]["match_original"] == 1.0
    # "He is a journalist." vs "journalist": tokens [he, is, journalist] vs [journalist]: P 1/3, R 1, F1 0.5.
    assert per_q["1223902"]["f1"] == pytest.approx(0.5)
    assert task.aggregate(per_q) == {"n": 2, "match": 1.0, "match_original": 0.5, "em": 0.0,
                                     "f1": pytest.approx(0.45)}


def test_popqa_answers_as_a_json_string_and_missing_answers():
    task = get_task("popqa")
    assert task.gold({"possible_answers": '["Paris", "City of Light"]'}) == ("Paris", "City of Light")
    with pytest.raises(InputError, match=r"f\.jsonl:3: no gold answers.*'answers'"):
        task.gold({"id": 1, "question": "q"}, where="f.jsonl:3")


def test_triviaqa_and_nq_gold_fields(tmp_path):
    task = get_task("triviaqa")
    [row] = _real_rows("triviaqa/triviaqa_w_ctxs_50.jsonl", [1])
    assert task.gold(row) == ("Leos Jancek", "leos jancek")
    [nq] = _real_rows("nq/nq_test_sample.jsonl", [3])
    assert task.gold(nq) == ("Olivia", "MFSK")
    assert task.gold({"golds": ["x"]}) == ("x",)
    # The answer is taken from `output` with its reflection tokens when `answer` is absent.
    scores = task.score({"id": 1, "output": "[Retrieval]<paragraph>t\np</paragraph>[Relevant]MFSK.[Utility:5]"},
                        ("Olivia", "MFSK"))
    assert scores["em"] == 1.0


def test_score_predictions_needs_golds_for_every_id():
    task = get_task("popqa")
    with pytest.raises(InputError, match=r"1 prediction id\(s\) have no gold.*'9'"):
        score_predictions(task, [_pred("1", "x"), _pred("9", "y")], {"1": ("x",)})
    with pytest.raises(InputError, match="no `answer` or `output`"):
        score_predictions(task, [{"id": "1"}], {"1": ("x",)})


# --- ARC-Challenge --------------------------------------------------------------------------------------------------


def test_arc_golds_letters_and_numeric_answer_keys(tmp_path):
    task = get_task("arc_challenge")
    rows = _real_rows("arc_challenge/arc_challenge_processed_first100.jsonl", [1, 45])
    golds = read_golds(task, _write(tmp_path / "a.jsonl", rows))
    assert golds["Mercury_7175875"].answer == "C"
    numeric = golds["NYSEDREGENTS_2008_8_34"]  # answerKey "2", labels 1-4
    assert numeric.answer == "B" and list(numeric.choices) == ["A", "B", "C", "D"]
    assert numeric.choices["B"].startswith("Kinetic energy increases")


def test_arc_scoring_and_the_capital_letter_quirk():
    task = get_task("arc_challenge")
    gold = task.gold({"answerKey": "3", "choices": {"label": ["1", "2", "3", "4"],
                                                    "text": ["red", "blue", "green", "A yellow one"]}})
    assert gold.answer == "C"
    assert task.score(_pred(1, "C: green"), gold) == {"accuracy": 1.0, "match_original": 1.0}
    assert task.score(_pred(1, "green"), gold) == {"accuracy": 1.0, "match_original": 0.0}
    # The reference metric counts any capital C, so a wrong answer can "match".
    assert task.score(_pred(1, "D: A yellow one. Clearly."), gold) == {"accuracy": 0.0, "match_original": 1.0}
    with pytest.raises(InputError, match="answerKey 'E' is not one of the option labels"):
        task.gold({"answerKey": "E", "choices": {"label": ["A", "B"], "text": ["x", "y"]}})
    with pytest.raises(InputError, match="no `answerKey`"):
        task.gold({"choices": {"label": ["A"], "text": ["x"]}})


# --- PubHealth ------------------------------------------------------------------------------------------------------


def test_pubhealth_unlabeled_file_says_so(tmp_path):
    task = get_task("pubhealth")
    rows = _real_rows("pubhealth/pubhealth_claims_unlabeled.jsonl", [1, 2])
    path = _write(tmp_path / "pubhealth_claims_unlabeled.jsonl", rows)
    with pytest.raises(InputError, match=r"pubhealth_claims_unlabeled\.jsonl:1: no gold labels in this file"):
        read_golds(task, path)
    with pytest.raises(InputError, match="no gold labels in this file"):
        task.gold({"id": 0, "claim": "Water is wet."})


def test_pubhealth_labels_and_scores():
    task = get_task("pubhealth")
    assert task.gold({"label": "SUPPORTS"}) == "true"
    assert task.gold({"answers": ["REFUTES"]}) == "false"
    assert task.gold({"label": "true"}) == "true"
    with pytest.raises(InputError, match="'mixture', not a binary"):
        task.gold({"label": "mixture"})
    # The reference lower-cases fact-checking predictions before its substring test.
    assert task.score(_pred(0, "True"), "true") == {"accuracy": 1.0, "match": 1.0, "match_original": 1.0}
    assert task.score(_pred(0, "false"), "true") == {"accuracy": 0.0, "match": 0.0, "match_original": 0.0}


# --- ALCE citations -------------------------------------------------------------------------------------------------


def test_citation_text_helpers():
    assert split_sentences("Paris is big [1]. It is old. [2] Really? Yes!") == [
        "Paris is big [1].", "It is old. [2]", "Really?", "Yes!"]
    assert split_sentences("About 3.5 million people.\nNo end") == ["About 3.5 million people.", "No end"]
    assert split_sentences("  ") == []
    assert find_citations("A [1][3] and [2, 4].") == [1, 3, 2, 4]
    assert remove_citations("Paris is big [1][2]. It is [3] old.") == "Paris is big. It is old."


def test_citation_recall_and_precision_by_hand():
    output = ("Paris is the capital of France [1]. The Eiffel Tower is in Paris [1][2]. Bananas are blue [3].")
    nli = WordNLI()
    scores = citation_scores(output, DOCS, nli)
    # S1 cites [1], which entails it: supported, 1 precise citation of 1.
    # S2 cites [1][2]; together they entail it: supported. [1] alone does not, and without it [2] still does, so
    #    [1] is not needed (imprecise); [2] alone entails it (precise): 1 precise of 2.
    # S3 cites [3] ("Bananas are yellow."), which does not entail "Bananas are blue.": 0 precise of 1.
    # recall = 2 supported / 3 sentences; precision = 2 precise / 4 citations.
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.precision == pytest.approx(2 / 4)
    assert (scores.n_sentences, scores.n_citations) == (3, 4)
    # The premise is the ALCE document format, the hypothesis the sentence without its markers.
    assert nli.calls[0] == ("Title: Paris\nParis is the capital of France.", "Paris is the capital of France.")


def test_citations_missing_out_of_range_and_capped():
    nli = WordNLI()
    # No citation and an out-of-range citation are unsupported and add no citations.
    scores = citation_scores("Paris is the capital of France. Paris is the capital of France [7].", DOCS, nli)
    assert (scores.recall, scores.precision, scores.n_citations) == (0.0, 0.0, 0)
    # Only the first `at_most_citations` count: [3][2] cannot entail the claim, [3][2][1] can.
    claim = "Paris is the capital of France [3][2][1]."
    assert citation_scores(claim, DOCS, nli, at_most_citations=2).recall == 0.0
    assert citation_scores(claim, DOCS, nli, at_most_citations=3).recall == 1.0
    # An out-of-range marker voids the sentence even beyond the cap, and [0] is out of range.
    assert citation_scores("Paris is the capital of France [1][9].", DOCS, nli, at_most_citations=1).recall == 0.0
    assert citation_scores("Paris is the capital of France [0].", DOCS, nli).recall == 0.0
    assert citation_scores("", DOCS, nli).recall == 0.0


def test_citation_scores_unavailable_without_a_model():
    result = citation_scores("Paris [1].", DOCS, None)
    assert isinstance(result, Unavailable) and "no NLI model configured" in result.reason

    class Broken:
        def entails(self, premise, hypothesis):
            raise ComponentUnavailable("the NLI checkpoint is missing")

    assert citation_scores("Paris [1].", DOCS, Broken()) == Unavailable("the NLI checkpoint is missing")


# --- ASQA ------------------------------------------------------------------------------------------------------------

ASQA_ROW = {
    "sample_id": "-1", "question": "Where is the capital?",
    "qa_pairs": [{"question": "of France?", "short_answers": ["Paris"]},
                 {"question": "of Roman Gaul?", "short_answers": ["Lyon", "Lugdunum"]}],
    "annotations": [{"long_answer": "Paris is the capital of France."},
                    {"long_answer": "The capital of France is Paris, and Lugdunum was the capital of Gaul."}],
}


def test_asqa_gold_and_scores_with_citations():
    task = get_task("asqa", nli=WordNLI())
    gold = task.gold(ASQA_ROW)
    assert gold.short_answers == (("Paris",), ("Lyon", "Lugdunum"))
    assert len(gold.long_answers) == 2
    # Only the first line counts (ALCE), citations are removed before STR-EM and ROUGE.
    scores = task.score(_pred("-1", "Paris is the capital of France [1].\nLyon was the capital of Gaul [1].",
                              docs=DOCS), gold)
    assert scores["str_em"] == 0.5 and scores["str_hit"] == 0.0
    assert scores["rouge_l"] == pytest.approx(1.0)  # identical to the first long answer
    assert scores["citation_recall"] == 1.0 and scores["citation_precision"] == 1.0
    assert scores["length"] == 6.0


def test_asqa_bad_rows():
    task = get_task("asqa")
    with pytest.raises(InputError, match=r"x:1: no `qa_pairs`"):
        task.gold({"annotations": []}, where="x:1")
    with pytest.raises(InputError, match=r"qa_pairs\[0\]\.short_answers must be a list"):
        task.gold({"qa_pairs": [{"short_answers": "Paris"}], "annotations": [{"long_answer": "x"}]})
    with pytest.raises(InputError, match="no `annotations`"):
        task.gold({"qa_pairs": [{"short_answers": ["Paris"]}]})


def test_unavailable_citations_propagate_to_the_report():
    task = get_task("asqa")  # no NLI model
    gold = task.gold(ASQA_ROW)
    per_q = {"a": task.score(_pred("a", "Paris [1].", docs=DOCS), gold),
             "b": task.score(_pred("b", "Lyon.", docs=DOCS), gold)}
    assert isinstance(per_q["a"]["citation_recall"], Unavailable)
    summary = task.aggregate(per_q)
    assert summary["n"] == 2 and summary["str_em"] == 0.5
    assert isinstance(summary["citation_recall"], Unavailable)
    assert "no NLI model configured" in summary["citation_precision"].reason
    report = format_metrics(summary)
    assert "str_em: 0.5000" in report and "citation_recall: unavailable (no NLI model configured" in report
    assert jsonable(summary)["citation_recall"] == {"unavailable": summary["citation_recall"].reason}
    json.dumps(jsonable(summary))
    # A comparison cannot silently treat the missing metric as a number.
    with pytest.raises(InputError, match="'citation_recall' is Unavailable"):
        metric_scores(per_q, "citation_recall")


def test_transformers_nli_scorer_reports_why_it_cannot_run(tmp_path):
    unconfigured = TransformersNLIScorer(None)
    assert "no NLI model configured" in unconfigured.unavailable_reason()
    with pytest.raises(ComponentUnavailable):
        unconfigured.entails("p", "h")
    missing = TransformersNLIScorer(str(tmp_path / "no-such-model"))
    result = citation_scores("Paris is the capital of France [1].", DOCS, missing)
    assert isinstance(result, Unavailable) and "could not be loaded" in result.reason


def _tiny_tokenizer(directory: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "premise hypothesis : paris is the capital of france title".split()
    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", "[CLS]", "[SEP]", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    tokenizer.save_pretrained(directory)
    return tokenizer


@pytest.mark.parametrize("kind", ["classifier", "seq2seq"])
def test_transformers_nli_scorer_loads_a_local_checkpoint(tmp_path, kind):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    tokenizer = _tiny_tokenizer(tmp_path)
    if kind == "classifier":
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, num_labels=3,
                            id2label={0: "ENTAILMENT", 1: "NEUTRAL", 2: "CONTRADICTION"},
                            label2id={"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2})
        BertForSequenceClassification(config).save_pretrained(tmp_path)
    else:
        config = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                          decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        T5ForConditionalGeneration(config).save_pretrained(tmp_path)
    scorer = TransformersNLIScorer(str(tmp_path))
    assert scorer.unavailable_reason() is None
    verdict = scorer.entails("Paris is the capital of France", "Paris is the capital")
    assert isinstance(verdict, bool)
    result = citation_scores("Paris is the capital [1].", DOCS, scorer)
    assert not isinstance(result, Unavailable) and result.n_citations == 1


# --- Bio ------------------------------------------------------------------------------------------------------------


def test_bio_gold_from_the_real_file(tmp_path):
    task = get_task("bio")
    rows = _real_rows("bio/bio_entities_w_ctxs.jsonl", [1, 2])
    golds = read_golds(task, _write(tmp_path / "b.jsonl", rows))
    assert golds["0"].topic == "Jessie Mae Brown Beavers" and golds["1"].topic == "Billy Conigliaro"
    assert len(golds["0"].knowledge) == 10 and golds["0"].knowledge[0].startswith("Title: Mae Beavers\n")


def test_bio_without_a_fact_scorer_is_unavailable_but_has_length():
    task = get_task("bio")
    gold = task.gold({"topic": "X", "ctxs": [{"title": "X", "text": "X is a singer."}]})
    scores = task.score(_pred(0, "X is a singer from Paris."), gold)
    assert isinstance(scores["factscore"], Unavailable) and scores["length"] == 6.0
    summary = task.aggregate([scores])
    assert "factscore: unavailable (no FactScore scorer configured" in format_metrics(summary)
    assert summary["length"] == 6.0
    # A configured scorer without a model is unavailable too, and so is one with no knowledge to check against.
    assert isinstance(NLIFactScorer.from_model_path(None).score("X", "X is a singer.", ["k"]), Unavailable)
    assert "no knowledge passages" in NLIFactScorer(WordNLI()).score("X", "X is a singer.", []).reason


def test_bio_factscore_with_a_fake_entailment_model():
    task = get_task("bio", fact_scorer=NLIFactScorer(WordNLI()))
    gold = task.gold({"topic": "X", "ctxs": [{"title": "X", "text": "X is a singer from Paris."}]})
    scores = task.score(_pred(0, "X is a singer. X was born in Rome."), gold)
    # 2 sentence-facts, 1 supported: init 1/2; fewer than gamma=10 facts: penalty exp(1 - 10/2) = exp(-4).
    assert scores["n_facts"] == 2.0 and scores["factscore_init"] == 0.5
    assert scores["factscore"] == pytest.approx(0.5 * math.exp(-4))
    assert scores["length"] == 9.0


def test_factscore_length_penalty():
    assert factscore_from_counts(10, 7) == FactScoreResult(10, 7, 0.7, 0.7)
    assert factscore_from_counts(5, 5).score == pytest.approx(math.exp(-1))
    assert factscore_from_counts(5, 5, gamma=0).score == 1.0
    assert factscore_from_counts(0, 0).score == 0.0


def test_every_task_scores_and_aggregates_to_its_metrics():
    golds = {
        "popqa": ("a",), "triviaqa": ("a",), "pubhealth": "true",
        "arc_challenge": get_task("arc_challenge").gold({"answerKey": "A", "choices": {"label": ["A"], "text": ["a"]}}),
        "asqa": get_task("asqa").gold(ASQA_ROW),
        "bio": get_task("bio").gold({"topic": "X", "ctxs": []}),
    }
    for name, gold in golds.items():
        task = get_task(name)
        scores = task.score(_pred(0, "a"), gold)
        assert tuple(scores) == task.metrics, name
        summary = task.aggregate(itertools.repeat(scores, 3))
        assert summary["n"] == 3 and set(summary) == {"n", *task.metrics}, name

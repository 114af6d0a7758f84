"""Offline annotation: segments, passage-choice rules, the exact output format, the released-format round trip,
resumption after a crash, and the critic-data balancing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from critic.annotate import Annotator, JudgedPassage, PassageRules, annotate_file, choose_passage
from critic.aspects import ISREL, ISSUP, ISUSE, RETRIEVE, Label, LabelItem
from critic.critic_data import build_critic_data, in_dev_split
from critic.labelling import label_seeds, read_labelled
from critic.released import parse_output, token_statistics
from critic.segments import segment_output
from critic.sources import SeedExample, read_source_list, seed_from_row
from selfrag import tokens as T
from selfrag.io import InputError, read_jsonl
from selfrag.types import Passage

ROOT = Path(__file__).resolve().parents[2]
RELEASED = ROOT / "data" / "selfrag_train" / "selfrag_train_sample50.jsonl"


class KeywordCritic:
    """A deterministic stand-in critic: decisions from keywords, so expected outputs can be written by hand."""

    name = "keywords"

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def label(self, items):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        return [Label(it.aspect, it.id, self._one(it), self.name) for it in items]

    @staticmethod
    def _one(item: LabelItem) -> str:
        if item.aspect == RETRIEVE:
            return T.NO_RETRIEVAL if "poem" in (item.output or item.instruction) else T.RETRIEVAL
        if item.aspect == ISREL:
            return T.RELEVANT if "relevant" in item.evidence.text else T.IRRELEVANT
        if item.aspect == ISSUP:
            return T.FULLY_SUPPORTED if "full" in item.evidence.text else T.PARTIALLY_SUPPORTED
        assert item.aspect == ISUSE
        return T.UTILITY[4]


def p(pid: str, text: str) -> Passage:
    return Passage(pid, f"T{pid}", text)


def test_segments_keep_every_character_and_attach_short_sentences():
    text = "Paris is the capital of France. Yes. It has about two million people living there."
    segments = segment_output(text)
    assert "".join(segments) == text
    assert segments == ["Paris is the capital of France. Yes. ", "It has about two million people living there."]
    assert segment_output("Ok. Fine. The rest of this sentence is long enough.") == [
        "Ok. Fine. The rest of this sentence is long enough."
    ]
    assert segment_output("") == []


def test_choose_passage_follows_the_configured_order():
    irrelevant = JudgedPassage(p("1", "x"), T.IRRELEVANT, None)
    partial = JudgedPassage(p("2", "x"), T.RELEVANT, T.PARTIALLY_SUPPORTED)
    nosup = JudgedPassage(p("3", "x"), T.RELEVANT, T.NO_SUPPORT)
    full = JudgedPassage(p("4", "x"), T.RELEVANT, T.FULLY_SUPPORTED)
    judged = [irrelevant, partial, nosup, full]
    assert choose_passage(judged, PassageRules()) is full
    assert choose_passage(judged[:3], PassageRules()) is partial
    assert choose_passage([irrelevant, nosup], PassageRules()) is nosup
    assert choose_passage([irrelevant], PassageRules()) is irrelevant
    assert choose_passage([irrelevant], PassageRules(("fully", "partially"))) is None
    assert choose_passage(judged, PassageRules(("no_support", "fully"))) is nosup
    with pytest.raises(ValueError, match="unknown passage class"):
        PassageRules(("best",))


def test_annotator_writes_the_exact_released_format():
    passages = {
        "Who is Alice?": [p("1", "off topic"), p("2", "relevant and full"), p("3", "relevant partly")],
        "Who is Alice? Alice is a famous singer from Paris.": [p("4", "relevant partly"), p("5", "nothing")],
    }

    def search(queries, k):
        return [passages[q][:k] for q in queries]

    seeds = [
        SeedExample("a", "qa", "Who is Alice?",
                    "Alice is a famous singer from Paris. She recorded three albums in 1999."),
        SeedExample("b", "qa", "Write a poem.", "Roses are red."),
    ]
    rows = Annotator(KeywordCritic(), search, k=3).annotate(seeds)
    assert rows[0] == {
        "instruction": "Who is Alice?",
        "input": "",
        "output": "[Retrieval]<paragraph>T2\nrelevant and full</paragraph>[Relevant]Alice is a famous singer from "
        "Paris.[Fully supported] [Retrieval]<paragraph>T4\nrelevant partly</paragraph>[Relevant]She recorded "
        "three albums in 1999.[Partially supported][Utility:5]",
        "id": "a",
        "dataset_name": "qa",
    }
    assert rows[1]["output"] == "[No Retrieval]Roses are red.[Utility:5]"
    # stripping the tokens gives the output back
    assert T.strip_reflection(rows[0]["output"]) == seeds[0].output


def test_irrelevant_passage_has_no_support_token_and_forbidden_classes_fall_back():
    seeds = [SeedExample("c", "qa", "Who is Bob?", "Bob is a famous actor from London.", passages=(p("9", "x"),))]
    rows = Annotator(KeywordCritic(), None).annotate(seeds)  # rows' own ctxs
    assert rows[0]["output"] == "[Retrieval]<paragraph>T9\nx</paragraph>[Irrelevant]Bob is a famous actor from " \
                                "London.[Utility:5]"
    rows = Annotator(KeywordCritic(), None, rules=PassageRules(("fully",))).annotate(seeds)
    assert rows[0]["output"] == "[No Retrieval]Bob is a famous actor from London.[Utility:5]"


def test_annotation_resumes_after_a_crash_without_duplicates_or_losses(tmp_path):
    seeds = [SeedExample(f"s{i}", "qa", f"Who is {i}?", f"Person {i} is a singer.",
                         passages=(p(str(i), "relevant full"),)) for i in range(7)]
    out = tmp_path / "train.jsonl"
    # each batch makes 4 critic calls (retrieve, isrel, issup, isuse); crash in the third batch
    with pytest.raises(RuntimeError, match="simulated crash"):
        annotate_file(seeds, Annotator(KeywordCritic(fail_after=10), None), out, batch_size=2, progress=False)
    assert [r["id"] for r in read_jsonl(out)] == ["s0", "s1", "s2", "s3"]
    with out.open("a") as handle:  # a torn line, as a kill mid-write leaves
        handle.write('{"id": "s4", "outp')
    stats = annotate_file(seeds, Annotator(KeywordCritic(), None), out, batch_size=2, progress=False)
    assert stats.skipped_done == 4 and stats.seeds == 3
    uninterrupted = tmp_path / "ref.jsonl"
    annotate_file(seeds, Annotator(KeywordCritic(), None), uninterrupted, batch_size=2, progress=False)
    assert read_jsonl(out) == read_jsonl(uninterrupted)


def test_released_rows_round_trip_and_statistics():
    rows = read_jsonl(RELEASED)
    assert len(rows) == 50
    for row in rows:
        assert parse_output(row["output"]).compose() == row["output"]
    parsed = parse_output("Dialog:\n[Retrieval]<paragraph>t\nx</paragraph>[Relevant]A.[Fully supported]"
                          "[No Retrieval]B.[Utility:4]")
    assert [(s.decision, s.passage, s.rel, s.text, s.sup) for s in parsed.segments] == [
        (None, None, None, "Dialog:\n", None),
        (T.RETRIEVAL, "t\nx", T.RELEVANT, "A.", T.FULLY_SUPPORTED),
        (T.NO_RETRIEVAL, None, None, "B.", None),
    ]
    assert parsed.utility == T.UTILITY[3]
    stats = token_statistics(rows).as_json()
    assert stats["rows"] == 50
    assert stats["tokens"][T.RETRIEVAL] == sum(r["output"].count(T.RETRIEVAL) for r in rows)
    assert stats["retrieval_rate"] == sum(T.RETRIEVAL in r["output"] for r in rows) / 50


def test_seed_formats_and_errors():
    arc = seed_from_row({"id": "q", "question": "Which?", "choices": {"text": ["x", "y"], "label": ["1", "2"]},
                         "answerKey": "2"}, "arc", where="f:1", default_id="1")
    assert arc.output == "B: y" and arc.answers == ("y",) and "\nA: x\nB: y" in arc.instruction
    popqa = seed_from_row({"id": 7, "question": "Q?", "answers": '["a", "b"]', "s_wiki_title": "S"}, "popqa",
                          where="f:2", default_id="2")
    assert (popqa.id, popqa.output, popqa.answers, popqa.subject) == ("popqa-7", "a", ("a", "b"), "S")
    released = seed_from_row({"instruction": "Do", "output": "[No Retrieval]Done.[Utility:5]"}, "flan", where="f:3",
                             default_id="3")
    assert released.output == "Done." and released.id == "flan-3"
    with pytest.raises(InputError, match="f:4: a question row needs"):
        seed_from_row({"question": "Q?"}, "x", where="f:4", default_id="4")
    with pytest.raises(InputError, match="f:5: answerKey 'E'"):
        seed_from_row({"question": "Q?", "choices": {"text": ["x"], "label": ["A"]}, "answerKey": "E"}, "x",
                      where="f:5", default_id="5")


def test_source_list_slices_then_samples_in_file_order(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"id": i, "question": f"Q{i}?", "answers": [f"a{i}"]}) + "\n"
                            for i in range(10)))
    sliced = read_source_list([{"path": str(path), "dataset": "qa", "offset": 2, "limit": 6}])
    assert [s.id for s in sliced] == [f"qa-{i}" for i in range(2, 8)]
    sampled = read_source_list([{"path": str(path), "dataset": "qa", "offset": 2, "limit": 6, "sample": 3,
                                 "seed": 1}])
    ids = [int(s.id.split("-")[1]) for s in sampled]
    assert len(ids) == 3 and ids == sorted(ids) and set(ids) <= set(range(2, 8))
    # the same seed gives the same rows; a sample larger than the slice keeps the whole slice
    assert sampled == read_source_list([{"path": str(path), "dataset": "qa", "offset": 2, "limit": 6, "sample": 3,
                                         "seed": 1}])
    assert read_source_list([{"path": str(path), "dataset": "qa", "sample": 50}]) == \
        read_source_list([{"path": str(path), "dataset": "qa"}])
    with pytest.raises(InputError, match=r"sources\[0\].sample must be a positive"):
        read_source_list([{"path": str(path), "sample": 0}])


def test_critic_data_balancing_is_exact():
    items, labels = [], []
    for i, label in enumerate([T.RETRIEVAL] * 10 + [T.NO_RETRIEVAL] * 3):
        items.append(LabelItem(RETRIEVE, f"r{i}", f"q{i}"))
        labels.append(Label(RETRIEVE, f"r{i}", label, "t"))
    items.append(LabelItem(RETRIEVE, "none", "q"))
    labels.append(None)  # abstained: skipped
    train, dev, report = build_critic_data(items, labels, max_per_label=100, max_imbalance=2.0, dev_fraction=0.0)
    # rarest label has 3 rows -> at most 2 * 3 = 6 per label; no dev questions
    assert report.labelled == {RETRIEVE: {T.RETRIEVAL: 10, T.NO_RETRIEVAL: 3}}
    assert report.train == {RETRIEVE: {T.RETRIEVAL: 6, T.NO_RETRIEVAL: 3}} and dev == []
    assert {r["output"] for r in train} == {T.RETRIEVAL, T.NO_RETRIEVAL}
    assert train[0]["instruction"].startswith("Task instruction:") and train[0]["input"].startswith("Does answering")
    assert len(build_critic_data(items, labels, max_per_label=4, dev_fraction=0.0)[0]) == 4 + 3
    # with a dev split each side is balanced by its own rarest label
    train, dev, report = build_critic_data(items, labels, max_per_label=100, max_imbalance=2.0, dev_fraction=0.2)
    for side, rows in (("train", train), ("dev", dev)):
        questions = [r["instruction"].removeprefix("Task instruction: ") for r in rows]
        assert all(in_dev_split(q, 0.2) == (side == "dev") for q in questions)
        counts = [n for n in getattr(report, side)[RETRIEVE].values() if n]
        if counts:
            assert max(counts) <= 2 * min(counts)
    again, _, _ = build_critic_data(items, labels, max_per_label=100, max_imbalance=2.0, dev_fraction=0.2)
    assert again == train  # seeded


def test_critic_dev_split_is_by_question():
    # whichever side a question falls on, all its items (every aspect and label) follow it
    question = next(f"Who is P{i}?" for i in range(100) if in_dev_split(f"Who is P{i}?", 0.3))
    other = next(f"Who is P{i}?" for i in range(100) if not in_dev_split(f"Who is P{i}?", 0.3))
    items, labels = [], []
    for q in (question, other):
        for aspect, label in ((RETRIEVE, T.RETRIEVAL), (RETRIEVE, T.NO_RETRIEVAL), (ISREL, T.RELEVANT),
                              (ISREL, T.IRRELEVANT)):
            items.append(LabelItem(aspect, f"{q}/{label}", q))
            labels.append(Label(aspect, f"{q}/{label}", label, "t"))
    train, dev, _ = build_critic_data(items, labels, dev_fraction=0.3)
    assert {r["id"].split("/")[1] for r in dev} == {question}
    assert {r["id"].split("/")[1] for r in train} == {other}
    # the fraction of the hash range: 0 puts nothing in dev
    assert not any(in_dev_split(f"q{i}", 0.0) for i in range(50))
    assert 15 < sum(in_dev_split(f"q{i}", 0.5) for i in range(60)) < 45


def test_labelling_job_resumes_per_seed(tmp_path):
    from critic.grounded import AnswerGroundedTeacher

    seeds = [SeedExample(f"q{i}", "qa", f"Who is P{i}?", "singer", answers=("singer",), subject=f"P{i}",
                         passages=(Passage(str(i), f"P{i}", f"P{i} is a singer."),)) for i in range(5)]
    out = tmp_path / "labels.jsonl"
    label_seeds(seeds[:2], AnswerGroundedTeacher(), out, progress=False)
    stats = label_seeds(seeds, AnswerGroundedTeacher(), out, progress=False, batch_size=2)
    assert (stats.seeds, stats.skipped_done) == (3, 2)
    assert [json.loads(line)["seed"] for line in out.read_text().splitlines()] == [s.id for s in seeds]
    items, labels = read_labelled(out)
    assert len(items) == len(labels) and all(lab is not None for lab in labels)
    by_id = {(it.aspect, it.id): lab.label for it, lab in zip(items, labels)}
    assert by_id[(ISREL, "q0/p0")] == T.RELEVANT and by_id[(ISSUP, "q0/s0/p0")] == T.FULLY_SUPPORTED


def test_short_answer_rows_state_the_passage_alias_and_add_supported_and_rejected_rows():
    from critic.annotate import RowVariants
    from critic.grounded import AnswerGroundedTeacher

    passages = (
        Passage("1", "Tom Smith", "Tom Smith was a farmer."),          # no gold answer: irrelevant
        Passage("2", "X", "X was a political leader."),                # an alias, about X: fully supported
        Passage("3", "Senate", "Many a politician sat in the Senate."),  # the answer, not about X: partially
        Passage("4", "X", "X was born in 1900."),                      # about X, no answer: irrelevant
    )
    seed = SeedExample("q", "qa", "What is X's occupation?", "politician",
                       answers=("politician", "political leader"), subject="X", passages=passages)
    annotator = Annotator(AnswerGroundedTeacher(), None, k=4, variants=RowVariants(supported=1, rejected=2))
    rows = annotator.annotate([seed])
    outputs = {r["id"]: r["output"] for r in rows}
    assert list(outputs) == ["q", "q/sup1", "q/rej1", "q/rej2"]
    assert outputs["q"] == ("[Retrieval]<paragraph>X\nX was a political leader.</paragraph>[Relevant]political leader"
                            "[Fully supported][Utility:5]")
    assert outputs["q/sup1"] == ("[Retrieval]<paragraph>Senate\nMany a politician sat in the Senate.</paragraph>"
                                 "[Relevant]politician[Partially supported][Utility:5]")
    assert outputs["q/rej1"] == "[Retrieval]<paragraph>Tom Smith\nTom Smith was a farmer.</paragraph>[Irrelevant]" \
                                "politician[Utility:5]"
    assert outputs["q/rej2"] == "[Retrieval]<paragraph>X\nX was born in 1900.</paragraph>[Irrelevant]politician" \
                                "[Utility:5]"
    # without variants: the main row only; a long-form seed never gets extra rows
    assert [r["id"] for r in Annotator(AnswerGroundedTeacher(), None, k=4).annotate([seed])] == ["q"]
    with pytest.raises(ValueError, match="must be >= 0"):
        RowVariants(supported=-1)


def test_teacher_first_asks_the_critic_only_where_the_teacher_abstains():
    from critic.composite import TeacherFirst
    from critic.grounded import AnswerGroundedTeacher

    critic = KeywordCritic()
    labeler = TeacherFirst(AnswerGroundedTeacher(), critic)
    grounded = LabelItem(ISREL, "q/p1", "What is X's job?", evidence=p("1", "X was a politician."),
                         answers=("politician",))
    no_answers = LabelItem(ISREL, "f/p2", "Write a poem.", evidence=Passage("2", "", "relevant words"))
    labels = labeler.label([grounded, no_answers])
    assert [(lab.label, lab.labeler) for lab in labels] == [(T.RELEVANT, "answer-grounded"),
                                                           (T.RELEVANT, "keywords")]
    assert critic.calls == 1 and dict(labeler.counts) == {"teacher/isrel": 1, "critic/isrel": 1}
    labeler.label([grounded])  # nothing left for the critic: it is not called
    assert critic.calls == 1 and labeler.counts["teacher/isrel"] == 2

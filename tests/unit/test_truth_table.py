"""The generator-data truth table (critic/truth.py) on hand-made rows: every share worked out by hand."""

from __future__ import annotations

from critic.sources import SeedExample
from critic.truth import seed_id_of, truth_table
from selfrag import tokens as T

SEED = SeedExample("q", "qa", "What is X's occupation?", "politician", answers=("politician", "political leader"),
                   subject="X")
FLAN = SeedExample("f", "flan", "Write a poem.", "Roses are red.")


def row(row_id, passage, tokens_and_text):
    return {"id": row_id, "output": f"{T.RETRIEVAL}{T.PARAGRAPH_OPEN}{passage}{T.PARAGRAPH_CLOSE}{tokens_and_text}"
            "[Utility:5]"}


def test_seed_ids_of_variant_rows():
    assert seed_id_of("popqa-1") == "popqa-1"
    assert seed_id_of("popqa-1/sup1") == "popqa-1"
    assert seed_id_of("popqa-1/rej12") == "popqa-1"
    assert seed_id_of("flan_v2-niv2/task1") == "flan_v2-niv2/task1"  # not a variant suffix


def test_truth_table_shares_and_teacher_agreement():
    rows = [
        # answer in the passage, fully supported: true
        row("q", "X\nX was a political leader.", f"{T.RELEVANT}political leader{T.FULLY_SUPPORTED}"),
        # no answer, but labelled fully supported: a false label
        row("q/sup1", "X\nX was born in 1900.", f"{T.RELEVANT}politician{T.FULLY_SUPPORTED}"),
        # answer in the passage, labelled irrelevant: a missed support
        row("q/rej1", "Senate\nMany a politician sat there.", f"{T.IRRELEVANT}politician"),
        # no answer, irrelevant: true
        row("q/rej2", "Tom\nTom was a farmer.", f"{T.IRRELEVANT}politician"),
        {"id": "f", "output": f"{T.NO_RETRIEVAL}Roses are red.[Utility:5]"},
    ]
    table = truth_table(rows, {"q": SEED, "f": FLAN}, held_out=lambda q: q.startswith("What"))
    stats = table.as_json()
    assert stats["rows"] == 5 and stats["rows_without_gold_answers"] == 1 and stats["short_segments"] == 4
    assert stats["fully_supported_contains_answer"] == 0.5          # 1 of the 2 fully-supported segments
    assert stats["contains_answer_labelled_supported"] == 0.5       # 1 of the 2 answer-bearing passages
    assert stats["relevant_contains_answer"] == 0.5
    assert stats["contains_answer_labelled_relevant"] == 0.5
    # the teacher says relevant exactly for rows q and q/rej1: data agrees on q and q/rej2 -> 2 of 4
    rel = stats["isrel_vs_teacher"]
    assert rel["n"] == 4 and rel["accuracy"] == 0.5
    # kappa: both sides say relevant twice in four -> p_e = 0.5, p_o = 0.5 -> 0
    assert rel["kappa"] == 0.0
    assert stats["isrel_vs_teacher_held_out"]["n"] == 4
    # issup: q (teacher fully: the alias is in a passage about X) agrees; q/sup1 (teacher: no support) does not
    sup = stats["issup_vs_teacher"]
    assert sup["n"] == 2 and sup["accuracy"] == 0.5
    markdown = table.as_markdown()
    assert "| `[Fully supported]` whose passage contains the answer | 50.0% |" in markdown
    assert "| no answer | `[Relevant][Fully supported]` | 1 |" in markdown

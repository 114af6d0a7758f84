"""agreement / format_agreement against hand-computed values."""

from __future__ import annotations

import pytest

from critic.agreement import agreement, format_agreement
from critic.aspects import ISREL, ISSUP, ISUSE, Label
from selfrag.io import InputError

R, I = "[Relevant]", "[Irrelevant]"  # noqa: E741 (short names keep the matrices readable)


def _labels(aspect, pairs, labeler):
    return [Label(aspect, item_id, label, labeler) for item_id, label in pairs]


def test_isrel_hand_computed_kappa_and_confusion():
    # 10 jointly labelled isrel items:            B: Rel  Irr
    #                                        A: Rel     4    2     (A: 6 Rel)
    #                                           Irr     1    3     (A: 4 Irr)
    #                                    B totals       5    5
    # p_o = (4 + 3) / 10 = 0.7
    # p_e = P(A=Rel)P(B=Rel) + P(A=Irr)P(B=Irr) = 0.6*0.5 + 0.4*0.5 = 0.5
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    a_pairs = [(str(i), lab) for i, lab in enumerate([R] * 6 + [I] * 4)]
    b_pairs = [(str(i), lab) for i, lab in enumerate([R, R, R, R, I, I] + [R, I, I, I])]
    a = _labels(ISREL, a_pairs, "a")
    b = _labels(ISREL, b_pairs, "b")
    # Ignored: abstentions, items only one side labelled, and the same id under another aspect.
    a += [None, Label(ISREL, "only-a", R, "a"), Label(ISSUP, "0", "[Fully supported]", "a")]
    b += [None, Label(ISREL, "only-b", I, "b")]
    report = agreement(a, list(reversed(b)))  # joined by id, not position
    assert list(report) == [ISREL]
    row = report[ISREL]
    assert row.n == 10
    assert row.agreement == pytest.approx(0.7)
    assert row.cohen_kappa == pytest.approx(0.4)
    assert row.confusion == {R: {R: 4, I: 2}, I: {R: 1, I: 3}}
    assert list(row.confusion) == [R, I]  # ASPECT_LABELS order


def test_three_way_and_five_way_aspects_list_every_label():
    # issup, 4 items: A = F F P N, B = F P P F.
    # p_o = 2/4 = 0.5; marginals A (F .5, P .25, N .25), B (F .5, P .5, N 0)
    # p_e = .5*.5 + .25*.5 + .25*0 = 0.375; kappa = (0.5 - 0.375) / 0.625 = 0.2
    f, p, n = "[Fully supported]", "[Partially supported]", "[No support / Contradictory]"
    a = _labels(ISSUP, [("1", f), ("2", f), ("3", p), ("4", n)], "a")
    b = _labels(ISSUP, [("1", f), ("2", p), ("3", p), ("4", f)], "b")
    row = agreement(a, b)[ISSUP]
    assert (row.n, row.agreement) == (4, 0.5)
    assert row.cohen_kappa == pytest.approx(0.2)
    assert row.confusion == {f: {f: 1, p: 1, n: 0}, p: {f: 0, p: 1, n: 0}, n: {f: 1, p: 0, n: 0}}
    # B says F for items 1 and 4 (A: F, N) -> precision 1/2; A says F for 1 and 2, B finds 1 -> recall 1/2.
    # B says P for 2 and 3 (A: F, P) -> 1/2; A's only P is found -> 1. B never says N: precision undefined, recall 0.
    assert row.precision_recall() == {f: (0.5, 0.5), p: (0.5, 1.0), n: (None, 0.0)}
    use = agreement([Label(ISUSE, "x", "[Utility:5]", "a")], [Label(ISUSE, "x", "[Utility:5]", "b")])[ISUSE]
    assert list(use.confusion) == ["[Utility:5]", "[Utility:4]", "[Utility:3]", "[Utility:2]", "[Utility:1]"]
    # Both sides used one and the same label throughout: p_e = 1, kappa undefined.
    assert (use.agreement, use.cohen_kappa) == (1.0, None)


def test_conflicting_duplicates_are_an_input_error_and_identical_ones_are_fine():
    same = [Label(ISREL, "1", R, "a"), Label(ISREL, "1", R, "a")]
    assert agreement(same, same)[ISREL].n == 1
    with pytest.raises(InputError, match=r"labels A give isrel item '1' two different labels"):
        agreement([Label(ISREL, "1", R, "a"), Label(ISREL, "1", I, "a")], same)


def test_format_agreement_table():
    a = _labels(ISREL, [("1", R), ("2", I)], "a")
    b = _labels(ISREL, [("1", R), ("2", R)], "b")
    # p_o = 0.5; p_e = .5*1 + .5*0 = 0.5; kappa = 0
    use = [Label(ISUSE, "x", "[Utility:5]", "a")]
    text = format_agreement(agreement(a + use, b + use))
    assert text == (
        "| aspect | n | agreement | kappa |\n"
        "|---|---:|---:|---:|\n"
        "| isrel | 2 | 50.0% | 0.000 |\n"
        "| isuse | 1 | 100.0% | n/a |\n"
    )
    assert agreement([], []) == {}

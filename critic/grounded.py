"""The answer-grounded teacher: deterministic labels from gold answers, the question's subject and the passage text.

It lets the whole pipeline run offline on data with gold answers (QA, multiple choice). Every rule is below; none is
random and none depends on which dataset an item came from. Text is compared after `normalize` (lower case,
punctuation and the articles a/an/the removed, whitespace collapsed), and "A contains B" means B's normalised words
occur as a contiguous run of A's normalised words.

- **retrieve** (instruction level, `item.output == ""`): `[No Retrieval]` when a gold answer already appears in the
  instruction (the answer can be chosen from the given text, e.g. a multiple-choice option), else `[Retrieval]`.
  For a segment: `[Retrieval]` when the segment states a gold answer the preceding segments do not, else
  `[No Retrieval]`.
- **isrel**: with gold answers, `[Relevant]` exactly when the passage (title and text) contains a gold answer, else
  `[Irrelevant]`: a passage about the right entity that does not hold the answer does not help answer the question,
  and this is the fact the generator's IsRel must learn to predict (and what evaluation checks it against). Without
  gold answers: `[Relevant]` when the passage is about the question's subject (the subject occurs in its title or
  text; without a known subject, the passage's non-empty title occurs in the instruction), else `[Irrelevant]`.
- **issup**: the segment's claims are the gold answers it contains. With claims: `[Fully supported]` when the passage
  contains every claim and is about the subject (subject known) , `[Partially supported]` when it contains some claim
  (or all, but is not about the known subject), `[No support / Contradictory]` otherwise. Without claims (the segment
  states no gold answer): by word overlap: the share of the segment's content words found in the passage is
  >= 0.9 -> Fully, >= 0.5 -> Partially, else No support.
- **isuse**: `[Utility:1]` for an empty output or a refusal; `[Utility:5]` when the output states a gold answer in at
  most `concise_words` words, `[Utility:4]` when it states one at greater length; `[Utility:3]` when it states none
  but addresses the subject; `[Utility:2]` otherwise.

The subject is matched with and without a trailing parenthetical disambiguation (PopQA's `s_wiki_title` "Henry
Feilden (Conservative politician)" is about "Henry Feilden"). Yes/no answers are not grounded in passages (no
passage "contains" yes): a gold list of only yes/no counts as no gold answers for isrel and issup.

Items without gold answers are abstained on (None), except the rules above that need none.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from critic.aspects import ISREL, ISSUP, ISUSE, RETRIEVE, Label, LabelItem
from selfrag import tokens as T

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})
#: Words ignored by the word-overlap support rule.
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or but is are was were be been being it its this that these those "
    "as he she they his her their him them we you i what who whom which when where why how do does did not no yes "
    "has have had will would can could should may might than then there here so such also into about over after "
    "before up down out only very".split()
)
REFUSALS = ("i don't know", "i do not know", "cannot answer", "can't answer", "no answer", "unknown", "not sure")


def normalize(text: str) -> str:
    """Lower case, punctuation and articles removed, whitespace collapsed."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def contains(haystack: str, needle: str) -> bool:
    """Whether normalised `needle` occurs as a run of whole words in normalised `haystack` (empty needle: False)."""
    needle = normalize(needle)
    return bool(needle) and f" {needle} " in f" {normalize(haystack)} "


def _any_in(haystack: str, needles: Iterable[str]) -> bool:
    return any(contains(haystack, n) for n in needles)


_PARENTHETICAL = re.compile(r"\s*\([^()]*\)\s*$")
YES_NO = frozenset({"yes", "no"})


def subject_names(subject: str) -> tuple[str, ...]:
    """The names a passage may use for `subject`: itself and, if it ends in a parenthetical, the name without it."""
    bare = _PARENTHETICAL.sub("", subject).strip()
    return (subject,) if not bare or bare == subject else (subject, bare)


def groundable_answers(answers: Iterable[str]) -> tuple[str, ...]:
    """Gold answers a passage can contain: all of them unless every one is yes/no (then none)."""
    answers = tuple(answers)
    return () if all(normalize(a) in YES_NO for a in answers) else answers


def passage_text(evidence) -> str:
    """A passage as the rules read it: title and text."""
    return f"{evidence.title}\n{evidence.text}"


def content_words(text: str) -> list[str]:
    """Normalised words of `text` that are not STOPWORDS."""
    return [w for w in normalize(text).split() if w not in STOPWORDS]


@dataclass(frozen=True)
class AnswerGroundedTeacher:
    """Labels items by the documented rules above (a `Labeler`).

    Attributes:
        concise_words: outputs stating a gold answer in at most this many words get `[Utility:5]`, longer ones 4.
        full_overlap / partial_overlap: word-overlap thresholds of the issup rule for segments without claims.
    """

    concise_words: int = 40
    full_overlap: float = 0.9
    partial_overlap: float = 0.5
    name: str = "answer-grounded"

    def label(self, items: Sequence[LabelItem]) -> list[Label | None]:
        return [self.label_one(item) for item in items]

    def label_one(self, item: LabelItem) -> Label | None:
        """The label of one item, or None when the rules need gold answers the item lacks."""
        rule = {RETRIEVE: self._retrieve, ISREL: self._isrel, ISSUP: self._issup, ISUSE: self._isuse}[item.aspect]
        verdict = rule(item)
        if verdict is None:
            return None
        label, why = verdict
        return Label(item.aspect, item.id, label, self.name, explanation=why)

    def _retrieve(self, item: LabelItem) -> tuple[str, str] | None:
        if not item.answers:
            return None
        if not item.output:
            if _any_in(item.instruction, item.answers):
                return T.NO_RETRIEVAL, "a gold answer is already in the instruction"
            return T.RETRIEVAL, "the gold answer is not in the instruction"
        new = [a for a in item.answers if contains(item.output, a) and not contains(item.preceding, a)]
        if new:
            return T.RETRIEVAL, f"the segment states the answer {new[0]!r}"
        return T.NO_RETRIEVAL, "the segment states no new gold answer"

    def _about_subject(self, item: LabelItem) -> bool | None:
        """Whether the passage is about the item's subject; None when no subject and no passage title are known."""
        assert item.evidence is not None
        passage = passage_text(item.evidence)
        if item.subject:
            return _any_in(passage, subject_names(item.subject))
        if item.evidence.title:
            return contains(item.instruction, item.evidence.title)
        return None

    def _isrel(self, item: LabelItem) -> tuple[str, str] | None:
        if item.evidence is None:
            return None
        answers = groundable_answers(item.answers)
        if answers:
            if _any_in(passage_text(item.evidence), answers):
                return T.RELEVANT, "the passage contains a gold answer"
            return T.IRRELEVANT, "the passage contains no gold answer"
        about = self._about_subject(item)
        if about is None:
            return None
        if about:
            return T.RELEVANT, "the passage is about the question's subject"
        return T.IRRELEVANT, "the passage is not about the question's subject"

    def _issup(self, item: LabelItem) -> tuple[str, str] | None:
        if item.evidence is None:
            return None
        passage = passage_text(item.evidence)
        claims = [a for a in groundable_answers(item.answers) if contains(item.output, a)]
        if claims:
            found = [a for a in claims if contains(passage, a)]
            about = self._about_subject(item) if item.subject else True
            if found and len(found) == len(claims) and about:
                return T.FULLY_SUPPORTED, f"the passage states {found[0]!r}"
            if found:
                return T.PARTIALLY_SUPPORTED, f"the passage states {found[0]!r} but not all the segment claims"
            return T.NO_SUPPORT, "the passage does not state the segment's answer"
        words = content_words(item.output)
        if not words:
            return None
        present = set(content_words(passage))
        share = sum(w in present for w in words) / len(words)
        if share >= self.full_overlap:
            return T.FULLY_SUPPORTED, f"{share:.0%} of the segment's content words are in the passage"
        if share >= self.partial_overlap:
            return T.PARTIALLY_SUPPORTED, f"{share:.0%} of the segment's content words are in the passage"
        return T.NO_SUPPORT, f"only {share:.0%} of the segment's content words are in the passage"

    def _isuse(self, item: LabelItem) -> tuple[str, str] | None:
        if not item.answers:
            return None
        text = normalize(item.output)
        if not text or any(normalize(r) in text for r in REFUSALS):
            return T.UTILITY[0], "no answer"
        if _any_in(item.output, item.answers):
            if len(item.output.split()) <= self.concise_words:
                return T.UTILITY[4], "states a gold answer concisely"
            return T.UTILITY[3], "states a gold answer at length"
        if item.subject and contains(item.output, item.subject):
            return T.UTILITY[2], "addresses the subject without a gold answer"
        return T.UTILITY[1], "states no gold answer"

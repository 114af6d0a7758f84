"""Pure answer-scoring functions: the paper's metrics (with the reference code's quirks), SQuAD EM/F1, closed-set
accuracy, and ASQA's string exact match and ROUGE-L.

Every function takes strings and returns a float in [0, 1] (or a normalised label); nothing here loads a model or
reads a file, and the module imports only the standard library (plus `rouge-score` when it is installed).
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


# --- normalisation -----------------------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace.

    `normalize_answer("The  Eiffel-Tower!") == "eiffeltower"` (punctuation is deleted, not replaced by a space,
    exactly as in the SQuAD and ALCE scripts, so numbers like "1,000" and "1000" compare equal).
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


# --- open-domain QA (PopQA, TriviaQA, NQ) ------------------------------------------------------------------------


def match_original(prediction: str, answers: Iterable[str]) -> float:
    """The paper's "accuracy" as the reference code computes it: 1.0 iff some gold string is a *case-sensitive*
    substring of the raw prediction, else 0.0.

    Kept bit-for-bit for comparability with published numbers, quirks included: "paris" does not match the gold
    "Paris"; a one-letter gold ("A" for ARC) matches any prediction containing that capital letter; an empty gold
    string matches everything.
    """
    return float(any(gold in prediction for gold in answers))


def match(prediction: str, answers: Iterable[str]) -> float:
    """Normalised substring match: 1.0 iff `normalize_answer(gold)` is a substring of `normalize_answer(prediction)`
    for some gold, else 0.0.

    The case-insensitive version of `match_original` (FlashRAG's "acc"). Golds that normalise to the empty string
    (e.g. "The") are skipped: they would match every prediction.
    """
    normalized = normalize_answer(prediction)
    return float(any(gold and gold in normalized for gold in map(normalize_answer, answers)))


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """SQuAD exact match: 1.0 iff `normalize_answer(prediction) == normalize_answer(gold)` for some gold."""
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(gold) for gold in answers))


def _token_f1(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    if not prediction_tokens or not gold_tokens:
        # SQuAD v2 convention: an empty side scores 1 only when both are empty.
        return float(prediction_tokens == gold_tokens)
    common = sum((Counter(prediction_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(prediction_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, answers: Iterable[str]) -> float:
    """SQuAD token F1, maximised over golds.

    Tokens are the whitespace-split words of `normalize_answer`. With c = the size of the multiset intersection of
    prediction and gold tokens, precision = c / |prediction|, recall = c / |gold|, F1 = 2PR / (P + R) (0 when c = 0;
    1 when both token lists are empty, 0 when only one is). No golds gives 0.0.
    """
    prediction_tokens = normalize_answer(prediction).split()
    return max((_token_f1(prediction_tokens, normalize_answer(gold).split()) for gold in answers), default=0.0)


# --- closed-set tasks (ARC-Challenge, PubHealth) -----------------------------------------------------------------

_TRUE_WORDS = frozenset({"true", "yes", "supports", "supported", "correct"})
_FALSE_WORDS = frozenset({"false", "no", "refutes", "refuted", "incorrect"})


def normalize_true_false(prediction: str) -> str | None:
    """Map a fact-checking prediction to "true", "false", or None when it says neither.

    Words (case-insensitive, punctuation ignored): true/yes/supports/supported/correct -> "true";
    false/no/refutes/refuted/incorrect -> "false". The first word decides when it is one of these ("False, the
    study says no such thing" -> "false"); otherwise the prediction must contain words of exactly one class
    ("The claim is true." -> "true"; "true or false" -> None). Unlike the reference code, REFUTES maps to "false".
    """
    words = re.findall(r"[a-z]+", prediction.lower())
    if not words:
        return None
    if words[0] in _TRUE_WORDS:
        return "true"
    if words[0] in _FALSE_WORDS:
        return "false"
    said_true = any(w in _TRUE_WORDS for w in words)
    said_false = any(w in _FALSE_WORDS for w in words)
    if said_true != said_false:
        return "true" if said_true else "false"
    return None


#: "B", "B.", "(B)", "B)", "B:" alone.
_LABEL_ALONE = re.compile(r"\(?([A-Z])\)?[.:)]?")
#: "(B) text", "B: text", "B. text", "B) text" at the start (a bare "A text" is not a label: "A planet ...").
_LABEL_PREFIX = re.compile(r"\(([A-Z])\)|([A-Z])[.:)](?=\s|$)")
#: "The answer is B", "Answer: (C)", "the correct answer is D." — the letter itself must be a capital.
_LABEL_AFTER_ANSWER = re.compile(r"(?i:\banswer)(?:\s+(?i:is))?\s*[:\-]?\s*\(?([A-Z])\)?(?![A-Za-z0-9])")


def normalize_choice(prediction: str, choices: Mapping[str, str] | Iterable[str] = ("A", "B", "C", "D")) -> str | None:
    """Map a multiple-choice prediction to one of the option labels, or None when it names none of them.

    Args:
        prediction: the model's answer text (reflection tokens already stripped).
        choices: label -> option text (e.g. {"A": "Planetary density will decrease.", ...}), or just the labels.

    Tried in order (labels are capital letters and must be among `choices`):
    1. the whole prediction is a label: "B", "B.", "(B)", "B)", "B:";
    2. it starts with a marked label: "B: text", "B. text", "(B) text", "B) text";
    3. it says "answer (is) B" anywhere: "The answer is B", "Answer: (B)";
    4. it equals the text of exactly one option, compared case-insensitively without a final period, else after
       `normalize_answer` (needs option texts).
    """
    labels = dict(choices) if isinstance(choices, Mapping) else dict.fromkeys(choices, "")
    text = prediction.strip()
    found = _LABEL_ALONE.fullmatch(text)
    if found and found.group(1) in labels:
        return found.group(1)
    found = _LABEL_PREFIX.match(text)
    if found and (found.group(1) or found.group(2)) in labels:
        return found.group(1) or found.group(2)
    for found in _LABEL_AFTER_ANSWER.finditer(text):
        if found.group(1) in labels:
            return found.group(1)
    # Option text: compare almost verbatim first (so "+1" and "-1" stay different), then SQuAD-normalised.
    for canonical in (lambda t: t.strip().rstrip(".").strip().casefold(), normalize_answer):
        wanted = canonical(text)
        same = [label for label, option in labels.items() if option and canonical(option) == wanted]
        if wanted and len(same) == 1:
            return same[0]
    return None


def accuracy(prediction: str, gold: str, choices: Mapping[str, str] | Iterable[str] | None = None) -> float:
    """Closed-set accuracy: 1.0 iff the prediction, mapped into the closed answer set, equals the gold label.

    With `choices` (multiple choice), the prediction is mapped by `normalize_choice` and compared with `gold` (a
    label such as "C"). Without, it is a true/false task: both the prediction and `gold` (which may be "SUPPORTS",
    "true", ...) are mapped by `normalize_true_false`. A prediction that maps to nothing scores 0.
    """
    if choices is not None:
        return float(normalize_choice(prediction, choices) == gold)
    gold_label = normalize_true_false(gold)
    return float(gold_label is not None and normalize_true_false(prediction) == gold_label)


# --- ASQA (ALCE) ---------------------------------------------------------------------------------------------------


def str_em(prediction: str, short_answer_groups: Sequence[Iterable[str]]) -> float:
    """ALCE's STR-EM for one ASQA question: the fraction of the question's disambiguations (each a group of alias
    short answers) for which some alias, normalised, is a substring of the normalised prediction.

    Example: groups [["1991"], ["Bill Clinton", "Clinton"]] and prediction "Clinton won in 1992." give 1/2. Aliases
    that normalise to "" are skipped (ALCE would count them as always present). No groups gives 0.0.
    """
    if not short_answer_groups:
        return 0.0
    return sum(match(prediction, group) for group in short_answer_groups) / len(short_answer_groups)


def rouge_tokens(text: str) -> list[str]:
    """Tokens as the `rouge-score` package's default tokenizer makes them without stemming: lower-case, every run of
    characters outside [a-z0-9] is a separator (so non-ASCII letters split words, as they do there)."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences.

    Bit-parallel (Allison-Dix / Hyyrö): bit j of V stays set while b[j] is unmatched; each token of `a` updates all
    positions at once with one big-int addition, so a 300 x 300 comparison costs 300 integer operations instead of
    90,000 Python steps of the textbook dynamic programme. The unset bits of V at the end count the LCS.
    """
    if not a or not b:
        return 0
    positions: dict[str, int] = {}
    for j, token in enumerate(b):
        positions[token] = positions.get(token, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & positions.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def _rouge_l_fallback(prediction: str, reference: str) -> float:
    # ROUGE-L F-measure from the LCS, as rouge-score defines it: P = LCS/|prediction|, R = LCS/|reference|,
    # F = 2PR/(P+R), 0 when either side has no tokens or nothing is in common.
    pred, ref = rouge_tokens(prediction), rouge_tokens(reference)
    common = lcs_length(pred, ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@functools.cache
def _rouge_scorer() -> object | None:
    """The rouge-score package's ROUGE-L scorer (built once), or None when the package is not installed."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        return None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, references: Iterable[str]) -> float:
    """ROUGE-L F-measure of `prediction` against the best of `references` (ALCE takes the better of ASQA's two
    annotated long answers per question); 0.0 when there are no references.

    F = 2PR / (P + R) with P = LCS / |prediction tokens| and R = LCS / |reference tokens|, on `rouge_tokens`
    (no stemming). Uses the `rouge-score` package when it is installed and the identical `lcs_length` computation
    otherwise, so the number does not depend on the environment. Note: the paper reports ALCE's rougeLsum with
    Porter stemming, which splits sentences and stems words, so its values are close to but not the same as these.
    """
    scorer = _rouge_scorer()
    if scorer is not None:
        return max((scorer.score(ref, prediction)["rougeL"].fmeasure for ref in references), default=0.0)
    return max((_rouge_l_fallback(prediction, ref) for ref in references), default=0.0)

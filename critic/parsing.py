"""Reading a judge's reply (`Label: ...` / `Explanation: ...`) back into one of the aspect's labels.

Strict on purpose: a reply is accepted only when its label line names exactly one label of the aspect, because a
guessed label silently poisons critic training data while a rejected reply is merely re-asked (`critic.judge`).
Tolerated: case, extra whitespace (also inside brackets, `[Utility: 4]`), markdown emphasis around `Label`, a label
written without its brackets when it is the whole value (`Label: Fully supported`), and for isuse a bare score
(`Label: Utility: 4`, `Label: 4`). Rejected, with a message saying why and quoting the reply: no label line, no
known label on it, several different labels, or a label of another aspect (e.g. `[Relevant]` for issup).
"""

from __future__ import annotations

import re

from critic.aspects import ASPECT_LABELS, ISUSE, RETRIEVE, check_aspect
from selfrag import tokens as T

#: How much of a bad reply error messages quote.
QUOTE_CHARS = 300

# `Label:` at the start of a line, allowing markdown decoration ("**Label:**", "- Label :").
_LABEL_LINE = re.compile(r"^[\s*_#>`-]*label[\s*_`]*:(?P<value>.*)$", re.IGNORECASE | re.MULTILINE)
# Usually its own line, but also found after the label on the same line ("Label: [Relevant]. Explanation: ...").
_EXPLANATION = re.compile(r"explanation[\s*_`]*:(?P<value>.*)", re.IGNORECASE | re.DOTALL)
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
_UTILITY_SCORE = re.compile(r"(?:utility\s*:?\s*)?([1-5])(?:\s*/\s*5)?", re.IGNORECASE)
# Decoration a model may wrap the whole value in: quotes, backticks, emphasis, a closing full stop.
_DECORATION = " \t*_`'\".,;"


class JudgeReplyError(ValueError):
    """A judge reply that does not name exactly one label of its aspect.

    Attributes:
        aspect: the aspect the reply was for.
        reason: why it was rejected (no label line / no label / several labels / a label of another aspect).
        reply: the raw reply.
    """

    def __init__(self, aspect: str, reason: str, reply: str) -> None:
        self.aspect, self.reason, self.reply = aspect, reason, reply
        labels = ", ".join(ASPECT_LABELS[aspect])
        super().__init__(
            f"unusable {aspect} judge reply: {reason}; expected a line 'Label: <one of {labels}>'. "
            f"Raw reply: {quote_reply(reply)}"
        )


def quote_reply(reply: str, limit: int = QUOTE_CHARS) -> str:
    """`reply` as a Python string literal (newlines visible), cut to `limit` characters with a marker."""
    if len(reply) > limit:
        return repr(reply[:limit]) + f"... ({len(reply)} chars)"
    return repr(reply)


def _norm(text: str) -> str:
    """Case- and whitespace-insensitive form: lower case, runs of spaces collapsed, none next to `[ ] : /`."""
    text = re.sub(r"\s+", " ", text.strip().lower())
    return re.sub(r"\s*([\[\]:/])\s*", r"\1", text)


#: Normalised label string -> (aspect, label) for every judged aspect; the three-way retrieve token is known too, so
#: that a judge answering with it gets a precise message rather than "no label".
_KNOWN: dict[str, tuple[str, str]] = {
    _norm(label): (aspect, label) for aspect, labels in ASPECT_LABELS.items() for label in labels
}
_KNOWN[_norm(T.CONTINUE)] = (RETRIEVE + " (three-way)", T.CONTINUE)


def _bare_label(aspect: str, value: str) -> str | None:
    """The aspect's label that `value` spells without brackets (the whole value), else None."""
    bare = _norm(value)
    for label in ASPECT_LABELS[aspect]:
        if bare == _norm(label)[1:-1]:
            return label
    if aspect == ISUSE and (match := _UTILITY_SCORE.fullmatch(value.strip(_DECORATION))):
        return f"[Utility:{match.group(1)}]"
    return None


def _explanation(reply: str) -> str:
    match = _EXPLANATION.search(reply)
    if match is None:
        return ""
    # Everything after "Explanation:" is the explanation (models sometimes wrap it over lines); a second label line
    # after it would already have been rejected as a second label.
    return re.sub(r"\s+", " ", match.group("value")).strip(_DECORATION.replace(".", "")).strip()


def parse_judge_reply(aspect: str, reply: str) -> tuple[str, str]:
    """Return (label, explanation) from a judge reply for `aspect`.

    The label is one of `ASPECT_LABELS[aspect]`, spelled exactly; the explanation is the text after `Explanation:`
    with whitespace collapsed ("" when the reply has none: only the label is required).

    Raises:
        JudgeReplyError: the reply has no `Label:` line, no known label on it, several different labels (over all
            label lines), or only labels of another aspect. The message quotes the raw reply.
        InputError: `aspect` is unknown.
    """
    check_aspect(aspect)
    if not reply or not reply.strip():
        raise JudgeReplyError(aspect, "the reply is empty", reply or "")
    values = [m.group("value") for m in _LABEL_LINE.finditer(reply)]
    if not values:
        raise JudgeReplyError(aspect, "no 'Label:' line", reply)

    own: list[str] = []
    foreign: list[tuple[str, str]] = []
    for value in values:
        value = _EXPLANATION.split(value, maxsplit=1)[0]  # an explanation on the same line is not label text
        tokens = [_KNOWN.get(_norm(tok)) for tok in _BRACKETED.findall(value)]
        known = [tok for tok in tokens if tok is not None]
        if not known and (bare := _bare_label(aspect, value.strip(_DECORATION))) is not None:
            known = [(aspect, bare)]
        for owner, label in known:
            if owner == aspect:
                if label not in own:
                    own.append(label)
            elif (owner, label) not in foreign:
                foreign.append((owner, label))

    wrong = ", ".join(f"{label} (a label of {owner})" for owner, label in foreign)
    if len(own) == 1 and not foreign:
        return own[0], _explanation(reply)
    if len(own) > 1 or (own and foreign):
        names = ", ".join(own + [label for _, label in foreign])
        reason = f"several labels on the label line(s): {names}"
        if foreign:
            reason += f"; wrong-type label {wrong}"
        raise JudgeReplyError(aspect, reason, reply)
    if foreign:
        raise JudgeReplyError(aspect, f"wrong-type label: {wrong}, not one of the {aspect} labels", reply)
    raise JudgeReplyError(aspect, f"no {aspect} label on the label line ({values[0].strip()!r})", reply)

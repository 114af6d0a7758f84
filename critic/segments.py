"""Splitting an output into the segments that get their own reflection tokens (sentences, via pysbd).

The reference pipeline used spaCy and then *skipped* sentences shorter than 30 characters (appending them raw,
without tokens) and glued sentences together without spaces. Here a short sentence is attached to its neighbour
instead, so every character of the output belongs to exactly one segment and `"".join(segments) == output`.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _segmenter():
    try:
        import pysbd
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError("sentence splitting needs pysbd: pip install 'selfrag[critic]'") from err
    # clean=False keeps the text byte-identical (trailing spaces and newlines stay with their sentence).
    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (pysbd, English); joining them gives `text` back exactly. Empty text gives []."""
    if not text.strip():
        return []
    return [s for s in _segmenter().segment(text) if s]


def segment_output(text: str, *, min_chars: int = 30) -> list[str]:
    """Split `text` into segments: sentences, with any sentence shorter than `min_chars` (stripped) attached to the
    previous segment (or, at the start, to the next one). `"".join(result) == text`.
    """
    segments: list[str] = []
    pending = ""  # short sentences at the start wait for the first long one
    for sentence in split_sentences(text):
        if len(sentence.strip()) < min_chars:
            if segments:
                segments[-1] += sentence
            else:
                pending += sentence
            continue
        segments.append(pending + sentence)
        pending = ""
    if pending:
        segments.append(pending)
    return segments

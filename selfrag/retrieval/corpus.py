"""Passage corpora: the DPR `psgs_w100.tsv` layout and jsonl, streamed, with a fingerprint for index metadata.

- TSV: a header row `id<TAB>text<TAB>title`, then one passage per line. Fields are split on tabs only (a passage may
  begin with a quotation mark); a field wrapped in quotes whose inner quotes are all doubled (how DPR's file quotes
  text) is unquoted.
- jsonl: `{id, title, text}` or `{id, contents}` (pyserini style; `contents` is `title\\ntext` or plain text).

A malformed row, or a file that is not UTF-8 text, stops with one error naming the file and line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from selfrag.io import InputError, iter_jsonl, iter_lines
from selfrag.types import Passage

_DPR_QUOTED = re.compile(r'^"((?:[^"]|"")*)"$', re.DOTALL)


def _unquote(field: str) -> str:
    match = _DPR_QUOTED.match(field)
    return match.group(1).replace('""', '"') if match else field


def _iter_tsv(path: Path) -> Iterator[Passage]:
    lines = iter_lines(path, what="corpus file")
    _, first = next(lines, (1, ""))
    header = first.split("\t")
    if [h.strip().lower() for h in header] != ["id", "text", "title"]:
        raise InputError(f"{path}:1: expected the header 'id<TAB>text<TAB>title' (DPR psgs_w100.tsv layout), "
                         f"got {header!r}")
    for line_no, line in lines:
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0]:
            raise InputError(f"{path}:{line_no}: expected 3 tab-separated fields (id, text, title), "
                             f"got {len(fields)}")
        yield Passage(id=fields[0], title=_unquote(fields[2]), text=_unquote(fields[1]))


def _iter_jsonl(path: Path) -> Iterator[Passage]:
    for line_no, row in iter_jsonl(path):
        if "id" not in row or not ("text" in row or "contents" in row):
            raise InputError(f"{path}:{line_no}: a passage needs `id` and `text` (or `contents`)")
        if "text" in row:
            yield Passage(id=str(row["id"]), title=str(row.get("title") or ""), text=str(row["text"]))
        else:
            title, _, text = str(row["contents"]).partition("\n")
            yield Passage(id=str(row["id"]), title=title if text else "", text=text or title)


def iter_corpus(path: str | Path) -> Iterator[Passage]:
    """Stream the passages of a `.tsv` or `.jsonl` corpus.

    Raises:
        InputError: missing file, unknown extension, text that is not UTF-8, a malformed row (file and line
            named), or no passages at all.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such corpus file; check corpus.path")
    if path.suffix == ".tsv":
        return _at_least_one(_iter_tsv(path), path)
    if path.suffix in (".jsonl", ".json"):
        return _at_least_one(_iter_jsonl(path), path)
    raise InputError(f"{path}: unknown corpus format; use a .tsv (id, text, title) or .jsonl file")


def _at_least_one(passages: Iterator[Passage], path: Path) -> Iterator[Passage]:
    # An empty corpus would build an index that finds nothing and "works": refuse it where it is read.
    count = 0
    for passage in passages:
        count += 1
        yield passage
    if not count:
        raise InputError(f"{path}: the corpus holds no passages; check corpus.path")


def load_corpus(path: str | Path) -> list[Passage]:
    """All passages of a corpus, in file order."""
    return list(iter_corpus(path))


def corpus_fingerprint(path: str | Path) -> str:
    """sha256 of the corpus file's bytes (first 16 hex digits): identifies the corpus an index was built from."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]

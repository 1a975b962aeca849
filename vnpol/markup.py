r"""Corpus stage, continued: the inline markup authors write articles in.

Entities are marked in the running text and relations listed after it; the raw text and every
offset are computed, never typed by hand:

>>> doc = parse_markup("[[Tô Lâm|PER|p]] là [[Tổng Bí thư|POS|t]].\n=== relations\np HAS_POSITION t\n", "001")
>>> doc.text
'Tô Lâm là Tổng Bí thư.'
>>> [(e.start, e.end, e.type, e.text) for e in doc.entities]
[(0, 6, 'PER', 'Tô Lâm'), (10, 21, 'POS', 'Tổng Bí thư')]
>>> [(r.head, r.type, r.tail) for r in doc.relations]
[('T1', 'HAS_POSITION', 'T2')]
>>> parse_markup(to_markup(doc), "001") == doc
True
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .corpus import Document, Entity, Relation

_MARK_RE = re.compile(r"\[\[(?P<surface>.+?)\|(?P<type>[A-Z]+)(?:\|(?P<id>[^\]|]+))?\]\]", re.S)
_REL_RE = re.compile(r"^\s*(?P<head>\S+)\s+(?P<type>[A-Z_]+)\s+(?P<tail>\S+)\s*$")


def parse_markup(markup: str, doc_id: str, *, meta: dict[str, Any] | None = None) -> Document:
    """Build a :class:`Document` from the inline authoring format.

    Entities are written ``[[surface|TYPE]]`` or ``[[surface|TYPE|key]]`` in
    the text; a line ``=== relations`` ends the text, and each following line
    is ``head_key RELATION tail_key``. The raw text is the markup with the
    brackets removed, so offsets are computed, never typed by hand.
    """
    body, _, rel_block = markup.partition("\n=== relations\n")
    pieces: list[str] = []
    entities: list[Entity] = []
    keys: dict[str, str] = {}
    pos = 0
    cursor = 0
    for m in _MARK_RE.finditer(body):
        pieces.append(body[cursor:m.start()])
        pos += m.start() - cursor
        surface = m.group("surface")
        eid = f"T{len(entities) + 1}"
        entities.append(Entity(eid, pos, pos + len(surface), m.group("type"), surface))
        if m.group("id"):
            if m.group("id") in keys:
                raise ValueError(f"{doc_id}: markup key {m.group('id')!r} used twice")
            keys[m.group("id")] = eid
        pieces.append(surface)
        pos += len(surface)
        cursor = m.end()
    pieces.append(body[cursor:])
    text = "".join(pieces)
    if "[[" in text or "]]" in text:
        at = text.find("[[") if "[[" in text else text.find("]]")
        raise ValueError(f"{doc_id}: unbalanced markup near {text[max(0, at - 30):at + 30]!r}")
    relations: list[Relation] = []
    for n, line in enumerate(rel_block.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _REL_RE.match(line)
        if not m:
            raise ValueError(f"{doc_id}: relation line {n} {line!r}; expected 'head_key TYPE tail_key'")
        for k in ("head", "tail"):
            if m.group(k) not in keys:
                raise ValueError(f"{doc_id}: relation line {n} {line!r}: unknown key {m.group(k)!r}")
        relations.append(Relation(keys[m.group("head")], keys[m.group("tail")], m.group("type")))
    return Document(doc_id, text, entities, relations, dict(meta or {}))


def to_markup(doc: Document) -> str:
    """The inverse of :func:`parse_markup` (keys are the entity ids)."""
    out, cursor = [], 0
    for e in sorted(doc.entities, key=lambda e: e.start):
        out.append(doc.text[cursor:e.start])
        out.append(f"[[{e.text}|{e.type}|{e.id}]]")
        cursor = e.end
    out.append(doc.text[cursor:])
    rels = "\n".join(f"{r.head} {r.type} {r.tail}" for r in doc.relations)
    return "".join(out) + "\n=== relations\n" + rels + ("\n" if rels else "")


def read_markup_file(path: str | Path) -> Document:
    """Read one authoring file: ``@key: value`` header lines, a ``---`` line, then the markup.

    The header must hold ``@id``; every other key (``source``, ``genre``,
    ``date``, ``url``) becomes document metadata.
    """
    raw = Path(path).read_text(encoding="utf-8")
    header, sep, body = raw.partition("\n---\n")
    if not sep:
        raise ValueError(f"{path}: expected '@id: ...' header lines, then a line '---', then the text")
    meta: dict[str, Any] = {}
    for line in header.splitlines():
        if not line.strip():
            continue
        if not line.startswith("@") or ":" not in line:
            raise ValueError(f"{path}: header line {line!r}; expected '@key: value'")
        key, _, value = line[1:].partition(":")
        meta[key.strip()] = value.strip()
    if "id" not in meta:
        raise ValueError(f"{path}: header has no '@id: ...' line")
    doc_id = meta.pop("id")
    try:
        return parse_markup(body, doc_id, meta=meta)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None

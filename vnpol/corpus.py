"""Corpus stage: documents, entities, relations, JSON Lines and validation.

The on-disk format is JSON Lines, one document per line, exactly as in
``ANNOTATION.md``::

    {"id": "000", "text": "...", "entities": [{"id": "T1", "start": 0, "end": 4,
     "type": "PER", "text": "..."}], "relations": [{"head": "T1", "tail": "T2",
     "type": "HAS_POSITION"}]}

Extra document fields (``source``, ``genre``, ``date``, ``url``) are kept in
:attr:`Document.meta`. Predictions add ``score`` to entities and relations.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .schema import POLITICAL, Scheme
from .text import sentence_index, split_sentences


@dataclass
class Entity:
    id: str
    start: int
    end: int
    type: str
    text: str
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "start": self.start, "end": self.end, "type": self.type, "text": self.text}
        if self.score is not None:
            d["score"] = round(float(self.score), 4)
        return d


@dataclass
class Relation:
    head: str
    tail: str
    type: str
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"head": self.head, "tail": self.tail, "type": self.type}
        if self.score is not None:
            d["score"] = round(float(self.score), 4)
        return d


@dataclass(frozen=True)
class Role:
    """A (person, position, organisation) triple joined on one POS mention."""

    person: Entity
    position: Entity
    organisation: Entity | None

    def as_tuple(self) -> tuple[str, str, str]:
        return (self.person.text, self.position.text, self.organisation.text if self.organisation else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "person": self.person.text,
            "position": self.position.text,
            "organisation": self.organisation.text if self.organisation else None,
            "person_id": self.person.id,
            "position_id": self.position.id,
            "organisation_id": self.organisation.id if self.organisation else None,
        }


@dataclass
class Document:
    id: str
    text: str
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def entity(self, entity_id: str) -> Entity:
        for e in self.entities:
            if e.id == entity_id:
                return e
        raise KeyError(f"document {self.id!r} has no entity {entity_id!r}")

    @property
    def roles(self) -> list[Role]:
        """(PER, POS, ORG) triples from HAS_POSITION joined with POSITION_AT on the POS.

        A position held with no POSITION_AT gives a role with no organisation.
        """
        by_id = {e.id: e for e in self.entities}
        at: dict[str, list[str]] = {}
        for r in self.relations:
            if r.type == "POSITION_AT":
                at.setdefault(r.head, []).append(r.tail)
        roles = []
        for r in self.relations:
            if r.type != "HAS_POSITION" or r.head not in by_id or r.tail not in by_id:
                continue
            orgs = at.get(r.tail) or [None]
            for org in orgs:
                roles.append(Role(by_id[r.head], by_id[r.tail], by_id.get(org) if org else None))
        return roles

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id}
        d.update(self.meta)
        d["text"] = self.text
        d["entities"] = [e.to_dict() for e in self.entities]
        d["relations"] = [r.to_dict() for r in self.relations]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Document":
        meta = {k: v for k, v in d.items() if k not in ("id", "text", "entities", "relations", "roles")}
        return cls(
            id=str(d["id"]),
            text=d["text"],
            entities=[
                Entity(str(e["id"]), int(e["start"]), int(e["end"]), e["type"], e["text"], e.get("score"))
                for e in d.get("entities", [])
            ],
            relations=[Relation(str(r["head"]), str(r["tail"]), r["type"], r.get("score")) for r in d.get("relations", [])],
            meta=meta,
        )

    def to_json(self) -> str:
        return json_line(self.to_dict())


def json_line(obj: Any) -> str:
    """JSON for one line of a .jsonl file: UTF-8 as it is, or ``\\u`` escapes where the text holds
    lone surrogates (they come from JSON input and cannot be written as UTF-8)."""
    line = json.dumps(obj, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(obj, ensure_ascii=True)
    return line


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a corpus file, with everything needed to find and fix it."""

    path: str
    line: int
    doc_id: str | None
    position: int | None
    message: str

    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def __str__(self) -> str:
        where = self.where()
        if self.doc_id is not None:
            where += f" [doc {self.doc_id}]"
        if self.position is not None:
            where += f" @char {self.position}"
        return f"{where}: {self.message}"


class CorpusError(ValueError):
    """Raised when a corpus file has problems; ``problems`` lists each one."""

    what = "corpus"
    hint = "Run `vnpol validate FILE` to list them all."

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s) in {self.what}:\n{shown}{more}\n{self.hint}")


# --------------------------------------------------------------------------- reading


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, Problem | None]]:
    """Yield (line number, parsed object or None, problem or None) for each non-empty line."""
    path = Path(path)
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, None, Problem(str(path), lineno, None, None, f"not UTF-8 (byte {exc.start}: {raw[exc.start:exc.start+1]!r}); save the file as UTF-8")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, Problem(str(path), lineno, None, None, f"invalid JSON at column {exc.colno}: {exc.msg}")
                continue
            if not isinstance(obj, dict):
                yield lineno, None, Problem(str(path), lineno, None, None, f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield lineno, obj, None


def read_jsonl(path: str | Path, *, validate: bool = True, scheme: Scheme | None = None) -> list[Document]:
    """Read a corpus file; raise :class:`CorpusError` listing every problem if ``validate``."""
    docs, problems = load_and_validate([path], scheme=scheme) if validate else (_read_unchecked(path), [])
    if problems:
        raise CorpusError(problems)
    return docs


def _read_unchecked(path: str | Path) -> list[Document]:
    return [Document.from_dict(obj) for _, obj, _ in iter_jsonl(path) if obj is not None]


def write_jsonl(docs: Iterable[Document], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(d.to_json() + "\n")
    tmp.replace(path)


def corpus_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders into their ``*.jsonl`` files (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.rglob("*.jsonl")) if p.is_dir() else [p])
    return out


# --------------------------------------------------------------------------- validation


def validate_document(obj: dict[str, Any], path: str = "<memory>", line: int = 0, *, scheme: Scheme | None = None) -> list[Problem]:
    """Check one document object against ``scheme`` (default: the political one); return every problem found."""
    schema = scheme or POLITICAL
    problems: list[Problem] = []
    doc_id = obj.get("id")

    def add(msg: str, pos: int | None = None) -> None:
        problems.append(Problem(path, line, None if doc_id is None else str(doc_id), pos, msg))

    if doc_id is None or not isinstance(doc_id, (str, int)):
        add('missing "id" (expected a string)')
    text = obj.get("text")
    if not isinstance(text, str):
        add('missing "text" (expected the raw article text as a string)')
        return problems
    entities = obj.get("entities", [])
    relations = obj.get("relations", [])
    if not isinstance(entities, list) or not isinstance(relations, list):
        add('"entities" and "relations" must be lists')
        return problems

    sentences = split_sentences(text)
    ents: dict[str, dict[str, Any]] = {}
    spans: list[tuple[int, int, str]] = []
    for e in entities:
        if not isinstance(e, dict):
            add(f"entity {e!r} is not an object")
            continue
        eid = str(e.get("id"))
        start, end, etype = e.get("start"), e.get("end"), e.get("type")
        if eid in ents:
            add(f"duplicate entity id {eid!r}", start if isinstance(start, int) else None)
        if etype not in schema.entity_types:
            add(f"entity {eid}: unknown type {etype!r}; expected one of {', '.join(schema.entity_types)}", start if isinstance(start, int) else None)
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            add(f"entity {eid}: offsets ({start}, {end}) out of range; expected 0 <= start < end <= {len(text)}")
            continue
        if text[start:end] != e.get("text"):
            add(f"entity {eid}: surface {e.get('text')!r} != text[{start}:{end}] = {text[start:end]!r}", start)
        if text[start:end] != text[start:end].strip():
            add(f"entity {eid}: span {text[start:end]!r} starts or ends with white space", start)
        ents[eid] = e
        spans.append((start, end, eid))
    spans.sort()
    for (s1, e1, id1), (s2, e2, id2) in zip(spans, spans[1:]):
        if s2 < e1:
            kind = "nested in" if e2 <= e1 else "overlaps"
            add(f"entity {id2} ({s2}-{e2}) {kind} entity {id1} ({s1}-{e1}); entities must not overlap", s2)

    seen: set[tuple[str, str, str]] = set()
    for r in relations:
        if not isinstance(r, dict):
            add(f"relation {r!r} is not an object")
            continue
        head, tail, rtype = str(r.get("head")), str(r.get("tail")), r.get("type")
        label = f"relation {head} -{rtype}-> {tail}"
        if rtype not in schema.relation_types:
            add(f"{label}: unknown type {rtype!r}; expected one of {', '.join(schema.relation_types)}")
            continue
        missing = [x for x in (head, tail) if x not in ents]
        if missing:
            add(f"{label}: refers to missing entity id(s) {', '.join(missing)}")
            continue
        h, t = ents[head], ents[tail]
        if not schema.allowed(rtype, h["type"], t["type"]):
            expected = " or ".join(f"{a}->{b}" for a, b in sorted(schema.signatures[rtype]))
            add(f"{label}: type pair {h['type']}->{t['type']} not allowed; expected {expected}", h.get("start"))
        if head == tail:
            add(f"{label}: head and tail are the same entity", h.get("start"))
        if sentence_index(sentences, h["start"]) != sentence_index(sentences, t["start"]):
            add(f"{label}: {h['text']!r} and {t['text']!r} are in different sentences; relations need both in one sentence", t.get("start"))
        key = (head, tail, rtype)
        if key in seen:
            add(f"{label}: duplicate relation", h.get("start"))
        seen.add(key)
    return problems


def load_and_validate(paths: Iterable[str | Path], *, scheme: Scheme | None = None) -> tuple[list[Document], list[Problem]]:
    """Read every file and document, returning the good documents and all problems.

    Document ids must be unique across all the given files.
    """
    docs: list[Document] = []
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for path in corpus_files(paths):
        if not path.exists():
            problems.append(Problem(str(path), 0, None, None, "file not found"))
            continue
        for lineno, obj, problem in iter_jsonl(path):
            if problem:
                problems.append(problem)
                continue
            assert obj is not None
            doc_problems = validate_document(obj, str(path), lineno, scheme=scheme)
            doc_id = str(obj.get("id"))
            if doc_id in first_seen:
                doc_problems.append(Problem(str(path), lineno, doc_id, None, f"duplicate document id (first at {first_seen[doc_id]})"))
            else:
                first_seen[doc_id] = f"{path}:{lineno}"
            problems.extend(doc_problems)
            if not doc_problems:
                docs.append(Document.from_dict(obj))
    return docs, problems


def stats(docs: Iterable[Document]) -> dict[str, Counter]:
    """Counts per entity type, relation type, genre and source."""
    out = {"documents": Counter(), "entities": Counter(), "relations": Counter(), "genre": Counter(), "roles": Counter()}
    for d in docs:
        out["documents"][d.meta.get("source", "unknown")] += 1
        out["genre"][d.meta.get("genre", "-")] += 1
        out["entities"].update(e.type for e in d.entities)
        out["relations"].update(r.type for r in d.relations)
        out["roles"]["roles"] += len(d.roles)
    return out


def map_text(doc: Document, fn) -> Document:
    """Apply a string function (e.g. NFD) piecewise between entity boundaries, keeping offsets exact."""
    cuts = sorted({0, len(doc.text), *(x for e in doc.entities for x in (e.start, e.end))})
    new_pos: dict[int, int] = {0: 0}
    pieces = []
    for a, b in zip(cuts, cuts[1:]):
        pieces.append(fn(doc.text[a:b]))
        new_pos[b] = new_pos[a] + len(pieces[-1])
    text = "".join(pieces)
    entities = [Entity(e.id, new_pos[e.start], new_pos[e.end], e.type, text[new_pos[e.start]:new_pos[e.end]], e.score)
                for e in doc.entities]
    return Document(doc.id, text, entities, list(doc.relations), dict(doc.meta))

"""Corpus stage, continued: other annotation formats in and out.

* doccano JSONL (``entities`` with ``start_offset``/``end_offset``, ``relations`` with ``from_id``/``to_id``)
* Label Studio JSON (a list of tasks; ``labels`` and ``relation`` results)
* BRAT standoff (a folder of ``ID.txt`` + ``ID.ann``, and ``ID.json`` for document fields BRAT has no place for)
* CoNLL-style BIO (import only, entity-only training: one token per line, tag last, blank line between sentences)

:func:`read_corpus` and :func:`load_corpus` read training or evaluation data in any of them (JSON Lines,
or CoNLL for entity-only data); :func:`load_corpus` refuses a corpus with problems.

Every exporter has an importer that gives back the same :class:`Document`
(ids, offsets, types, relations and document fields), checked on the seed gold.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .corpus import CorpusError, Document, Entity, Relation, load_and_validate, read_jsonl, validate_document

if TYPE_CHECKING:
    from .schema import Scheme

FORMATS = ("jsonl", "doccano", "labelstudio", "brat", "conll")
_TID = re.compile(r"T(\d+)$")


def _num(eid: str) -> int | str:
    m = _TID.match(eid)
    return int(m.group(1)) if m else eid


def _tid(x: int | str) -> str:
    return f"T{x}" if isinstance(x, int) else str(x)


# --------------------------------------------------------------------------- doccano


def to_doccano(doc: Document) -> dict:
    return {"id": doc.id, "text": doc.text, **doc.meta,
            "entities": [{"id": _num(e.id), "label": e.type, "start_offset": e.start, "end_offset": e.end} for e in doc.entities],
            "relations": [{"id": i, "from_id": _num(r.head), "to_id": _num(r.tail), "type": r.type} for i, r in enumerate(doc.relations, 1)]}


def from_doccano(obj: dict) -> Document:
    text = obj["text"]
    meta = {k: v for k, v in obj.items() if k not in ("id", "text", "entities", "relations", "label")}
    ents = [Entity(_tid(e["id"]), e["start_offset"], e["end_offset"], e["label"], text[e["start_offset"]:e["end_offset"]])
            for e in obj.get("entities", [])]
    rels = [Relation(_tid(r["from_id"]), _tid(r["to_id"]), r["type"]) for r in obj.get("relations", [])]
    return Document(str(obj["id"]), text, ents, rels, meta)


# --------------------------------------------------------------------------- Label Studio


# The Label Studio format lives in vnpol.labelstudio (config, predictions as pre-annotations, validated export reading).
from .labelstudio import from_labelstudio, to_labelstudio  # noqa: E402,F401


# --------------------------------------------------------------------------- BRAT


def write_brat(docs: Iterable[Document], folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        ids = {e.id: f"T{i}" for i, e in enumerate(doc.entities, 1)}
        lines = [f"{ids[e.id]}\t{e.type} {e.start} {e.end}\t{e.text}" for e in doc.entities]
        lines += [f"R{i}\t{r.type} Arg1:{ids[r.head]} Arg2:{ids[r.tail]}" for i, r in enumerate(doc.relations, 1)]
        (folder / f"{doc.id}.txt").write_bytes(doc.text.encode("utf-8"))
        (folder / f"{doc.id}.ann").write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        (folder / f"{doc.id}.json").write_text(json.dumps({"id": doc.id, "entity_ids": {v: k for k, v in ids.items()}, **doc.meta},
                                                          ensure_ascii=False), encoding="utf-8")


def read_brat(folder: str | Path) -> list[Document]:
    docs = []
    for txt in sorted(Path(folder).glob("*.txt")):
        text = txt.read_bytes().decode("utf-8")
        side = txt.with_suffix(".json")
        meta = json.loads(side.read_text(encoding="utf-8")) if side.exists() else {}
        original = meta.pop("entity_ids", {})
        doc_id = str(meta.pop("id", txt.stem))
        ents, rels = [], []
        ann = txt.with_suffix(".ann")
        for line in (ann.read_text(encoding="utf-8").splitlines() if ann.exists() else []):
            if line.startswith("T"):
                tid, spec, _ = line.split("\t", 2)
                etype, start, end = spec.split(" ")[0], int(spec.split(" ")[1]), int(spec.split(" ")[-1])
                ents.append(Entity(original.get(tid, tid), start, end, etype, text[start:end]))
            elif line.startswith("R"):
                _, spec = line.split("\t", 1)
                rtype, a1, a2 = spec.split()
                h, t = a1.split(":", 1)[1], a2.split(":", 1)[1]
                rels.append(Relation(original.get(h, h), original.get(t, t), rtype))
        docs.append(Document(doc_id, text, ents, rels, meta))
    return docs


# --------------------------------------------------------------------------- CoNLL BIO (import)


class ConllError(ValueError):
    """A malformed line of a CoNLL file: names the file, the line and what was expected."""


#: tag prefixes accepted: IOB1/IOB2 (B, I), BIOES (E, S) and BILOU (L, U)
_PREFIXES = {"B": "begin", "I": "inside", "E": "end", "L": "end", "S": "single", "U": "single"}


def read_conll(path: str | Path, *, sentences_per_document: int = 50, type_map: dict[str, str] | None = None) -> list[Document]:
    """Read a CoNLL NER file into entity-only documents (``meta["entity_only"] = True``: no relation is learnt from them).

    Every tag is kept as its own entity type (``type_map`` renames some, e.g. ``{"PERSON": "PER"}``).
    IOB1, IOB2, BIOES and BILOU are read alike. One token per line, the tag in the last column
    (extra columns, as in VLSP, are ignored); tokens may be word-segmented (``Bộ_Chính_trị``:
    underscores become spaces) or syllables. ``-DOCSTART-`` lines start a new document;
    otherwise every ``sentences_per_document`` sentences make one.
    """
    type_map = type_map or {}
    path = Path(path)
    docs: list[Document] = []
    sentences: list[list[tuple[str, str, str]]] = []
    current: list[tuple[str, str, str]] = []

    def end_sentence() -> None:
        if current:
            sentences.append(list(current))
            current.clear()

    def flush_doc() -> None:
        end_sentence()
        if sentences:
            docs.append(_conll_document(f"{path.stem}-{len(docs) + 1}", sentences))
            sentences.clear()

    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("-DOCSTART-"):
            flush_doc()
        elif not line.strip():
            end_sentence()
            if len(sentences) >= sentences_per_document:
                flush_doc()
        else:
            current.append(_conll_token(line, path, lineno, type_map))
    flush_doc()
    return docs


def _conll_token(line: str, path: Path, lineno: int, type_map: dict[str, str]) -> tuple[str, str, str]:
    cols = line.split()
    if len(cols) < 2:
        raise ConllError(f"{path}:{lineno}: expected 'token ... TAG' (white-space separated), got {line!r}")
    tag = cols[-1]
    if tag == "O":
        return cols[0].replace("_", " "), "O", ""
    prefix, sep, etype = tag.partition("-")
    if not sep or prefix.upper() not in _PREFIXES or not etype:
        raise ConllError(f"{path}:{lineno}: tag {tag!r} is not O or B-/I-/E-/S-<TYPE> (IOB1, IOB2, BIOES); line {line!r}")
    return cols[0].replace("_", " "), _PREFIXES[prefix.upper()], type_map.get(etype, etype)


def _conll_document(doc_id: str, sentences: list[list[tuple[str, str, str]]]) -> Document:
    text_parts: list[str] = []
    spans: list[list] = []
    tokens: list[list[int]] = []  # the file's own tokens: word-level metrics score on these
    pos = 0
    for s_i, sent in enumerate(sentences):
        if s_i:
            text_parts.append("\n")
            pos += 1
        open_ent: list | None = None
        for t_i, (token, kind, etype) in enumerate(sent):
            if t_i:
                text_parts.append(" ")
                pos += 1
            continues = open_ent is not None and open_ent[2] == etype and kind in ("inside", "end")
            if continues:
                open_ent[1] = pos + len(token)
            else:
                open_ent = [pos, pos + len(token), etype] if kind != "O" else None
                if open_ent:
                    spans.append(open_ent)
            if kind in ("end", "single"):
                open_ent = None
            text_parts.append(token)
            tokens.append([pos, pos + len(token)])
            pos += len(token)
    text = "".join(text_parts)
    entities = [Entity(f"T{k + 1}", a, b, t, text[a:b]) for k, (a, b, t) in enumerate(spans)]
    return Document(doc_id, text, entities, [], {"source": "conll", "entity_only": True, "tokens": tokens})


# --------------------------------------------------------------------------- dispatch


def read_documents(path: str | Path, fmt: str, *, use_predictions: bool = False) -> list[Document]:
    """Read a file (folder for brat) in ``fmt``; ``use_predictions``: Label Studio tasks nobody annotated give their predictions."""
    from .corpus import read_jsonl
    from .labelstudio import read_export

    path = Path(path)
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "doccano":
        return [from_doccano(json.loads(l)) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    if fmt == "labelstudio":
        return read_export(path, use_predictions=use_predictions)
    if fmt == "brat":
        return read_brat(path)
    if fmt == "conll":
        return read_conll(path)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def write_documents(docs: list[Document], path: str | Path, fmt: str) -> None:
    from .corpus import write_jsonl

    path = Path(path)
    if fmt == "jsonl":
        write_jsonl(docs, path)
    elif fmt == "doccano":
        path.write_text("".join(json.dumps(to_doccano(d), ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    elif fmt == "labelstudio":
        path.write_text(json.dumps([to_labelstudio(d) for d in docs], ensure_ascii=False, indent=1), encoding="utf-8")
    elif fmt == "brat":
        write_brat(docs, path)
    else:
        raise ValueError(f"cannot write format {fmt!r}; expected one of jsonl, doccano, labelstudio, brat")


# --------------------------------------------------------------------------- reading a corpus in any of its formats

CONLL_SUFFIXES = (".conll", ".bio", ".iob")


def read_corpus(paths: list[str]) -> list[Document]:
    """Read corpus files without checking them (JSON Lines, or CoNLL BIO for entity-only data)."""
    docs: list[Document] = []
    for p in paths:
        docs.extend(read_conll(p) if str(p).endswith(CONLL_SUFFIXES) else read_jsonl(p, validate=False))
    return docs


def load_corpus(paths: list[str], what: str, scheme: Scheme | None = None) -> list[Document]:
    """Read and validate corpus files against ``scheme``; refuse to continue on any problem."""
    if not paths:
        return []
    conll = [p for p in paths if str(p).endswith(CONLL_SUFFIXES)]
    docs, problems = load_and_validate([p for p in paths if p not in conll], scheme=scheme)
    for path in conll:
        for doc in read_conll(path):
            found = validate_document(doc.to_dict(), str(path), scheme=scheme)
            problems.extend(found)
            if not found:
                docs.append(doc)
    if problems:
        raise CorpusError(problems)
    if not docs:
        raise ValueError(f"{what} data {paths} holds no documents")
    return docs

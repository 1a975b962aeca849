"""Corpus stage, continued: other annotation formats in and out.

* doccano JSONL (``entities`` with ``start_offset``/``end_offset``, ``relations`` with ``from_id``/``to_id``)
* Label Studio JSON (a list of tasks; ``labels`` and ``relation`` results)
* BRAT standoff (a folder of ``ID.txt`` + ``ID.ann``, and ``ID.json`` for document fields BRAT has no place for)
* CoNLL-style BIO (import only, entity-only training: one token per line, tag last, blank line between sentences)

Every exporter has an importer that gives back the same :class:`Document`
(ids, offsets, types, relations and document fields), checked on the seed gold.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

from .corpus import Document, Entity, Relation

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

#: Tags of public Vietnamese NER sets (VLSP) mapped onto the scheme; others become O.
CONLL_TYPE_MAP = {"PER": "PER", "PERSON": "PER", "ORG": "ORG", "ORGANIZATION": "ORG", "LOC": "LOC", "LOCATION": "LOC", "GPE": "LOC",
                  "POS": "POS", "DATE": "DATE", "DOC": "DOC", "EVENT": "EVENT"}


def read_conll(path: str | Path, *, sentences_per_document: int = 50, type_map: dict[str, str] | None = None) -> list[Document]:
    """Read a BIO file into entity-only documents (``meta["entity_only"] = True``: no relation is learnt from them).

    Tokens may be word-segmented (``Bộ_Chính_trị``; underscores become spaces)
    or syllables. ``-DOCSTART-`` lines start a new document; otherwise every
    ``sentences_per_document`` sentences make one.
    """
    type_map = CONLL_TYPE_MAP if type_map is None else type_map
    path = Path(path)
    docs: list[Document] = []
    sentences: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []

    def flush_doc() -> None:
        if sentences:
            docs.append(_conll_document(f"{path.stem}-{len(docs) + 1}", sentences, type_map))
            sentences.clear()

    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("-DOCSTART-"):
            if current:
                sentences.append(current)
                current = []
            flush_doc()
            continue
        if not line.strip():
            if current:
                sentences.append(current)
                current = []
                if len(sentences) >= sentences_per_document:
                    flush_doc()
            continue
        cols = line.split()
        if len(cols) < 2:
            raise ValueError(f"{path}:{lineno}: expected 'token ... TAG', got {line!r}")
        current.append((cols[0].replace("_", " "), cols[-1]))
    if current:
        sentences.append(current)
    flush_doc()
    return docs


def _conll_document(doc_id: str, sentences: list[list[tuple[str, str]]], type_map: dict[str, str]) -> Document:
    text_parts: list[str] = []
    entities: list[Entity] = []
    pos = 0
    for s_i, sent in enumerate(sentences):
        if s_i:
            text_parts.append("\n")
            pos += 1
        open_ent: list | None = None
        for t_i, (token, tag) in enumerate(sent):
            if t_i:
                text_parts.append(" ")
                pos += 1
            prefix, _, etype = tag.partition("-")
            etype = type_map.get(etype, "") if etype else ""
            starts = prefix == "B" or (prefix == "I" and (open_ent is None or open_ent[2] != etype))
            if open_ent and (prefix == "O" or starts or not etype):
                entities.append(Entity(f"T{len(entities) + 1}", open_ent[0], open_ent[1], open_ent[2], ""))
                open_ent = None
            if etype and starts:
                open_ent = [pos, pos + len(token), etype]
            elif etype and open_ent:
                open_ent[1] = pos + len(token)
            text_parts.append(token)
            pos += len(token)
        if open_ent:
            entities.append(Entity(f"T{len(entities) + 1}", open_ent[0], open_ent[1], open_ent[2], ""))
    text = "".join(text_parts)
    for e in entities:
        e.text = text[e.start:e.end]
    return Document(doc_id, text, entities, [], {"source": "conll", "entity_only": True})


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

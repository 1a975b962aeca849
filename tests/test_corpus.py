"""Corpus stage: the validator names file, line, document and position for every kind of error."""
import json
from pathlib import Path

import pytest

from vnpol.cli import main
from vnpol.corpus import CorpusError, Document, load_and_validate, read_jsonl
from vnpol.markup import parse_markup, to_markup

ROOT = Path(__file__).resolve().parent.parent
TEXT = "Ủy viên Bộ Chính trị Trần Đại Quang làm việc với Văn phòng Trung ương Đảng. Sáng 4/9."
GOOD = {
    "id": "d1", "text": TEXT,
    "entities": [
        {"id": "T1", "start": 0, "end": 7, "type": "POS", "text": "Ủy viên"},
        {"id": "T2", "start": 8, "end": 20, "type": "ORG", "text": "Bộ Chính trị"},
        {"id": "T3", "start": 21, "end": 35, "type": "PER", "text": "Trần Đại Quang"},
        {"id": "T4", "start": 49, "end": 74, "type": "ORG", "text": "Văn phòng Trung ương Đảng"},
        {"id": "T5", "start": 76, "end": 84, "type": "DATE", "text": "Sáng 4/9"},
    ],
    "relations": [
        {"head": "T3", "tail": "T1", "type": "HAS_POSITION"},
        {"head": "T1", "tail": "T2", "type": "POSITION_AT"},
        {"head": "T3", "tail": "T4", "type": "MEETS"},
    ],
}


def problems_for(tmp_path, lines):
    f = tmp_path / "bad.jsonl"
    f.write_bytes(b"".join((l if isinstance(l, bytes) else json.dumps(l, ensure_ascii=False).encode()) + b"\n" for l in lines))
    return [str(p) for p in load_and_validate([f])[1]]


def broken(**changes):
    doc = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        target = doc
        *keys, last = path.split("__")
        for k in keys:
            target = target[int(k) if k.isdigit() else k]
        target[int(last) if last.isdigit() else last] = value
    return doc


def test_good_document_has_no_problem(tmp_path):
    assert problems_for(tmp_path, [GOOD]) == []


@pytest.mark.parametrize("doc, expected", [
    (broken(entities__2__text="Trần Đại"), "bad.jsonl:1 [doc d1] @char 21: entity T3: surface 'Trần Đại' != text[21:35] = 'Trần Đại Quang'"),
    (broken(entities__2__end=999), f"entity T3: offsets (21, 999) out of range; expected 0 <= start < end <= {len(TEXT)}"),
    (broken(entities__2__type="PERSON"), "entity T3: unknown type 'PERSON'; expected one of PER, ORG, LOC, POS, DATE, DOC, EVENT"),
    (broken(entities__1__id="T1"), "duplicate entity id 'T1'"),
    (broken(relations__0__tail="T9"), "relation T3 -HAS_POSITION-> T9: refers to missing entity id(s) T9"),
    (broken(relations__1__tail="T3"), "relation T1 -POSITION_AT-> T3: type pair POS->PER not allowed; expected POS->ORG"),
    (broken(relations__2__tail="T5"), "type pair PER->DATE not allowed"),
    (broken(relations__2__tail="T5", relations__2__type="LIVES_IN"), "unknown type 'LIVES_IN'"),
])
def test_each_kind_of_error_is_reported(tmp_path, doc, expected):
    got = problems_for(tmp_path, [doc])
    assert any(expected in p for p in got), got


def test_overlapping_and_nested_entities(tmp_path):
    doc = broken()
    doc["entities"].append({"id": "T6", "start": 11, "end": 20, "type": "ORG", "text": "Chính trị"})
    doc["entities"].append({"id": "T7", "start": 30, "end": 44, "type": "PER", "text": TEXT[30:44]})
    got = problems_for(tmp_path, [doc])
    assert any("entity T6 (11-20) nested in entity T2 (8-20)" in p for p in got), got
    assert any("entity T7 (30-44) overlaps entity T3 (21-35)" in p for p in got), got


def test_relation_across_sentences(tmp_path):
    doc = broken()
    doc["relations"].append({"head": "T3", "tail": "T5", "type": "MEETS"})
    doc["entities"][4]["type"] = "ORG"
    got = problems_for(tmp_path, [doc])
    assert any("are in different sentences" in p for p in got), got


def test_duplicate_relation_and_duplicate_document(tmp_path):
    doc = broken()
    doc["relations"].append(dict(doc["relations"][0]))
    got = problems_for(tmp_path, [doc, GOOD])
    assert any("duplicate relation" in p for p in got)
    assert any("bad.jsonl:2 [doc d1]: duplicate document id (first at" in p for p in got), got


def test_invalid_json_and_non_utf8_lines(tmp_path):
    got = problems_for(tmp_path, [GOOD, b'{"id": "x", "text": ', b'{"id": "y", "text": "\xff"}'])
    assert any(p.startswith(str(tmp_path / "bad.jsonl") + ":2: invalid JSON") for p in got), got
    assert any(":3: not UTF-8" in p for p in got), got


def test_read_jsonl_raises_with_every_problem(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps(broken(entities__0__text="x")) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="1 problem"):
        read_jsonl(f)


def test_markup_round_trip_and_roles():
    doc = parse_markup("[[Bộ trưởng|POS|p]] [[Bộ Công an|ORG|o]] [[Tô Lâm|PER|x]] dự họp.\n=== relations\nx HAS_POSITION p\np POSITION_AT o\n", "m1")
    assert doc.text == "Bộ trưởng Bộ Công an Tô Lâm dự họp."
    assert [(e.start, e.end, e.type) for e in doc.entities] == [(0, 9, "POS"), (10, 20, "ORG"), (21, 27, "PER")]
    assert [r.as_tuple() for r in doc.roles] == [("Tô Lâm", "Bộ trưởng", "Bộ Công an")]
    assert parse_markup(to_markup(doc), "m1").to_dict() == doc.to_dict()
    assert Document.from_dict(doc.to_dict()).to_dict() == doc.to_dict()


def test_shipped_corpus_files_validate():
    files = [ROOT / "seeds" / "gold.jsonl", *sorted((ROOT / "data").rglob("*.jsonl"))]
    docs, problems = load_and_validate(files)
    assert problems == []
    assert {d.meta["source"] for d in docs} <= {"seed", "authored"}
    assert sum(d.meta["source"] == "seed" for d in docs) == 5


def test_seed_gold_text_is_byte_identical_to_the_articles(seed_docs):
    for d in seed_docs:
        assert (ROOT / "seeds" / f"{d.id}.txt").read_text(encoding="utf-8") == d.text


def test_cli_validate_exit_codes(tmp_path, capsys):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n", encoding="utf-8")
    bad.write_text(json.dumps(broken(entities__0__start=3), ensure_ascii=False) + "\n", encoding="utf-8")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(bad)]) == 1
    assert "[doc d1] @char 3: entity T1: surface" in capsys.readouterr().out
    assert main(["stats", str(good)]) == 0
    out = capsys.readouterr().out
    assert "HAS_POSITION" in out and "roles (total 1)" in out

"""Evaluation stage: the metrics of ANNOTATION.md on one small sentence, with exact expected counts."""
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vnpol.corpus import Document, Entity, Relation
from vnpol.evaluation import _char_tags, evaluate_documents, headline

TEXT = "Bộ trưởng Bộ Ngoại giao Bùi Thanh Sơn tiếp Đại sứ Nhật Bản."


def ent(eid, surface, etype, text=TEXT):
    start = text.index(surface)
    return Entity(eid, start, start + len(surface), etype, surface)


def gold_doc():
    ents = [ent("T1", "Bộ trưởng", "POS"), ent("T2", "Bộ Ngoại giao", "ORG"), ent("T3", "Bùi Thanh Sơn", "PER"),
            ent("T4", "Đại sứ", "POS"), ent("T5", "Nhật Bản", "LOC")]
    rels = [Relation("T3", "T1", "HAS_POSITION"), Relation("T1", "T2", "POSITION_AT")]
    return Document("d1", TEXT, ents, rels)


def predicted_doc():
    """Right: the minister's title, the ministry, Japan and POSITION_AT. Wrong: the name cut short; the envoy missed."""
    ents = [ent("P1", "Bộ trưởng", "POS"), ent("P2", "Bộ Ngoại giao", "ORG"), ent("P3", "Bùi Thanh", "PER"),
            ent("P4", "Nhật Bản", "LOC")]
    rels = [Relation("P3", "P1", "HAS_POSITION"), Relation("P1", "P2", "POSITION_AT")]
    return Document("d1", TEXT, ents, rels)


def test_entities_need_the_exact_span_and_type():
    report = evaluate_documents([gold_doc()], [predicted_doc()])
    micro = report["entities"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (3, 1, 2)
    assert (micro["precision"], micro["recall"], micro["f1"]) == (0.75, 0.6, 0.6667)
    assert (report["entities"]["PER"]["tp"], report["entities"]["PER"]["fp"], report["entities"]["PER"]["fn"]) == (0, 1, 1)
    assert report["entities"]["POS"]["recall"] == 0.5
    errors = report["errors"]
    assert errors["wrong_boundary"] == [{"doc": "d1", "gold": "Bùi Thanh Sơn", "pred": ["Bùi Thanh"], "type": "PER", "start": 24}]
    assert [e["text"] for e in errors["missed"]] == ["Đại sứ"]


def test_a_relation_counts_only_with_both_spans_right_and_roles_need_all_three_surfaces():
    report = evaluate_documents([gold_doc()], [predicted_doc()])
    rel = report["relations_end_to_end"]
    assert (rel["micro"]["tp"], rel["micro"]["fp"], rel["micro"]["fn"]) == (1, 1, 1)
    assert rel["POSITION_AT"]["f1"] == 1.0 and rel["HAS_POSITION"]["f1"] == 0.0
    assert gold_doc().roles[0].as_tuple() == ("Bùi Thanh Sơn", "Bộ trưởng", "Bộ Ngoại giao")
    assert (report["roles"]["tp"], report["roles"]["fp"], report["roles"]["fn"]) == (0, 1, 1)
    assert headline(report) == {"entity_f1": 0.6667, "relation_f1": 0.5, "roles_f1": 0.0, "word_f1": 0.6667}


def test_relations_given_gold_entities_score_the_relation_head_alone():
    given = gold_doc()
    given.relations = [Relation("T3", "T1", "HAS_POSITION"), Relation("T1", "T4", "POSITION_AT")]  # second one wrong
    report = evaluate_documents([gold_doc()], [predicted_doc()], [given])
    gg = report["relations_given_gold"]["micro"]
    assert (gg["tp"], gg["fp"], gg["fn"]) == (1, 1, 1)
    assert headline(report)["relation_given_gold_f1"] == 0.5


def test_a_missing_prediction_is_named():
    with pytest.raises(ValueError, match=r"no prediction for document\(s\) \['d1'\]"):
        evaluate_documents([gold_doc()], [])


def test_seqeval_word_tags_and_strict_iob2_scores():
    assert _char_tags(gold_doc()) == ["B-POS", "I-POS", "B-ORG", "I-ORG", "I-ORG", "B-PER", "I-PER", "I-PER", "O",
                                      "B-POS", "I-POS", "B-LOC", "I-LOC"]  # "Bản." carries the full stop
    report = evaluate_documents([gold_doc()], [predicted_doc()])
    assert report["entities_seqeval"]["PER"]["f1-score"] == 0.0
    assert report["entities_seqeval"]["ORG"]["f1-score"] == 1.0


def _char_tags_by_definition(doc):
    tags = []
    ents = sorted(doc.entities, key=lambda e: e.start)
    for m in re.finditer(r"\S+", doc.text):
        s, e = m.span()
        hit = next((x for x in ents if x.start < e and s < x.end), None)
        tags.append("O" if hit is None else ("B-" if hit.start >= s else "I-") + hit.type)
    return tags


@given(st.text(alphabet="ab ", max_size=60), st.lists(st.tuples(st.integers(0, 60), st.integers(1, 8)), max_size=8))
def test_word_tags_sweep_equals_the_definition_even_with_overlaps(text, spans):
    ents = [Entity(f"T{i}", s, min(s + n, len(text)), "ORG", "") for i, (s, n) in enumerate(spans) if s < len(text)]
    doc = Document("d", text, ents)
    assert _char_tags(doc) == _char_tags_by_definition(doc)

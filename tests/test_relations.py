"""Relations that read the sentence: lists, delegations, receptions, bylines; thresholds that mean something."""
import numpy as np
import pytest

from vnpol.decoding import decode_relations
from vnpol.encoding import pair_features


def triples(doc):
    return sorted((doc.entity(r.head).text, r.type, doc.entity(r.tail).text) for r in doc.relations)


@pytest.fixture(scope="module")
def drilled(drilled_model):
    from vnpol.predict import load

    return load(drilled_model, device="cpu", precision="fp32")


def test_the_four_hard_cases_get_exactly_their_relations(drilled, drill_doc):
    doc = drilled.predict(drill_doc.text)
    assert [(e.type, e.text) for e in doc.entities] == [(e.type, e.text) for e in drill_doc.entities]
    assert triples(doc) == [
        ("Bí thư", "POSITION_AT", "Thành ủy"),
        ("Chủ tịch", "POSITION_AT", "HĐND Thành phố"),
        ("Chủ tịch", "POSITION_AT", "Quốc hội"),
        ("Chủ tịch", "POSITION_AT", "UBND Thành phố"),
        ("Nguyễn Thị Lệ", "HAS_POSITION", "Chủ tịch"),
        ("Nguyễn Văn Nên", "HAS_POSITION", "Bí thư"),
        ("Phan Văn Mãi", "HAS_POSITION", "Chủ tịch"),
        ("Thu Hằng", "AFFILIATED_WITH", "TTXVN"),
        ("Vương Đình Huệ", "HAS_POSITION", "Chủ tịch"),
        ("Vương Đình Huệ", "MEETS", "Đoàn đại biểu Quốc hội Lào"),
        ("Đoàn công tác", "MEETS", "Tỉnh ủy Nghệ An"),
        ("Đoàn công tác", "PART_OF", "Ban Tổ chức Trung ương"),
    ]
    # each person in the list holds only their own title: the roles table credits no neighbour
    assert sorted(r.as_tuple() for r in doc.roles) == [
        ("Nguyễn Thị Lệ", "Chủ tịch", "HĐND Thành phố"), ("Nguyễn Văn Nên", "Bí thư", "Thành ủy"),
        ("Phan Văn Mãi", "Chủ tịch", "UBND Thành phố"), ("Vương Đình Huệ", "Chủ tịch", "Quốc hội")]


def test_lowering_the_relation_threshold_only_adds_and_raising_only_removes(drilled, drill_doc):
    found = {t: set(triples(drilled.predict(drill_doc.text, relation_threshold=t))) for t in (0.0, 0.3, 0.6, 0.9, 1.0)}
    assert found[0.0] >= found[0.3] >= found[0.6] >= found[0.9] >= found[1.0]
    assert len(found[0.0]) > len(found[1.0])


def test_raising_the_entity_threshold_only_removes(drilled, drill_doc):
    spans = {t: {(e.start, e.end, e.type) for e in drilled.predict(drill_doc.text, entity_threshold=t).entities}
             for t in (0.0, 0.5, 0.99, 1.01)}
    assert spans[0.0] >= spans[0.5] >= spans[0.99] >= spans[1.01] == set()
    assert spans[0.0] == {(e.start, e.end, e.type) for e in drill_doc.entities}


def test_default_thresholds_were_chosen_on_dev_and_saved(drilled_model, drilled):
    import json

    meta = json.loads((drilled_model / "vnpol.json").read_text(encoding="utf-8"))
    assert meta["thresholds"]["chosen_on"] == "development set"
    assert drilled.relation_threshold == meta["thresholds"]["relation"]
    assert drilled.entity_threshold == meta["thresholds"]["entity"]
    table = (drilled_model / "thresholds.md").read_text(encoding="utf-8")
    assert f"| {meta['thresholds']['relation']:.2f} **←**" in table
    assert (drilled_model / "thresholds.png").stat().st_size > 1000


def test_a_title_is_held_by_one_person_even_when_both_score_high():
    probs = np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0]])  # NONE, HAS_POSITION, POSITION_AT
    keys = [("Nên", "Bí thư"), ("Mãi", "Bí thư")]
    labels = ["NONE", "HAS_POSITION", "POSITION_AT"]
    assert decode_relations(probs, keys, labels, 0.5) == [("Nên", "Bí thư", "HAS_POSITION", 0.9), ("Mãi", "Bí thư", "HAS_POSITION", 0.8)]
    assert decode_relations(probs, keys, labels, 0.5, {"HAS_POSITION": "tail"}) == [("Nên", "Bí thư", "HAS_POSITION", 0.9)]
    # a relation type can have its own threshold
    assert decode_relations(probs, keys, labels, {"HAS_POSITION": 0.85}) == [("Nên", "Bí thư", "HAS_POSITION", 0.9)]


def test_list_features_see_the_neighbour_between(drilled, drill_doc):
    from vnpol.encoding import encode_document

    enc = encode_document(drill_doc, drilled.tokenizer, drilled.prep, with_labels=True)
    spans = [(w0, w1, t) for w0, w1, t, _ in enc.gold_spans]
    text = [drill_doc.text[slice(*enc.raw_span(a, b))] for a, b, _ in spans]
    nen, mai_title = text.index("Nguyễn Văn Nên"), text.index("Chủ tịch")
    own, neighbour = pair_features(spans, nen, nen + 1, enc.separators), pair_features(spans, nen, mai_title, enc.separators)
    assert own[2:4] == [0, 0] and own[6:] == [1, 1]  # nothing between, each the other's nearest
    assert neighbour[2] == 1 and neighbour[7] == 0  # another PER (Phan Văn Mãi) between, and nearer to the title
    assert neighbour[5] >= 2  # commas between

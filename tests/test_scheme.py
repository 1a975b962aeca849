"""Your own label scheme: CoNLL tags of any name, a custom JSON Lines scheme, and models that know their scheme."""
import json

import pytest

from vnpol.cli import main
from vnpol.formats import ConllError, read_conll
from vnpol.schema import POLITICAL, Scheme, SchemeError, check_compatible

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent

#: PhoNER_COVID19-style sentences (word-segmented, invented tags), IOB2
COVID = """Bệnh_nhân B-PATIENT_ID
BN91 I-PATIENT_ID
bị O
sốt B-SYMPTOM
cao I-SYMPTOM
và O
ho B-SYMPTOM
. O

Bệnh_nhân B-PATIENT_ID
BN17 I-PATIENT_ID
đã O
hết O
ho B-SYMPTOM
. O

"""


def test_conll_keeps_every_tag_and_reads_iob1_iob2_bioes_alike(tmp_path):
    iob2 = tmp_path / "a.conll"
    iob2.write_text(COVID, encoding="utf-8")
    iob1 = tmp_path / "b.conll"  # IOB1: an entity may start with I-
    iob1.write_text(COVID.replace("B-PATIENT_ID", "I-PATIENT_ID").replace("sốt B-SYMPTOM", "sốt I-SYMPTOM"), encoding="utf-8")
    bioes = tmp_path / "c.conll"
    bioes.write_text(COVID.replace("BN91 I-PATIENT_ID", "BN91 E-PATIENT_ID").replace("BN17 I-PATIENT_ID", "BN17 E-PATIENT_ID")
                     .replace("cao I-SYMPTOM", "cao E-SYMPTOM").replace("ho B-SYMPTOM", "ho S-SYMPTOM"), encoding="utf-8")
    docs = [read_conll(p)[0] for p in (iob2, iob1, bioes)]
    expected = [("PATIENT_ID", "Bệnh nhân BN91"), ("SYMPTOM", "sốt cao"), ("SYMPTOM", "ho"), ("PATIENT_ID", "Bệnh nhân BN17"), ("SYMPTOM", "ho")]
    for doc in docs:
        assert [(e.type, e.text) for e in doc.entities] == expected
        assert doc.text.startswith("Bệnh nhân BN91 bị sốt cao và ho .\nBệnh nhân BN17")


def test_a_malformed_conll_line_names_file_and_line(tmp_path):
    f = tmp_path / "bad.conll"
    f.write_text("Bệnh_nhân B-PATIENT_ID\nBN91 PATIENT\n", encoding="utf-8")
    with pytest.raises(ConllError, match=r"bad.conll:2: tag 'PATIENT' is not O or B-/I-/E-/S-<TYPE>"):
        read_conll(f)
    f.write_text("onlyonecolumn\n", encoding="utf-8")
    with pytest.raises(ConllError, match=r"bad.conll:1: expected 'token ... TAG'"):
        read_conll(f)


def test_conll_with_invented_tags_trains_with_scheme_auto_predicts_them_and_evaluates(tmp_path, capsys):
    data = tmp_path / "covid.conll"
    data.write_text(COVID * 40, encoding="utf-8")
    out = tmp_path / "covid-model"
    assert main(["train", "--config", str(ROOT / "configs/tiny.yaml"), "--output", str(out), "--set", "scheme=auto",
                 "--set", f"data.train=[{data}]", "--set", f"data.dev=[{data}]", "--set", "data.test=[]",
                 "--set", "training.epochs=10"]) == 0
    meta = json.loads((out / "vnpol.json").read_text(encoding="utf-8"))
    assert meta["entity_types"] == ["PATIENT_ID", "SYMPTOM"] and meta["relation_labels"] == ["NONE"]
    assert Scheme.load(out / "scheme.yaml").entity_types == ("PATIENT_ID", "SYMPTOM")

    from vnpol.predict import load

    doc = load(out, device="cpu").predict("Bệnh nhân BN91 bị sốt cao và ho .")
    assert [(e.type, e.text) for e in doc.entities] == [("PATIENT_ID", "Bệnh nhân BN91"), ("SYMPTOM", "sốt cao"), ("SYMPTOM", "ho")]
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", str(data), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "'entity_f1': 1.0" in printed and "'word_f1': 1.0" in printed  # seqeval strict IOB2, as NER papers report
    report = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    assert set(report["entities"]) == {"micro", "PATIENT_ID", "SYMPTOM"}

    # the political seeds are not this model's scheme: refused, naming both schemes
    assert main(["evaluate", "--model", str(out), "--data", str(ROOT / "seeds/gold.jsonl"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "trained on scheme 'auto' (entities PATIENT_ID, SYMPTOM; no relations)" in err
    assert "types PER, ORG" in err or "PER" in err.split("not in the model")[0]


def test_a_custom_json_lines_scheme_with_one_relation_trains_and_predicts_it(tmp_path):
    scheme = tmp_path / "chem.yaml"
    scheme.write_text("name: chem-v1\nentities: [DRUG, DISEASE]\nrelations:\n  TREATS: [[DRUG, DISEASE]]\n", encoding="utf-8")
    text = "Thuốc Remdesivir điều trị bệnh COVID-19 ."
    doc = {"id": "x", "text": text, "entities": [{"id": "T1", "start": 6, "end": 16, "type": "DRUG", "text": "Remdesivir"},
                                               {"id": "T2", "start": 31, "end": 39, "type": "DISEASE", "text": "COVID-19"}],
           "relations": [{"head": "T1", "tail": "T2", "type": "TREATS"}]}
    data = tmp_path / "chem.jsonl"
    data.write_text("".join(json.dumps(dict(doc, id=f"x{i}"), ensure_ascii=False) + "\n" for i in range(40)), encoding="utf-8")
    assert main(["validate", str(data)]) == 1  # not the political scheme
    assert main(["validate", "--scheme", str(scheme), str(data)]) == 0
    out = tmp_path / "chem-model"
    assert main(["train", "--config", str(ROOT / "configs/tiny.yaml"), "--output", str(out), "--set", f"scheme={scheme}",
                 "--set", f"data.train=[{data}]", "--set", f"data.dev=[{data}]", "--set", "data.test=[]",
                 "--set", "training.epochs=10"]) == 0
    from vnpol.predict import load

    ex = load(out, device="cpu")
    assert ex.scheme.name == "chem-v1" and ex.scheme.relation_types == ("TREATS",)
    got = ex.predict(text)
    assert [(e.type, e.text) for e in got.entities] == [("DRUG", "Remdesivir"), ("DISEASE", "COVID-19")]
    assert [(got.entity(r.head).text, r.type, got.entity(r.tail).text) for r in got.relations] == [("Remdesivir", "TREATS", "COVID-19")]
    assert main(["validate", "--model", str(out), str(data)]) == 0


def test_political_models_keep_working_and_schemes_are_compared_by_types():
    assert POLITICAL.name == "vnpol-annotation-v1" and len(POLITICAL.bio_labels()) == 15
    other = Scheme.from_dict({"name": "covid", "entities": ["SYMPTOM"]})
    with pytest.raises(SchemeError, match=r"trained on scheme 'covid' \(entities SYMPTOM; no relations\).*types PER, ORG"):
        check_compatible(other, POLITICAL)
    check_compatible(POLITICAL, Scheme.from_dict({"name": "subset", "entities": ["PER", "ORG"]}))  # a subset is fine
    with pytest.raises(SchemeError, match="pair \\['PER', 'GENE'\\] is not two of the entity types"):
        Scheme.from_dict({"entities": ["PER"], "relations": {"R": [["PER", "GENE"]]}})

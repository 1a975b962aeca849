"""Label Studio, without the server: the labeling config, predictions as tasks, and the export coming back exact.

The same functions meet a real Label Studio in tests/test_labelstudio_server.py (``make test-integration``).
"""
import copy
import json
import xml.etree.ElementTree as ET

import pytest

from vnpol import labelstudio as ls
from vnpol.cli import main
from vnpol.labelstudio_api import Client, LabelStudioError
from vnpol.schema import POLITICAL


def exported(task: dict, task_id: int, *annotations: dict) -> dict:
    """A task as Label Studio's JSON export gives it back (ids drawn by the tool, annotations with their flags)."""
    out = copy.deepcopy(task)
    out["id"] = task_id
    out["annotations"] = [{"id": i, "was_cancelled": False, "ground_truth": False, "updated_at": f"2026-01-0{i}T00:00:00Z", **a}
                          for i, a in enumerate(annotations, 1)]
    return out


def test_config_has_every_entity_label_with_its_colour_and_every_relation():
    root = ET.fromstring(ls.label_config())
    labels = root.find("Labels")
    assert (labels.get("name"), labels.get("toName")) == ("label", "text")
    assert [(l.get("value"), l.get("background")) for l in labels] == [(t, POLITICAL.color(t)) for t in POLITICAL.entity_types]
    assert [r.get("value") for r in root.find("Relations")] == list(POLITICAL.relation_types)
    assert root.find("Text").attrib == {"name": "text", "value": "$text"}


def test_config_reads_the_scheme_from_the_model_directory(tmp_path, capsys):
    scheme = {"name": "mini", "entities": {"PER": "#f4a9a8", "ORG": "#123456"}, "relations": {"MEETS": [["PER", "ORG"]]}}
    (tmp_path / "vnpol.json").write_text(json.dumps({"scheme": scheme}))
    assert main(["labelstudio", "config", "--model", str(tmp_path)]) == 0
    root = ET.fromstring(capsys.readouterr().out)
    assert [(l.get("value"), l.get("background")) for l in root.find("Labels")] == [("PER", "#f4a9a8"), ("ORG", "#123456")]
    assert [r.get("value") for r in root.find("Relations")] == ["MEETS"]
    (tmp_path / "no-meta").mkdir()
    assert ls.scheme_from_model(tmp_path / "no-meta") == ls.scheme_from_model(None) == ls.default_scheme()
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        ls.scheme_from_model(tmp_path / "missing")


def test_prediction_task_carries_scores_and_the_model_version(seed_docs):
    doc = copy.deepcopy(seed_docs[0])
    for i, e in enumerate(doc.entities):
        e.score = 0.5 if i % 2 else 1.0
    task = ls.prediction_task(doc, "tiny@0123abcd")
    assert task["data"] == {"text": doc.text, "doc_id": doc.id, "source": "seed"}
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == "tiny@0123abcd"
    assert prediction["score"] == pytest.approx(sum(e.score for e in doc.entities) / len(doc.entities), abs=1e-4)
    regions = [r for r in prediction["result"] if r["type"] == "labels"]
    assert [(r["id"], r["value"]["start"], r["value"]["end"], r["value"]["labels"], r["score"]) for r in regions] == \
        [(e.id, e.start, e.end, [e.type], e.score) for e in doc.entities]
    assert "score" not in str(ls.accepted(prediction))


def test_predictions_accepted_as_annotations_come_back_offset_for_offset(seed_docs):
    tasks = [exported(t, 100 + i, ls.accepted(t["predictions"][0]))
             for i, t in enumerate(ls.prediction_task(d, "gold") for d in seed_docs)]
    back = ls.documents_from_tasks(json.loads(json.dumps(tasks)), "export.json")
    assert [d.to_dict() for d in back] == [d.to_dict() for d in seed_docs]
    # the seeds' text is Vietnamese (no ASCII-only offsets): "Đoàn công tác" is text[0:13]
    assert back[0].entities[0].text == "Đoàn công tác" and back[0].entities[0].end == 13


def test_the_annotation_is_chosen_never_the_prediction(seed_docs):
    doc = seed_docs[4]
    task = ls.prediction_task(doc, "m")
    first = {"result": ls.document_results(doc)[:1]}
    latest = {"result": ls.document_results(doc)[:2]}
    skipped = {"result": [], "was_cancelled": True}
    (d,) = ls.documents_from_tasks([exported(task, 1, first, latest, skipped)])
    assert [e.id for e in d.entities] == ["T1", "T2"]  # the latest, not the skipped one
    (d,) = ls.documents_from_tasks([exported(task, 1, {**first, "ground_truth": True}, latest)])
    assert [e.id for e in d.entities] == ["T1"]  # ground truth wins
    said = []
    assert ls.documents_from_tasks([exported(task, 7)], "e.json", say=said.append) == []
    assert said == ["vnpol: e.json: 1 task(s) without an annotation left out: 7 (--predictions takes their predictions)"]
    (d,) = ls.documents_from_tasks([exported(task, 7)], use_predictions=True)
    assert len(d.entities) == len(doc.entities) and d.entities[0].score is None
    by_id = {**exported(task, 7), "predictions": [3]}  # the tool's own export names predictions by id only
    assert ls.documents_from_tasks([by_id], "e.json", use_predictions=True, say=said.append) == []
    assert said[-1].endswith("(the export lists their predictions by id only: export with `vnpol labelstudio pull`)")


def test_regions_drawn_in_the_tool_are_numbered_after_the_highest_entity_id(seed_docs):
    doc = seed_docs[4]
    result = ls.document_results(doc)
    result[0]["id"] = "aB3xYz_9"  # an id Label Studio draws for a new region
    for r in result:
        if r["type"] == "relation" and r["from_id"] == doc.entities[0].id:
            r["from_id"] = "aB3xYz_9"
    (d,) = ls.documents_from_tasks([exported(ls.prediction_task(doc, "m"), 1, {"result": result})])
    assert d.entities[0].id == f"T{len(doc.entities) + 1}"
    assert [(r.head, r.tail) for r in d.relations if r.head == d.entities[0].id] == \
        [(d.entities[0].id, r.tail) for r in doc.relations if r.head == doc.entities[0].id]


def test_export_errors_name_the_file_the_task_and_what_is_wrong(seed_docs):
    doc = seed_docs[4]
    result = ls.document_results(doc)
    result[0]["value"]["start"] += 1  # shifted offsets: the region's text no longer matches
    result[1]["value"]["labels"] = ["PER", "ORG"]
    relation = next(r for r in result if r["type"] == "relation")
    relation["labels"] = []
    with pytest.raises(ls.ExportError) as err:
        ls.documents_from_tasks([exported(ls.prediction_task(doc, "m"), 42, {"result": result})], "export.json")
    e0, e1 = doc.entities[0], doc.entities[1]
    messages = [str(p) for p in err.value.problems]
    assert messages == [
        f"export.json: task 42 [doc {doc.id}] @char {e1.start}: annotation 1: region {e1.id} ({e1.text!r}) has 2 labels ['PER', 'ORG']; give it exactly one",
        f"export.json: task 42 [doc {doc.id}]: annotation 1: relation {relation['from_id']} -> {relation['to_id']} has 0 labels []; give it exactly one",
        f"export.json: task 42 [doc {doc.id}] @char {e0.start + 1}: annotation 1: entity {e0.id}: surface {e0.text!r} != "
        f"text[{e0.start + 1}:{e0.end}] = {doc.text[e0.start + 1:e0.end]!r}",
    ] + messages[3:]  # (a relation to the dropped region follows)
    assert "Fix them in Label Studio" in str(err.value)


def test_cli_convert_from_labelstudio_refuses_a_bad_export_and_says_why(tmp_path, seed_docs, capsys):
    bad = tmp_path / "export.json"
    result = ls.document_results(seed_docs[4])
    result[0]["value"]["labels"] = ["PARTY"]
    bad.write_text(json.dumps([exported(ls.prediction_task(seed_docs[4], "m"), 5, {"result": result})]))
    assert main(["convert", str(bad), "--from", "labelstudio", "-o", str(tmp_path / "out.jsonl")]) == 2
    assert f"task 5 [doc {seed_docs[4].id}] @char 0: annotation 1: entity T1: unknown type 'PARTY'" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_predict_to_labelstudio_writes_tasks_with_the_models_predictions(tiny_model, tmp_path, seed_docs):
    article = tmp_path / "article.txt"
    article.write_text(seed_docs[4].text, encoding="utf-8")
    out = tmp_path / "tasks.json"
    assert main(["predict", "--model", str(tiny_model[0]), str(article), "--to", "labelstudio", "-o", str(out), "--quiet"]) == 0
    (task,) = json.loads(out.read_text(encoding="utf-8"))
    assert task["data"]["text"] == seed_docs[4].text
    (prediction,) = task["predictions"]
    assert prediction["model_version"].startswith("tiny@") and len(prediction["model_version"]) == len("tiny@") + 8
    regions = [r for r in prediction["result"] if r["type"] == "labels"]
    assert all(0 < r["score"] <= 1 and r["value"]["text"] == seed_docs[4].text[r["value"]["start"]:r["value"]["end"]] for r in regions)


def test_the_client_needs_url_and_key_from_the_environment():
    with pytest.raises(LabelStudioError, match="set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY in the environment"):
        Client.from_env({})
    assert Client.from_env({"LABEL_STUDIO_URL": "http://127.0.0.1:9/", "LABEL_STUDIO_API_KEY": "k" * 40}).url == "http://127.0.0.1:9"
    with pytest.raises(LabelStudioError, match=r"cannot reach Label Studio at http://127.0.0.1:9 .*is it running"):
        Client("http://127.0.0.1:9", "k" * 40, timeout=5).project(1)

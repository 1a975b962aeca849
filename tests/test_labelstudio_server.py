"""The annotation loop against a real Label Studio server that this module starts (``make test-integration``).

The server comes from the ``label-studio`` package in its own virtualenv (``.venv-labelstudio``,
made by the Makefile; ``VNPOL_LABEL_STUDIO`` may name another ``label-studio`` executable). It
runs on SQLite in a temporary data directory on a free port, with a user and a legacy token
created at start-up. Skipped only when that executable is not installed.
"""
import copy
import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vnpol import labelstudio as ls
from vnpol.cli import main
from vnpol.labelstudio_api import Client, local_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
EXECUTABLE = Path(os.environ.get("VNPOL_LABEL_STUDIO", ROOT / ".venv-labelstudio" / "bin" / "label-studio"))
USER, PASSWORD, TOKEN = "annotator@vnpol.test", "vnpol-test-password", "vnpol0test0legacy0token0000000000000000"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(URL, legacy token) of a fresh Label Studio; stopped after the module."""
    if not EXECUTABLE.exists():
        pytest.skip(f"label-studio is not installed at {EXECUTABLE}: `make test-integration` installs it into .venv-labelstudio")
    started = time.monotonic()
    with local_server(EXECUTABLE, tmp_path_factory.mktemp("label-studio"), user=USER, password=PASSWORD, token=TOKEN) as client:
        print(f"\nlabel-studio {client.request('GET', '/api/version')['release']} up at {client.url} after {time.monotonic() - started:.0f} s")
        yield client.url, TOKEN


def _with_scores(docs):
    """The seed gold standing in for a model's output: every entity and relation with a score."""
    docs = copy.deepcopy(docs)
    for d in docs:
        for i, x in enumerate([*d.entities, *d.relations]):
            x.score = 0.6 + 0.1 * (i % 4)
    return docs


def test_pre_annotate_accept_export_and_convert_back_exactly(server, seed_docs, tmp_path, monkeypatch, capsys):
    url, token = server
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    originals = seed_docs[:3]
    tasks_file = tmp_path / "tasks.json"
    ls.write_prediction_tasks([d.to_dict() for d in _with_scores(originals)], tasks_file, "seed-gold@test")

    assert main(["labelstudio", "push", str(tasks_file), "--title", "vnpol integration"]) == 0
    project_id = int(capsys.readouterr().out.strip())
    client = Client.from_env()
    project = client.project(project_id)
    assert ET.fromstring(project["label_config"]).find("Labels").get("name") == "label"
    assert project["model_version"] == "seed-gold@test"

    tasks = client.tasks(project_id)
    assert [t["data"]["doc_id"] for t in tasks] == [d.id for d in originals]
    for task in tasks:  # the annotator accepts every pre-annotation unchanged
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "seed-gold@test" and 0.6 <= prediction["score"] <= 0.9
        client.create_annotation(task["id"], ls.accepted(prediction)["result"])

    export = tmp_path / "export.json"
    assert main(["labelstudio", "pull", "--project", str(project_id), "-o", str(export)]) == 0
    corrected = tmp_path / "corrected.jsonl"
    assert main(["convert", str(export), "--from", "labelstudio", "-o", str(corrected)]) == 0
    assert main(["validate", str(corrected)]) == 0
    back = [json.loads(line) for line in corrected.read_text(encoding="utf-8").splitlines()]
    assert back == [d.to_dict() for d in originals]  # ids, offsets, types, surfaces, relations and document fields
    assert sum(len(d.entities) for d in originals) == 279 and sum(len(d.relations) for d in originals) == 80


def test_unannotated_tasks_stay_out_unless_predictions_are_asked_for(server, seed_docs, tmp_path):
    client = Client(*server)
    project = client.push([ls.prediction_task(seed_docs[4], "m@1")], ls.label_config(), title="vnpol unannotated")
    said = []
    exported = client.export(project["id"])
    assert ls.documents_from_tasks(exported, "export.json", say=said.append) == []
    assert said and said[0].startswith("vnpol: export.json: 1 task(s) without an annotation left out")
    (doc,) = ls.documents_from_tasks(exported, use_predictions=True)
    assert doc.to_dict() == seed_docs[4].to_dict()


def test_a_personal_access_token_works_as_well_as_the_legacy_token(server):
    url, token = server
    pat = Client(url, token).request("POST", "/api/token/")["token"]  # a JWT refresh token, as the UI hands it out
    client = Client(url, pat)
    assert client.request("GET", "/api/current-user/whoami")["email"] == USER
    assert client._access is not None  # exchanged at /api/token/refresh for a Bearer access token

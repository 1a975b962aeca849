"""Label Studio: the labeling configuration, tasks with the model's output as predictions, and the tool's JSON export back.

The loop (README, "Correcting the model in Label Studio")::

    label_config(scheme)            -> the project's XML (one <Labels> per entity type, one <Relation> per relation type)
    prediction_task(doc, version)   -> a task whose ``predictions`` hold the model's entities and relations (with scores)
    read_export(path)               -> the annotators' documents, validated like any corpus file

Offsets: Label Studio's ``value.start``/``value.end`` on a ``<Text>`` object are
character indices into ``data.text``, the same as ours, so no conversion is
made; every region's ``value.text`` is checked against ``text[start:end]``.
Region ids ``T1``, ``T2``... are kept; ids drawn by the tool for new regions
are numbered on after the highest ``T`` number.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from xml.sax.saxutils import quoteattr

from .corpus import CorpusError, Document, Entity, Problem, Relation, validate_document
from .schema import POLITICAL, Scheme, from_model_meta

#: The names of the control tag and of the object tag in :func:`label_config`; results carry them.
FROM_NAME, TO_NAME = "label", "text"
_TID = re.compile(r"T(\d+)$")


# --------------------------------------------------------------------------- scheme and labeling config


def default_scheme() -> Scheme:
    return POLITICAL


def scheme_from_model(model_dir: str | Path | None) -> Scheme:
    """The scheme recorded in ``MODEL/vnpol.json``; the political scheme when there is none."""
    if model_dir is None:
        return default_scheme()
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    meta_path = model_dir / "vnpol.json"
    if not meta_path.exists():
        return default_scheme()
    return from_model_meta(json.loads(meta_path.read_text(encoding="utf-8")))


def label_config(scheme: Scheme | None = None) -> str:
    """Label Studio's labeling configuration (XML) for ``scheme``: coloured entity labels and the relation labels."""
    scheme = scheme or default_scheme()
    labels = "\n".join(f"    <Label value={quoteattr(t)} background={quoteattr(scheme.color(t))}/>" for t in scheme.entity_types)
    relations = "\n".join(f"    <Relation value={quoteattr(r)}/>" for r in scheme.relation_types)
    return (f"<View>\n  <Header value={quoteattr('vnpol: ' + scheme.name)} size=\"6\"/>\n"
            f"  <Relations>\n{relations}\n  </Relations>\n"
            f"  <Labels name=\"{FROM_NAME}\" toName=\"{TO_NAME}\">\n{labels}\n  </Labels>\n"
            f"  <Text name=\"{TO_NAME}\" value=\"$text\"/>\n</View>\n")


# --------------------------------------------------------------------------- documents -> results and tasks


def document_results(doc: Document, *, scores: bool = False) -> list[dict[str, Any]]:
    """A document's entities as ``labels`` results and its relations as ``relation`` results."""
    result: list[dict[str, Any]] = []
    for e in doc.entities:
        r = {"id": e.id, "from_name": FROM_NAME, "to_name": TO_NAME, "type": "labels",
             "value": {"start": e.start, "end": e.end, "text": e.text, "labels": [e.type]}}
        if scores and e.score is not None:
            r["score"] = round(float(e.score), 4)
        result.append(r)
    for rel in doc.relations:
        r = {"from_id": rel.head, "to_id": rel.tail, "type": "relation", "direction": "right", "labels": [rel.type]}
        if scores and rel.score is not None:
            r["score"] = round(float(rel.score), 4)
        result.append(r)
    return result


def _data(doc: Document) -> dict[str, Any]:
    return {"text": doc.text, "doc_id": doc.id, **doc.meta}


def to_labelstudio(doc: Document) -> dict[str, Any]:
    """A finished annotation (gold data going into the tool as ``annotations``)."""
    return {"id": doc.id, "data": _data(doc), "annotations": [{"result": document_results(doc)}]}


def prediction_task(doc: Document, model_version: str) -> dict[str, Any]:
    """A task to import: the article in ``data`` and the model's output as one prediction, with scores."""
    result = document_results(doc, scores=True)
    found = [r["score"] for r in result if "score" in r]
    prediction: dict[str, Any] = {"model_version": model_version, "result": result}
    if found:
        prediction["score"] = round(sum(found) / len(found), 4)
    return {"data": _data(doc), "predictions": [prediction]}


def accepted(prediction: dict[str, Any]) -> dict[str, Any]:
    """The annotation an annotator makes by accepting a prediction unchanged (its results without scores)."""
    return {"result": [{k: v for k, v in r.items() if k != "score"} for r in prediction["result"]]}


# --------------------------------------------------------------------------- the export -> documents


class TaskProblem(Problem):
    """One thing wrong with one task of an export: where (file, task id, document id, character) and what."""

    @property
    def task_id(self) -> Any:
        return self.line

    def where(self) -> str:
        return f"{self.path}: task {self.line}"


class ExportError(CorpusError):
    """An export whose tasks cannot all become valid documents; ``problems`` lists each one."""

    what = "the Label Studio export"
    hint = "Fix them in Label Studio (open the task by its id), export again and convert again."


def chosen_result(task: dict[str, Any], *, use_predictions: bool = False) -> tuple[str, list[dict]] | None:
    """(where it came from, results) of the annotation to use, or None when the task has none.

    The annotation marked ground truth wins, else the most recently updated one;
    skipped (cancelled) annotations never count. Predictions are used only with
    ``use_predictions`` and only for a task nobody annotated.
    """
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if done:
        best = max(enumerate(done), key=lambda ia: (bool(ia[1].get("ground_truth")), str(ia[1].get("updated_at") or ""), ia[0]))[1]
        return f"annotation {best.get('id', '')}".strip(), best.get("result") or []
    predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    if use_predictions and predictions:
        return f"prediction {predictions[-1].get('model_version', '')}".strip(), predictions[-1].get("result") or []
    return None


def task_document(task: dict[str, Any], results: list[dict]) -> tuple[Document, list[tuple[int | None, str]]]:
    """The document a task's results describe, and the problems (position, message) only the export can show."""
    data = dict(task.get("data") or {})
    text = data.pop("text", None)
    if not isinstance(text, str):
        return Document(str(data.get("doc_id", task.get("id"))), "", [], [], {}), [(None, 'task has no "text" in its data')]
    doc_id = str(data.pop("doc_id", task.get("id")))
    problems: list[tuple[int | None, str]] = []
    regions = [r for r in results if r.get("type") == "labels"]
    new_ids = _entity_ids([str(r.get("id")) for r in regions])
    ids = dict(zip((str(r.get("id")) for r in regions), new_ids))
    entities = []
    for r, eid in zip(regions, new_ids):
        value = r.get("value") or {}
        start, end, labels = value.get("start"), value.get("end"), value.get("labels") or []
        if not (isinstance(start, int) and isinstance(end, int)):
            problems.append((None, f"region {r.get('id')}: no character offsets (value.start/end); use the labeling config of "
                                   "`vnpol labelstudio config`"))
            continue
        if len(labels) != 1:
            problems.append((start, f"region {r.get('id')} ({text[start:end]!r}) has {len(labels)} labels {labels}; give it exactly one"))
            continue
        entities.append(Entity(eid, start, end, labels[0], value.get("text", text[start:end])))
    relations = []
    for r in results:
        if r.get("type") != "relation":
            continue
        head, tail = ids.get(str(r.get("from_id")), str(r.get("from_id"))), ids.get(str(r.get("to_id")), str(r.get("to_id")))
        labels = r.get("labels") or []
        if r.get("direction") == "left":
            head, tail = tail, head
        if len(labels) != 1:
            problems.append((None, f"relation {head} -> {tail} has {len(labels)} labels {labels}; give it exactly one"))
        elif r.get("direction") == "bi":
            problems.append((None, f"relation {head} -{labels[0]}-> {tail} points both ways; relations have a head and a tail"))
        else:
            relations.append(Relation(head, tail, labels[0]))
    return Document(doc_id, text, entities, relations, data), problems


def _entity_ids(region_ids: Sequence[str]) -> list[str]:
    """An entity id for each region id: ``T<n>`` ids are kept, others are numbered on after the highest (no id is reused)."""
    n = max((int(m.group(1)) for m in map(_TID.match, region_ids) if m), default=0)
    out = []
    for rid in region_ids:
        if not _TID.match(rid):
            n += 1
            rid = f"T{n}"
        out.append(rid)
    return out


def from_labelstudio(task: dict[str, Any], *, use_predictions: bool = False) -> Document:
    """One task as a document (no validation; see :func:`read_export`)."""
    chosen = chosen_result(task, use_predictions=use_predictions)
    return task_document(task, chosen[1] if chosen else [])[0]


def documents_from_tasks(tasks: Iterable[dict[str, Any]], path: str = "<memory>", *, use_predictions: bool = False,
                         say: Callable[[str], None] | None = None, scheme: Scheme | None = None) -> list[Document]:
    """The annotated tasks as validated documents; raise :class:`ExportError` naming every problem.

    Tasks with no annotation are left out (and named through ``say``).
    """
    docs, problems, unannotated = [], [], []
    for task in tasks:
        chosen = chosen_result(task, use_predictions=use_predictions)
        task_id = task.get("id", "?")
        if chosen is None:
            unannotated.append(str(task_id))
            continue
        doc, own = task_document(task, chosen[1])
        found = [TaskProblem(path, task_id, doc.id, pos, f"{chosen[0]}: {msg}") for pos, msg in own]
        found += [TaskProblem(path, task_id, p.doc_id, p.position, f"{chosen[0]}: {p.message}") for p in validate_document(doc.to_dict(), path, scheme=scheme)]
        problems.extend(found)
        if not found:
            docs.append(doc)
    if unannotated and say:
        hint = (" (the export lists their predictions by id only: export with `vnpol labelstudio pull`)" if use_predictions
                else " (--predictions takes their predictions)")
        say(f"vnpol: {path}: {len(unannotated)} task(s) without an annotation left out: {', '.join(unannotated[:20])}"
            f"{' ...' if len(unannotated) > 20 else ''}{hint}")
    if problems:
        raise ExportError(problems)
    return docs


def read_export(path: str | Path, *, use_predictions: bool = False, say: Callable[[str], None] | None = None) -> list[Document]:
    """Read Label Studio's JSON export (a list of tasks) into validated documents."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); export with the JSON format") from None
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: expected a JSON list of tasks (Label Studio's JSON export), got {type(tasks).__name__}")
    say = say or (lambda msg: print(msg, file=sys.stderr))
    return documents_from_tasks(tasks, str(path), use_predictions=use_predictions, say=say)


def write_prediction_tasks(records: Iterable[dict[str, Any]], path: str | Path, model_version: str) -> int:
    """Write prediction records (``vnpol predict`` output) as Label Studio tasks; return how many."""
    tasks = [prediction_task(Document.from_dict(r), model_version) for r in records if "error" not in r]
    Path(path).write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    return len(tasks)

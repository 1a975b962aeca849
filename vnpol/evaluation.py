"""Evaluation stage: the metrics of ``ANNOTATION.md``, reports and error lists.

* Entities: exact character spans (same start, end, type), micro and per
  type; plus seqeval in strict IOB2 mode over word-level tags.
* Relations end to end: label, both spans and both types must match.
* Relations given gold entities: the same, with gold mentions as input.
* Roles: (PER surface, POS surface, ORG surface) triples per document.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Iterable, Sequence

from .corpus import Document


@dataclass
class PRF:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "tp": self.tp, "fp": self.fp, "fn": self.fn, "support": self.tp + self.fn}


def score_sets(gold: Iterable[tuple[str, Hashable]], pred: Iterable[tuple[str, Hashable]]) -> dict[str, PRF]:
    """Micro and per-key P/R/F1 for multisets of (key, item) pairs; key is the type."""
    g, p = Counter(gold), Counter(pred)
    out: dict[str, PRF] = {"micro": PRF()}
    for item in set(g) | set(p):
        key = item[0]
        tp = min(g[item], p[item])
        for bucket in (out["micro"], out.setdefault(key, PRF())):
            bucket.tp += tp
            bucket.fp += p[item] - tp
            bucket.fn += g[item] - tp
    return out


def entity_items(doc: Document) -> list[tuple[str, tuple]]:
    return [(e.type, (doc.id, e.start, e.end)) for e in doc.entities]


def relation_items(doc: Document) -> list[tuple[str, tuple]]:
    by_id = {e.id: e for e in doc.entities}
    out = []
    for r in doc.relations:
        h, t = by_id.get(r.head), by_id.get(r.tail)
        if h and t:
            out.append((r.type, (doc.id, h.start, h.end, h.type, t.start, t.end, t.type)))
    return out


def role_items(doc: Document) -> list[tuple[str, tuple]]:
    return [("ROLE", (doc.id, *role.as_tuple())) for role in doc.roles if role.organisation is not None]


def _pair_up(gold: Sequence[Document], pred: Sequence[Document]) -> list[tuple[Document, Document]]:
    by_id = {d.id: d for d in pred}
    missing = [g.id for g in gold if g.id not in by_id]
    if missing:
        raise ValueError(f"no prediction for document(s) {missing[:5]}")
    return [(g, by_id[g.id]) for g in gold]


def evaluate_documents(gold: Sequence[Document], pred: Sequence[Document],
                       pred_given_gold: Sequence[Document] | None = None) -> dict[str, Any]:
    """All metrics for predictions against gold; documents are matched by id."""
    pairs = _pair_up(gold, pred)

    def scored(fn) -> dict[str, Any]:
        s = score_sets([x for g, _ in pairs for x in fn(g)], [x for _, p in pairs for x in fn(p)])
        return {k: v.to_dict() for k, v in sorted(s.items(), key=lambda kv: (kv[0] != "micro", kv[0]))}

    report: dict[str, Any] = {
        "documents": len(pairs),
        "entities": scored(entity_items),
        "relations_end_to_end": scored(relation_items),
        "roles": scored(role_items)["micro"],
        "entities_seqeval": seqeval_scores(pairs),
    }
    if pred_given_gold is not None:
        gg = _pair_up(gold, pred_given_gold)
        s = score_sets([x for g, _ in gg for x in relation_items(g)], [x for _, p in gg for x in relation_items(p)])
        report["relations_given_gold"] = {k: v.to_dict() for k, v in sorted(s.items(), key=lambda kv: (kv[0] != "micro", kv[0]))}
    report["errors"] = entity_errors(pairs)
    return report


def _char_tags(doc: Document) -> list[str]:
    """IOB2 tags on the document's words: a CoNLL file's own tokens (``meta["tokens"]``), else white-space tokens."""
    import re

    tags = []
    ents = sorted(doc.entities, key=lambda e: e.start)
    first = 0  # every entity before ``first`` ends before the current token: one sweep, linear for flat entities
    tokens = doc.meta.get("tokens") or [m.span() for m in re.finditer(r"\S+", doc.text)]
    for s, e in tokens:
        while first < len(ents) and ents[first].end <= s:
            first += 1
        tag = "O"
        j = first
        while j < len(ents) and ents[j].start < e:
            if s < ents[j].end:
                tag = ("B-" if ents[j].start >= s else "I-") + ents[j].type
                break
            j += 1
        tags.append(tag)
    return tags


def seqeval_scores(pairs: list[tuple[Document, Document]]) -> dict[str, Any]:
    """seqeval, strict IOB2 mode, on white-space tokens of the raw text."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    y_true = [_char_tags(g) for g, _ in pairs]
    y_pred = [_char_tags(p) for _, p in pairs]
    if not any(t != "O" for seq in y_true + y_pred for t in seq):
        return {}
    rep = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    return {k: {m: round(float(v), 4) for m, v in vals.items()} for k, vals in rep.items()}


def entity_errors(pairs: list[tuple[Document, Document]], limit: int = 40) -> dict[str, list[dict[str, Any]]]:
    """Missed, spurious, wrong-type and wrong-boundary entities (the first ``limit`` of each)."""
    out: dict[str, list[dict[str, Any]]] = {"missed": [], "spurious": [], "wrong_type": [], "wrong_boundary": []}
    for g, p in pairs:
        gold = {(e.start, e.end): e for e in g.entities}
        pred = {(e.start, e.end): e for e in p.entities}
        for span, e in gold.items():
            if span in pred:
                if pred[span].type != e.type:
                    out["wrong_type"].append({"doc": g.id, "text": e.text, "gold": e.type, "pred": pred[span].type, "start": e.start})
                continue
            overlap = [x for x in p.entities if x.start < e.end and e.start < x.end]
            if overlap:
                out["wrong_boundary"].append({"doc": g.id, "gold": e.text, "pred": [x.text for x in overlap], "type": e.type, "start": e.start})
            else:
                out["missed"].append({"doc": g.id, "text": e.text, "type": e.type, "start": e.start})
        for span, e in pred.items():
            if span not in gold and not any(x.start < e.end and e.start < x.end for x in g.entities):
                out["spurious"].append({"doc": g.id, "text": e.text, "type": e.type, "start": e.start})
    return {k: v[:limit] for k, v in out.items()}


def headline(report: dict[str, Any]) -> dict[str, float]:
    """The few numbers used for model selection and logs."""
    out = {"entity_f1": report["entities"]["micro"]["f1"],
           "relation_f1": report["relations_end_to_end"]["micro"]["f1"],
           "roles_f1": report["roles"]["f1"]}
    if "relations_given_gold" in report:
        out["relation_given_gold_f1"] = report["relations_given_gold"]["micro"]["f1"]
    if report.get("entities_seqeval"):
        out["word_f1"] = report["entities_seqeval"]["micro avg"]["f1-score"]
    return out


def to_markdown(report: dict[str, Any], title: str = "Evaluation") -> str:
    lines = [f"# {title}", "", f"Documents: {report['documents']}", ""]

    def table(name: str, section: dict[str, Any]) -> None:
        lines.extend([f"## {name}", "", "| type | P | R | F1 | support |", "|---|---|---|---|---|"])
        for k, v in section.items():
            lines.append(f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
        lines.append("")

    table("Entities (strict character spans)", report["entities"])
    table("Relations, end to end", report["relations_end_to_end"])
    if "relations_given_gold" in report:
        table("Relations, given gold entities", report["relations_given_gold"])
    table("Roles (PER, POS, ORG)", {"micro": report["roles"]})
    if report.get("entities_seqeval"):
        sq = report["entities_seqeval"]["micro avg"]
        lines += ["## Entities, word level (seqeval, strict IOB2: the number NER papers report)", "",
                  f"P {sq['precision']:.4f}, R {sq['recall']:.4f}, F1 {sq['f1-score']:.4f}", ""]
    errors = report.get("errors", {})
    if errors:
        lines.append("## Worst errors")
        for kind, items in errors.items():
            lines.append(f"\n### {kind.replace('_', ' ')} ({len(items)} shown)\n")
            for it in items[:15]:
                lines.append(f"- `{json.dumps(it, ensure_ascii=False)}`")
        lines.append("")
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: str | Path, name: str = "evaluation", title: str = "Evaluation") -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    (out_dir / f"{name}.md").write_text(to_markdown(report, title), encoding="utf-8")


def evaluate_model(extractor, gold: Sequence[Document], batch_size: int = 16, *, given_gold: bool = True) -> dict[str, Any]:
    """Run the extractor on gold documents (raw text only, then, if ``given_gold``, with gold entities) and score."""
    plain = [Document(d.id, d.text, meta=dict(d.meta)) for d in gold]
    pred = list(extractor.iter_predict(plain, batch_size=batch_size))
    given = None
    if given_gold:
        given = list(extractor.iter_predict([Document(d.id, d.text, d.entities, [], dict(d.meta)) for d in gold],
                                            batch_size=batch_size, gold_entities=True))
    return evaluate_documents(gold, pred, given)



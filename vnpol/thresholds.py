"""Thresholds chosen on the development set, and the precision–recall curve behind them.

An entity's score is the mean probability of its tags; a relation's score is the
probability of its relation type. So raising a threshold only removes output and lowering
it only adds (down to what the decoder proposes). :func:`choose_thresholds` predicts the
development set once with both thresholds at zero, then scores every threshold on a grid
by filtering; the best F1 wins (ties: the threshold nearest 0.5). The model directory
keeps the choice (``vnpol.json["thresholds"]``) and :func:`vnpol.predict.load` uses it.

>>> from vnpol.corpus import Document, Entity, Relation
>>> gold = [Document("d", "A B", [Entity("T1", 0, 1, "PER", "A"), Entity("T2", 2, 3, "POS", "B")],
...                  [Relation("T1", "T2", "HAS_POSITION")])]
>>> pred = [Document("d", "A B", [Entity("T1", 0, 1, "PER", "A", 0.9), Entity("T2", 2, 3, "POS", "B", 0.8)],
...                  [Relation("T1", "T2", "HAS_POSITION", 0.4)])]
>>> [(row["threshold"], row["relation_f1"]) for row in pr_curve(gold, pred, grid=(0.3, 0.5))]
[(0.3, 1.0), (0.5, 0.0)]
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from .corpus import Document
from .evaluation import entity_items, relation_items, score_sets

GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))


def _filtered(doc: Document, entity_thr: float, relation_thr: float) -> Document:
    ents = [e for e in doc.entities if e.score is None or e.score >= entity_thr]
    keep = {e.id for e in ents}
    rels = [r for r in doc.relations if r.head in keep and r.tail in keep and (r.score is None or r.score >= relation_thr)]
    return Document(doc.id, doc.text, ents, rels, doc.meta)


def _prf(gold: Sequence[Document], pred: Sequence[Document], items) -> dict[str, float]:
    by_id = {d.id: d for d in pred}
    s = score_sets([x for g in gold for x in items(g)], [x for g in gold for x in items(by_id[g.id])])["micro"]
    return {"precision": s.precision, "recall": s.recall, "f1": s.f1}


def pr_curve(gold: Sequence[Document], pred: Sequence[Document], grid: Sequence[float] = GRID,
             entity_threshold: float = 0.0) -> list[dict[str, float]]:
    """Relation precision, recall and F1 (end to end) and entity ones at each threshold of ``grid``."""
    rows = []
    for t in grid:
        rel = _prf(gold, [_filtered(d, entity_threshold, t) for d in pred], relation_items)
        ent = _prf(gold, [_filtered(d, t, 0.0) for d in pred], entity_items)
        rows.append({"threshold": t, "relation_precision": rel["precision"], "relation_recall": rel["recall"],
                     "relation_f1": rel["f1"], "entity_precision": ent["precision"], "entity_recall": ent["recall"],
                     "entity_f1": ent["f1"]})
    return rows


def _best(rows: list[dict[str, float]], key: str) -> float:
    return max(rows, key=lambda r: (round(r[key], 6), -abs(r["threshold"] - 0.5)))["threshold"]


def choose_thresholds(extractor, dev: Sequence[Document], grid: Sequence[float] = GRID) -> tuple[dict[str, float], list[dict]]:
    """Predict ``dev`` once (thresholds 0) and pick the entity, then the relation threshold with the best F1."""
    plain = [Document(d.id, d.text, meta=dict(d.meta)) for d in dev]
    pred = list(extractor.iter_predict(plain, entity_threshold=0.0, relation_threshold=0.0))
    entity = _best(pr_curve(dev, pred, (0.0, *grid)), "entity_f1")
    curve = pr_curve(dev, pred, grid, entity_threshold=entity)
    return {"entity": entity, "relation": _best(curve, "relation_f1"), "chosen_on": "development set"}, curve


def write_threshold_report(curve: list[dict], chosen: dict[str, float], out_dir: str | Path) -> None:
    """``thresholds.json``, ``thresholds.md`` (the table) and ``thresholds.png`` (the curve) in ``out_dir``."""
    out = Path(out_dir)
    (out / "thresholds.json").write_text(json.dumps({"chosen": chosen, "curve": curve}, indent=1), encoding="utf-8")
    lines = ["# Thresholds (development set)", "",
             f"Chosen: entity {chosen['entity']}, relation {chosen['relation']} (best F1 on dev).", "",
             "| threshold | relation P | relation R | relation F1 | entity P | entity R | entity F1 |", "|---|---|---|---|---|---|---|"]
    for r in curve:
        mark = " **←**" if r["threshold"] == chosen["relation"] else ""
        lines.append(f"| {r['threshold']:.2f}{mark} | {r['relation_precision']:.3f} | {r['relation_recall']:.3f} | "
                     f"{r['relation_f1']:.3f} | {r['entity_precision']:.3f} | {r['entity_recall']:.3f} | {r['entity_f1']:.3f} |")
    (out / "thresholds.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plot(curve, chosen, out / "thresholds.png")


def _plot(curve: list[dict[str, Any]], chosen: dict[str, float], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    ax.plot([r["relation_recall"] for r in curve], [r["relation_precision"] for r in curve], marker=".", label="relations")
    ax.plot([r["entity_recall"] for r in curve], [r["entity_precision"] for r in curve], marker=".", label="entities")
    at = next(r for r in curve if r["threshold"] == chosen["relation"])
    ax.scatter([at["relation_recall"]], [at["relation_precision"]], s=80, facecolors="none", edgecolors="k",
               label=f"default relation threshold {chosen['relation']}")
    ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
    ax.set_title("Precision–recall on the development set"), ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)

"""The plain Hugging Face token-classification recipe, as a user would write it in an afternoon.

``AutoModelForTokenClassification`` on the same encoder as vnpol's offline recipe, words
split on white space and punctuation, the label on each word's first subword (IOB2), one
sentence per example, AdamW with linear decay, batch 16, bf16 autocast where the CPU has
AMX, every weight trainable, the best epoch on dev. Scored with vnpol's strict
character-span metrics, so its numbers sit beside vnpol's in docs/benchmarks.md.

    python scripts/peer_hf.py --lr 1.5e-4 --epochs 10 --out /tmp/peer.json

``benchmark_accuracy.py`` imports :func:`train_peer`; this file runs alone for the learning
rate grid. The peer reads the corpus files but none of vnpol's model, encoding or decoding code.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vnpol.corpus import Document, Entity, read_jsonl  # noqa: E402
from vnpol.evaluation import evaluate_documents  # noqa: E402
from vnpol.text import split_sentences  # noqa: E402

WORD = re.compile(r"\w+|[^\w\s]")


def sentence_examples(doc: Document) -> list[dict]:
    """One example per sentence: its words (with raw character spans) and IOB2 tags from the gold spans."""
    out = []
    for s0, s1 in split_sentences(doc.text):
        spans = [(s0 + m.start(), s0 + m.end()) for m in WORD.finditer(doc.text[s0:s1])]
        tags = ["O"] * len(spans)
        for e in doc.entities:
            inside = [k for k, (a, b) in enumerate(spans) if a >= e.start and b <= e.end]
            for n, k in enumerate(inside):
                tags[k] = ("B-" if n == 0 else "I-") + e.type
        out.append({"doc": doc.id, "spans": spans, "words": [doc.text[a:b] for a, b in spans], "tags": tags})
    return out


def decode(doc: Document, examples: list[dict], predicted: list[list[str]]) -> Document:
    """IOB2 word tags back to character spans (an I- after another type starts a new entity)."""
    ents: list[Entity] = []
    for ex, tags in zip(examples, predicted):
        cur = None
        for (a, b), tag in zip(ex["spans"], tags):
            kind, _, typ = tag.partition("-")
            if kind == "I" and cur and cur[2] == typ:
                cur[1] = b
                continue
            if cur:
                ents.append(Entity(f"T{len(ents) + 1}", cur[0], cur[1], cur[2], doc.text[cur[0]:cur[1]]))
            cur = [a, b, typ] if kind in ("B", "I") else None
        if cur:
            ents.append(Entity(f"T{len(ents) + 1}", cur[0], cur[1], cur[2], doc.text[cur[0]:cur[1]]))
    return Document(doc.id, doc.text, ents)


class Peer:
    def __init__(self, encoder_dir: str, labels: list[str], lr: float, epochs: int, batch_size: int = 16, seed: int = 13):
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
        self.labels = labels
        self.tok = AutoTokenizer.from_pretrained(encoder_dir)
        self.model = AutoModelForTokenClassification.from_pretrained(
            encoder_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
        self.lr, self.epochs, self.batch_size = lr, epochs, batch_size
        from vnpol.model import cpu_has_fast_bf16

        self.bf16 = cpu_has_fast_bf16()

    def batch(self, exs: list[dict], with_labels: bool):
        enc = self.tok([e["words"] for e in exs], is_split_into_words=True, truncation=True, max_length=256,
                       padding=True, return_tensors="pt")
        if with_labels:
            lab = torch.full(enc["input_ids"].shape, -100, dtype=torch.long)
            for i, e in enumerate(exs):
                prev = None
                for j, w in enumerate(enc.word_ids(i)):
                    if w is not None and w != prev:
                        lab[i, j] = self.labels.index(e["tags"][w])
                    prev = w
            enc["labels"] = lab
        return enc

    def fit_epoch(self, train: list[dict], optimizer, scheduler) -> float:
        self.model.train()
        random.shuffle(train)
        total = 0.0
        for k in range(0, len(train), self.batch_size):
            enc = self.batch(train[k:k + self.batch_size], True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                loss = self.model(**enc).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            optimizer.step(), scheduler.step(), optimizer.zero_grad()
            total += float(loss.detach())
        return total

    @torch.no_grad()
    def predict(self, docs: list[Document]) -> list[Document]:
        self.model.eval()
        out = []
        for d in docs:
            exs = [e for e in sentence_examples(d) if e["words"]]
            tags: list[list[str]] = []
            for k in range(0, len(exs), 32):
                chunk = exs[k:k + 32]
                enc = self.batch(chunk, False)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    logits = self.model(**{n: enc[n] for n in ("input_ids", "attention_mask")}).logits
                best = logits.float().argmax(-1)
                for i, e in enumerate(chunk):
                    row, prev = ["O"] * len(e["words"]), None
                    for j, w in enumerate(enc.word_ids(i)):
                        if w is not None and w != prev:
                            row[w] = self.labels[int(best[i, j])]
                        prev = w
                    tags.append(row)
            out.append(decode(d, exs, tags))
        return out


def train_peer(train_docs, dev_docs, test_docs, *, lr: float = 1.5e-4, epochs: int = 10, say=print) -> dict:
    """Train the plain recipe, keep the best epoch on dev, score dev and test with vnpol's metrics."""
    from transformers import get_linear_schedule_with_warmup

    from vnpol import encoders

    types = sorted({e.type for d in train_docs for e in d.entities})
    labels = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    peer = Peer(str(encoders.prepare(progress=lambda *_: None)), labels, lr, epochs)
    train = [e for d in train_docs for e in sentence_examples(d) if e["words"]]
    optimizer = torch.optim.AdamW(peer.model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * -(-len(train) // peer.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, steps)
    started, best, history = time.time(), None, []
    for epoch in range(1, epochs + 1):
        loss = peer.fit_epoch(train, optimizer, scheduler)
        dev = evaluate_documents(dev_docs, peer.predict(dev_docs))["entities"]["micro"]["f1"]
        history.append({"epoch": epoch, "loss": round(loss, 2), "dev_entity_f1": dev})
        say(f"peer lr={lr}: epoch {epoch} loss {loss:.1f} dev entity F1 {dev:.4f}")
        if best is None or dev > best[0]:
            best = (dev, epoch, {k: v.clone() for k, v in peer.model.state_dict().items()})
    train_seconds = round(time.time() - started, 1)
    peer.model.load_state_dict(best[2])
    dev_report = evaluate_documents(dev_docs, peer.predict(dev_docs))
    test_report = evaluate_documents(test_docs, peer.predict(test_docs))
    return {"recipe": "AutoModelForTokenClassification, sentence examples, first-subword labels", "learning_rate": lr,
            "epochs": epochs, "best_epoch": best[1], "train_seconds": train_seconds, "history": history,
            "dev": _headline(dev_report), "test": _headline(test_report)}


def _headline(report: dict) -> dict:
    ents = report["entities"]
    return {"entity_f1": ents["micro"]["f1"], "per_type": {t: v["f1"] for t, v in ents.items() if t != "micro"}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lr", type=float, default=1.5e-4)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train", default=str(ROOT / "data/authored/train.jsonl"))
    ap.add_argument("--dev", default=str(ROOT / "data/authored/dev.jsonl"))
    ap.add_argument("--test", default=str(ROOT / "seeds/gold.jsonl"))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    result = train_peer(read_jsonl(a.train), read_jsonl(a.dev), read_jsonl(a.test), lr=a.lr, epochs=a.epochs)
    Path(a.out).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("learning_rate", "best_epoch", "train_seconds", "dev", "test")}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

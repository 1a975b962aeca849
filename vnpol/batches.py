"""Training batches: encoded windows with their gold tags and relation pairs, and the joint loss."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .encoding import IGNORE, EncodedDocument, candidate_pairs, pair_features
from .model import JointModel
from .schema import Scheme


@dataclass
class Example:
    """One window with its word labels and relation pairs, ready to batch."""

    input_ids: list[int]
    word_pos: list[int]
    word_labels: list[int]
    pairs: list[list[int]]  # head start, head end, tail start, tail end, head type, tail type, label


def window_examples(enc: EncodedDocument, scheme: Scheme) -> list[Example]:
    assert enc.labels is not None
    type_ids = {t: i for i, t in enumerate(scheme.entity_types)}
    rel_ids = {r: i for i, r in enumerate(scheme.relation_labels())}
    gold_rel: dict[tuple[str, str], str] = {}
    for r in enc.doc.relations:
        gold_rel.setdefault((r.head, r.tail), r.type)
    relations_annotated = not enc.doc.meta.get("entity_only", False)
    out = []
    for w in enc.windows:
        pos = [w.first_subword[i - w.word_start] for i in range(w.own_start, w.own_end)]
        labels = [enc.labels[i] for i in range(w.own_start, w.own_end)]
        spans = w.owned_spans(enc.gold_spans)
        pairs = []
        simple = [(s[0], s[1], s[2]) for s in spans]
        for a, b in candidate_pairs(simple, enc.sentence_of_word, scheme) if relations_annotated else []:
            (h0, h1, ht, hid), (t0, t1, tt, tid) = spans[a], spans[b]
            label = gold_rel.get((hid, tid), "NONE")
            pairs.append([*w.span_positions(h0, h1), *w.span_positions(t0, t1), type_ids[ht], type_ids[tt], rel_ids[label],
                          *pair_features(simple, a, b, enc.separators)])
        out.append(Example(w.input_ids, pos, labels, pairs))
    return out


def collate(batch: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    word_index, labels, pairs = [], [], []
    for r, e in enumerate(batch):
        ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[r, : len(e.input_ids)] = 1
        word_index.extend([r, p] for p in e.word_pos)
        labels.extend(e.word_labels)
        pairs.extend([r, *p] for p in e.pairs)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "word_index": torch.tensor(word_index, dtype=torch.long).reshape(-1, 2),
        "word_labels": torch.tensor(labels, dtype=torch.long),
        "pairs": torch.tensor(pairs, dtype=torch.long).reshape(len(pairs), -1) if pairs else torch.zeros((0, 8), dtype=torch.long),
    }


def joint_loss(model: JointModel, batch: dict[str, torch.Tensor], relation_weight: float) -> tuple[torch.Tensor, float, float]:
    hidden = model.encode(batch["input_ids"], batch["attention_mask"])
    tag_logits = model.tag_logits(hidden, batch["word_index"])
    tag_loss = torch.nn.functional.cross_entropy(tag_logits.float(), batch["word_labels"], ignore_index=IGNORE)
    pairs = batch["pairs"]
    if pairs.numel():
        labels = pairs[:, 7]
        rel_logits = model.relation_logits(hidden, pairs).float()
        rel_loss = torch.nn.functional.cross_entropy(rel_logits, labels)
    else:
        rel_loss = tag_loss.new_zeros(())
    return tag_loss + relation_weight * rel_loss, float(tag_loss.detach()), float(rel_loss.detach())

"""Decoding stage: from the model's scores to entity spans and relations.

Entities: :func:`viterbi_batch` finds the best *valid* IOB2 tag sequence (an ``I-X`` only
after ``B-X`` or ``I-X``) for every sentence, and :func:`spans_from_tags` reads the spans.
Relations: :func:`decode_relations` turns each candidate pair's class probabilities into
at most one relation, keeps it when the probability of *that relation type* reaches the
threshold, and applies the scheme's ``one_per`` constraints (a title mention is held by
one person).

>>> labels = ["O", "B-PER", "I-PER"]
>>> spans_from_tags([1, 2, 0, 1], labels)
[(0, 2, 'PER'), (3, 4, 'PER')]
>>> import numpy as np
>>> lp = np.log(np.array([[0.1, 0.2, 0.7], [0.2, 0.1, 0.7]]))   # "I-PER" first would be invalid
>>> viterbi_batch([lp], labels)
[[1, 2]]
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np


@lru_cache(maxsize=16)
def _transitions(labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(to, from) transition mask (0 allowed, -inf not) and start scores for strict IOB2."""
    n = len(labels)
    mask = np.zeros((n, n), dtype=np.float32)
    for j, lj in enumerate(labels):
        if lj.startswith("I-"):
            for i, li in enumerate(labels):
                if li[2:] != lj[2:] or li == "O":
                    mask[i, j] = -np.inf
    start = np.array([-np.inf if l.startswith("I-") else 0.0 for l in labels], dtype=np.float32)
    return np.ascontiguousarray(mask.T), start


def iob2_constraints(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(from, to) transition scores and start scores of strict IOB2: 0 where allowed, -inf where not.

    >>> from_to, start = iob2_constraints(["O", "B-PER", "I-PER"])
    >>> from_to[0].tolist(), start.tolist()     # after O, I-PER may not follow; nor start a sentence
    ([0.0, 0.0, -inf], [0.0, 0.0, -inf])
    """
    to_from, start = _transitions(tuple(labels))
    return to_from.T.copy(), start.copy()


def viterbi_batch(sequences: Sequence[np.ndarray], labels: Sequence[str],
                  crf: tuple[np.ndarray, np.ndarray] | None = None) -> list[list[int]]:
    """Best valid IOB2 tag ids for several (n_words, n_labels) log-probability arrays at once.

    ``crf``: a CRF layer's learned (from, to) transition and start scores, added to the IOB2
    constraints (:meth:`vnpol.model.JointModel.crf_scores`); without it every valid transition
    scores 0. One numpy step per position of the longest sequence: decoding a window sentence
    by sentence, word by word, cost more than the rest of prediction outside the encoder.
    """
    to_from, start = _transitions(tuple(labels))
    if crf is not None:
        to_from = np.ascontiguousarray(to_from + np.asarray(crf[0], dtype=np.float32).T)
        start = start + np.asarray(crf[1], dtype=np.float32)
    lengths = [len(x) for x in sequences]
    paths: list[list[int]] = [[] for _ in sequences]
    live = [k for k, n in enumerate(lengths) if n]
    if not live:
        return paths
    n_max = max(lengths)
    lp = np.zeros((len(live), n_max, len(labels)), dtype=np.float32)
    for r, k in enumerate(live):
        lp[r, : lengths[k]] = sequences[k]
    ends = np.array([lengths[k] for k in live])
    score = lp[:, 0] + start
    back = np.zeros((len(live), n_max, len(labels)), dtype=np.int64)
    for i in range(1, n_max):
        total = score[:, None, :] + to_from  # (sequences, to, from): reduce the contiguous axis
        best = total.argmax(axis=2)
        back[:, i] = best
        step = np.take_along_axis(total, best[:, :, None], 2)[:, :, 0] + lp[:, i]
        score = np.where((i < ends)[:, None], step, score)  # finished sequences keep their final score
    last = score.argmax(axis=1).tolist()
    for r, k in enumerate(live):
        path = [last[r]]
        rows = back[r]
        for i in range(lengths[k] - 1, 0, -1):
            path.append(int(rows[i, path[-1]]))
        paths[k] = path[::-1]
    return paths


def spans_from_tags(tags: list[int], labels: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) word spans from a valid IOB2 sequence of label ids."""
    spans, start, etype = [], None, None
    for i, t in enumerate(list(tags) + [0]):
        label = labels[t]
        if start is not None and not label.startswith("I-"):
            spans.append((start, i, etype))
            start = None
        if label.startswith("B-"):
            start, etype = i, label[2:]
    return spans


def decode_relations(probs: np.ndarray, pairs: Sequence[tuple], relation_labels: Sequence[str],
                     threshold: float | dict[str, float], one_per: dict[str, str] | None = None) -> list[tuple]:
    """Relations from class probabilities, one row per candidate pair (column 0 is ``NONE``).

    Each pair proposes its most probable relation type other than ``NONE``; its score is
    that type's probability, so a lower threshold keeps more relations and a higher one
    fewer. ``threshold`` is one number or a number per relation type. ``one_per``
    (``{"HAS_POSITION": "tail"}``) keeps, for each tail (or head) mention, only its most
    probable relation of that type. ``pairs`` are (head, tail) keys; returns
    (head, tail, type, score) in input order.

    >>> p = np.array([[0.5, 0.4, 0.1], [0.3, 0.6, 0.1], [0.9, 0.05, 0.05]])
    >>> decode_relations(p, [("A", "t"), ("B", "t"), ("C", "t")], ["NONE", "HAS", "AT"], 0.3)
    [('A', 't', 'HAS', 0.4), ('B', 't', 'HAS', 0.6)]
    >>> decode_relations(p, [("A", "t"), ("B", "t"), ("C", "t")], ["NONE", "HAS", "AT"], 0.3, {"HAS": "tail"})
    [('B', 't', 'HAS', 0.6)]
    """
    found = []
    for k, (row, (head, tail)) in enumerate(zip(probs, pairs)):
        if len(row) < 2:
            continue
        best = 1 + int(np.argmax(row[1:]))
        rtype = relation_labels[best]
        thr = threshold.get(rtype, 0.5) if isinstance(threshold, dict) else threshold
        if row[best] >= thr:
            found.append((k, head, tail, rtype, round(float(row[best]), 6)))
    for rtype, side in (one_per or {}).items():
        best_of: dict = {}
        for k, head, tail, t, score in found:
            if t == rtype:
                key = tail if side == "tail" else head
                if key not in best_of or score > best_of[key][1]:
                    best_of[key] = (k, score)
        keep = {k for k, _ in best_of.values()}
        found = [f for f in found if f[3] != rtype or f[0] in keep]
    return [(h, t, r, s) for _, h, t, r, s in found]


def viterbi(log_probs: np.ndarray, labels: Sequence[str], crf: tuple[np.ndarray, np.ndarray] | None = None) -> list[int]:
    """:func:`viterbi_batch` for one sequence."""
    return viterbi_batch([log_probs], labels, crf)[0]

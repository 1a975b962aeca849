"""Inference: run a :class:`~vnpol.model.JointModel` over documents of any length.

:class:`Extractor` encodes each document into sentence-aligned windows, runs the encoder
over a batch of windows at a time, decodes entities per sentence (Viterbi) and relations
per candidate pair, and stitches the windows back into documents whose offsets index the
caller's original text. Users get one with :func:`vnpol.predict.load`.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .corpus import Document, Entity, Relation
from .decoding import decode_relations, spans_from_tags, viterbi_batch
from .encoding import EncodedDocument, Preprocessing, SubwordTokenizer, candidate_pairs, encode_document, pair_features
from .model import JointModel, resolve_precision
from .runtime import BACKENDS


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; other values are passed to torch."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    return dev


@dataclass
class _Pending:
    """A document being tagged: its encoding and what was found so far."""

    index: int
    encoded: EncodedDocument
    entities: list[Entity]
    relations: list[Relation]
    windows_left: int


def _in_text_order(entities: list[Entity], relations: list[Relation]) -> tuple[list[Entity], list[Relation]]:
    """Entities sorted by position, predicted ones numbered T1, T2, ... in that order (windows may have
    been run in any order); relations follow the new ids. Gold ids (``gold_entities``) are kept."""
    entities = sorted(entities, key=lambda e: (e.start, e.end))
    renamed = {}
    for n, e in enumerate(entities, 1):
        if e.id.startswith("\0"):
            renamed[e.id] = e.id = f"T{n}"
    order = {e.id: i for i, e in enumerate(entities)}
    relations = sorted((Relation(renamed.get(r.head, r.head), renamed.get(r.tail, r.tail), r.type, r.score) for r in relations),
                       key=lambda r: (order[r.head], order[r.tail], r.type))
    return entities, relations


class Extractor:
    """Entity and relation extraction with a loaded :class:`JointModel`."""

    def __init__(self, model: JointModel, tokenizer, prep: Preprocessing, meta: dict | None = None, *,
                 device: str | torch.device = "cpu", precision: str = "auto",
                 entity_threshold: float | None = None, relation_threshold: float | dict[str, float] | None = None,
                 batch_size: int = 16, constraints: bool = True, backend: str = "torch", say=None):
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device).eval()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "torch" and precision == "int8":
            raise ValueError("precision 'int8' needs backend='onnx' (ONNX Runtime's int8 kernels)")
        self.backend = backend
        if backend == "onnx":
            self.precision = "fp32" if precision == "auto" else precision
            self._onnx = self._open_onnx(say)
        else:
            self.precision = resolve_precision(precision, self.device)
            self._onnx = None
        if self.precision == "fp16" and self.device.type == "cuda":
            self.model.half()  # weights in fp16: half the GPU memory, no casts
        self.tokenizer = SubwordTokenizer(tokenizer)
        self.prep = prep
        self.meta = meta or {}
        self.scheme = model.scheme
        self.labels = self.scheme.bio_labels()
        self.relation_labels = self.scheme.relation_labels()
        self.type_ids = {t: i for i, t in enumerate(self.scheme.entity_types)}
        saved = self.meta.get("thresholds", {})  # chosen on the development set when the model was trained
        self.entity_threshold = saved.get("entity", 0.0) if entity_threshold is None else entity_threshold
        self.relation_threshold = saved.get("relation", 0.5) if relation_threshold is None else relation_threshold
        self.batch_size = batch_size
        #: windows are grouped by length over this many batches at a time (1: input order). On the speed
        #: benchmark's 100 articles, 8 cuts padded positions from 14.6 % to 4.6 % of the encoder's input
        self.group_batches = 8
        #: apply the scheme's one_per constraints when decoding relations (a title is held by one person)
        self.constraints = constraints

    # ------------------------------------------------------------------ public API

    def predict(self, text: str, *, doc_id: str = "0", **kwargs) -> Document:
        return self.predict_batch([text], ids=[doc_id], **kwargs)[0]

    def predict_batch(self, texts: Sequence[str], *, ids: Sequence[str] | None = None, batch_size: int | None = None,
                      entity_threshold: float | None = None, relation_threshold: float | None = None) -> list[Document]:
        docs = [Document(str(ids[i]) if ids else str(i), t) for i, t in enumerate(texts)]
        return list(self.iter_predict(docs, batch_size=batch_size, entity_threshold=entity_threshold,
                                      relation_threshold=relation_threshold))

    def iter_predict(self, docs: Iterable[Document], *, batch_size: int | None = None, gold_entities: bool = False,
                     entity_threshold: float | None = None, relation_threshold: float | None = None) -> Iterator[Document]:
        """Yield one predicted :class:`Document` per input document, in order, as each is done.

        With ``gold_entities`` the documents' own entities are kept and only
        relations are predicted (the "given gold entities" evaluation).
        Document ``meta`` (date, url, source) is carried over.
        """
        batch_size = batch_size or self.batch_size
        e_thr = self.entity_threshold if entity_threshold is None else entity_threshold
        r_thr = self.relation_threshold if relation_threshold is None else relation_threshold
        pending: list[_Pending] = []
        queue: list[tuple[_Pending, int]] = []
        for i, doc in enumerate(docs):
            if not isinstance(doc.text, str):
                raise TypeError(f"document {doc.id!r}: text must be a str, got {type(doc.text).__name__}")
            enc = encode_document(doc, self.tokenizer, self.prep, with_labels=gold_entities, scheme=self.scheme,
                                  exact_spans=gold_entities)
            p = _Pending(i, enc, [], [], len(enc.windows))
            pending.append(p)
            queue.extend((p, k) for k in range(len(enc.windows)))
            if len(queue) >= batch_size * self.group_batches:
                self._run_grouped(queue, batch_size, gold_entities, e_thr, r_thr)
                yield from self._flush(pending)
        self._run_grouped(queue, batch_size, gold_entities, e_thr, r_thr)
        yield from self._flush(pending)
        yield from self._flush(pending, final=True)

    def autocast(self):
        """The numeric context the encoder and heads run in (bf16 autocast, or nothing)."""
        if self.precision in ("fp32", "int8") or (self.precision == "fp16" and self.device.type == "cuda"):
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # ------------------------------------------------------------------ internals

    def _open_onnx(self, say):
        from .runtime import ONNX_PRECISIONS, onnx_encoder

        if self.device.type != "cpu":
            raise ValueError(f"backend 'onnx' runs on the CPU, not on {self.device}; use backend='torch' there")
        if self.precision not in ONNX_PRECISIONS:
            raise ValueError(f"backend 'onnx' runs in precision {', '.join(ONNX_PRECISIONS)}, got {self.precision!r}")
        return onnx_encoder(self.model.encoder, precision=self.precision,
                            say=say or (lambda message: print(message, file=sys.stderr)))

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self._onnx is not None:
            return self._onnx(ids, mask)
        with self.autocast():
            return self.model.encode(ids.to(self.device), mask.to(self.device))

    @staticmethod
    def _flush(pending: list[_Pending], final: bool = False) -> Iterator[Document]:
        while pending and (pending[0].windows_left == 0 or final):
            p = pending.pop(0)
            doc = p.encoded.doc
            yield Document(doc.id, doc.text, *_in_text_order(p.entities, p.relations), dict(doc.meta))

    def _run_grouped(self, queue: list[tuple[_Pending, int]], batch_size: int, *args) -> None:
        """Run every queued window, in batches of windows of similar length (no dead padded positions),
        and empty the queue. Results do not depend on the grouping: windows are encoded independently."""
        queue.sort(key=lambda item: len(item[0].encoded.windows[item[1]].input_ids))
        for i in range(0, len(queue), batch_size):
            self._run(queue[i:i + batch_size], *args)
        queue.clear()

    @torch.inference_mode()
    def _run(self, items: list[tuple[_Pending, int]], gold_entities: bool, e_thr: float, r_thr: float) -> None:
        windows = [p.encoded.windows[k] for p, k in items]
        width = max(len(w.input_ids) for w in windows)
        ids = torch.full((len(windows), width), self.tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(windows), width), dtype=torch.long)
        for r, w in enumerate(windows):
            ids[r, : len(w.input_ids)] = torch.tensor(w.input_ids)
            mask[r, : len(w.input_ids)] = 1
        hidden = self._encode(ids, mask)

        word_rows, word_pos = [], []
        for r, w in enumerate(windows):
            for i in range(w.own_start, w.own_end):
                word_rows.append(r)
                word_pos.append(w.first_subword[i - w.word_start])
        if not word_rows:
            for p, _ in items:
                p.windows_left -= 1
            return
        index = torch.tensor([word_rows, word_pos], dtype=torch.long, device=self.device).T
        with self.autocast():
            logits = self.model.tag_logits(hidden, index)
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()

        if gold_entities:
            window_spans = [self._gold_spans(p.encoded, w) for (p, _), w in zip(items, windows)]
        else:
            window_spans = self._decode([p.encoded for p, _ in items], windows, log_probs, e_thr, self.labels,
                                        self.model.crf_scores())
        pair_rows: list[list[int]] = []
        pair_refs: list[tuple[_Pending, Entity, Entity]] = []
        for r, ((p, _), w, spans) in enumerate(zip(items, windows, window_spans)):
            enc = p.encoded
            ents = []
            for w0, w1, etype, score, eid in spans:
                start, end = enc.raw_span(w0, w1)
                ent = Entity(eid or f"\0{len(p.entities) + 1}", start, end, etype, enc.doc.text[start:end], score)
                p.entities.append(ent)
                ents.append(ent)
            simple = [(w0, w1, etype) for w0, w1, etype, _, _ in spans]
            for a, b in candidate_pairs(simple, enc.sentence_of_word, self.scheme):
                (h0, h1, ht), (t0, t1, tt) = simple[a], simple[b]
                pair_rows.append([r, *w.span_positions(h0, h1), *w.span_positions(t0, t1), self.type_ids[ht], self.type_ids[tt], 0,
                                  *pair_features(simple, a, b, enc.separators)])
                pair_refs.append((p, ents[a], ents[b]))
        if pair_rows:
            pairs = torch.tensor(pair_rows, dtype=torch.long, device=self.device)
            with self.autocast():
                logits = self.model.relation_logits(hidden, pairs)
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            by_key = {(id(p), e.id): (p, e) for p, h, t in pair_refs for e in (h, t)}
            keys = [((id(p), h.id), (id(p), t.id)) for p, h, t in pair_refs]
            for hk, tk, rtype, score in decode_relations(probs, keys, self.relation_labels, r_thr,
                                                             self.scheme.one_per if self.constraints else None):
                p = by_key[hk][0]
                p.relations.append(Relation(by_key[hk][1].id, by_key[tk][1].id, rtype, score))
        for p, _ in items:
            p.windows_left -= 1

    @staticmethod
    def _decode(encs: list[EncodedDocument], windows: list, log_probs: np.ndarray, threshold: float, labels: list[str],
                crf: tuple[np.ndarray, np.ndarray] | None = None):
        """Viterbi per sentence over each window's own words, all sentences of the batch stepped together
        (with the CRF layer's transition scores when the model has one).

        ``log_probs`` holds the windows' own words one after the other. Returns, per window,
        (w0, w1, type, score, None) spans.
        """
        bounds: list[tuple[int, int, int, int]] = []  # (window, first word, end word, row in log_probs)
        row = 0
        for k, (enc, w) in enumerate(zip(encs, windows)):
            sent, i = enc.sentence_of_word, w.own_start
            while i < w.own_end:
                j = i
                while j < w.own_end and sent[j] == sent[i]:
                    j += 1
                bounds.append((k, i, j, row + i - w.own_start))
                i = j
            row += w.own_end - w.own_start
        slices = [log_probs[r0: r0 + j - i] for _, i, j, r0 in bounds]
        out: list[list] = [[] for _ in windows]
        for (k, i, _, _), lp, tags in zip(bounds, slices, viterbi_batch(slices, labels, crf)):
            for a, b, etype in spans_from_tags(tags, labels):
                score = float(np.exp(lp[np.arange(a, b), tags[a:b]].mean()))
                if score >= threshold:
                    out[k].append((i + a, i + b, etype, score, None))
        return out

    @staticmethod
    def _gold_spans(enc: EncodedDocument, w):
        return [(w0, w1, etype, None, eid) for w0, w1, etype, eid in w.owned_spans(sorted(enc.gold_spans))]

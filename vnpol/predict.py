"""Predict stage: tag new text with a trained model.

>>> from vnpol.predict import load                                  # doctest: +SKIP
>>> extractor = load("models/demo")                                 # doctest: +SKIP
>>> doc = extractor.predict("Sáng 4/9, Tổng Bí thư Nguyễn Phú Trọng làm việc với Ban Tổ chức Trung ương.")  # doctest: +SKIP
>>> [(e.type, e.text) for e in doc.entities]                        # doctest: +SKIP
[('DATE', 'Sáng 4/9'), ('POS', 'Tổng Bí thư'), ('PER', 'Nguyễn Phú Trọng'), ('ORG', 'Ban Tổ chức Trung ương')]

Offsets index the caller's exact string (NFD, old tone marks, CRLF and all):
``text[e.start:e.end] == e.text`` always holds. Documents of any length go
through the same windows as training, a batch of windows at a time, so
memory does not grow with the length of the text.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .corpus import Document, Entity, Relation
from .encoding import EncodedDocument, Preprocessing, SubwordTokenizer, candidate_pairs, encode_document
from .model import REL_LABELS, TYPE2ID, JointModel, resolve_precision, spans_from_tags, viterbi_batch


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


class Extractor:
    """Entity and relation extraction with a loaded :class:`JointModel`."""

    def __init__(self, model: JointModel, tokenizer, prep: Preprocessing, meta: dict | None = None, *,
                 device: str | torch.device = "cpu", precision: str = "auto",
                 entity_threshold: float = 0.0, relation_threshold: float = 0.5, batch_size: int = 16):
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device).eval()
        self.precision = resolve_precision(precision, self.device)
        if self.precision == "fp16" and self.device.type == "cuda":
            self.model.half()  # weights in fp16: half the GPU memory, no casts
        self.tokenizer = SubwordTokenizer(tokenizer)
        self.prep = prep
        self.meta = meta or {}
        self.entity_threshold = entity_threshold
        self.relation_threshold = relation_threshold
        self.batch_size = batch_size

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
            enc = encode_document(doc, self.tokenizer, self.prep, with_labels=gold_entities)
            p = _Pending(i, enc, [], [], len(enc.windows))
            pending.append(p)
            queue.extend((p, k) for k in range(len(enc.windows)))
            while len(queue) >= batch_size:
                self._run(queue[:batch_size], gold_entities, e_thr, r_thr)
                del queue[:batch_size]
                yield from self._flush(pending)
        while queue:
            self._run(queue[:batch_size], gold_entities, e_thr, r_thr)
            del queue[:batch_size]
        yield from self._flush(pending)
        yield from self._flush(pending, final=True)

    def autocast(self):
        """The numeric context the encoder and heads run in (bf16 autocast, or nothing)."""
        if self.precision == "fp32" or (self.precision == "fp16" and self.device.type == "cuda"):
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _flush(pending: list[_Pending], final: bool = False) -> Iterator[Document]:
        while pending and (pending[0].windows_left == 0 or final):
            p = pending.pop(0)
            doc = p.encoded.doc
            yield Document(doc.id, doc.text, p.entities, p.relations, dict(doc.meta))

    @torch.inference_mode()
    def _run(self, items: list[tuple[_Pending, int]], gold_entities: bool, e_thr: float, r_thr: float) -> None:
        windows = [p.encoded.windows[k] for p, k in items]
        width = max(len(w.input_ids) for w in windows)
        ids = torch.full((len(windows), width), self.tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(windows), width), dtype=torch.long)
        for r, w in enumerate(windows):
            ids[r, : len(w.input_ids)] = torch.tensor(w.input_ids)
            mask[r, : len(w.input_ids)] = 1
        with self.autocast():
            hidden = self.model.encode(ids.to(self.device), mask.to(self.device))

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
            window_spans = self._decode([p.encoded for p, _ in items], windows, log_probs, e_thr)
        pair_rows: list[list[int]] = []
        pair_refs: list[tuple[_Pending, Entity, Entity]] = []
        for r, ((p, _), w, spans) in enumerate(zip(items, windows, window_spans)):
            enc = p.encoded
            ents = []
            for w0, w1, etype, score, eid in spans:
                start, end = enc.raw_span(w0, w1)
                ent = Entity(eid or f"T{len(p.entities) + 1}", start, end, etype, enc.doc.text[start:end], score)
                p.entities.append(ent)
                ents.append(ent)
            simple = [(w0, w1, etype) for w0, w1, etype, _, _ in spans]
            for a, b in candidate_pairs(simple, enc.sentence_of_word):
                (h0, h1, ht), (t0, t1, tt) = simple[a], simple[b]
                pair_rows.append([r, *w.span_positions(h0, h1), *w.span_positions(t0, t1), TYPE2ID[ht], TYPE2ID[tt], 0])
                pair_refs.append((p, ents[a], ents[b]))
        if pair_rows:
            pairs = torch.tensor(pair_rows, dtype=torch.long, device=self.device)
            with self.autocast():
                logits = self.model.relation_logits(hidden, pairs)
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            for (p, head, tail), row in zip(pair_refs, probs):
                best = int(row.argmax())
                if best != 0 and row[best] >= r_thr:
                    p.relations.append(Relation(head.id, tail.id, REL_LABELS[best], float(row[best])))
        for p, _ in items:
            p.windows_left -= 1

    @staticmethod
    def _decode(encs: list[EncodedDocument], windows: list, log_probs: np.ndarray, threshold: float):
        """Viterbi per sentence over each window's own words, all sentences of the batch stepped together.

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
        for (k, i, _, _), lp, tags in zip(bounds, slices, viterbi_batch(slices)):
            for a, b, etype in spans_from_tags(tags):
                score = float(np.exp(lp[np.arange(a, b), tags[a:b]].mean()))
                if score >= threshold:
                    out[k].append((i + a, i + b, etype, score, None))
        return out

    @staticmethod
    def _gold_spans(enc: EncodedDocument, w):
        return [(w0, w1, etype, None, eid) for w0, w1, etype, eid in w.owned_spans(sorted(enc.gold_spans))]


def load(model_dir: str | Path, device: str = "auto", *, precision: str = "auto", **kwargs) -> Extractor:
    """Load a saved model directory as an :class:`Extractor`.

    ``device``: ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    ``precision``: ``"auto"`` (fp16 weights on CUDA, bf16 autocast on CPUs with AMX, else fp32),
    ``"fp32"``, ``"fp16"`` or ``"bf16"``.
    """
    from .model import load as load_model

    dev = resolve_device(device)
    model, tokenizer, prep, meta = load_model(model_dir, device="cpu")
    return Extractor(model, tokenizer, prep, meta, device=dev, precision=precision, **kwargs)


# --------------------------------------------------------------------------- batch inputs (files, folders, JSON Lines)


@dataclass
class InputItem:
    """One article to tag, or the reason it cannot be read (``error``)."""

    index: int
    id: str
    text: str | None
    meta: dict
    error: str | None = None


def iter_inputs(paths: Sequence[str | Path], *, max_chars: int = 10_000_000) -> Iterator[InputItem]:
    """Articles from ``.txt`` files, folders of them, JSON Lines files with a ``text`` field and
    Parquet files with a ``text`` column.

    Reading is lazy (constant memory over any number of articles). A file or
    line that cannot be used yields an item with ``error`` set instead of
    raising, so one bad input never stops a batch.
    """
    index = 0
    for f in input_files(paths):
        if f.suffix == ".jsonl":
            try:
                fh = open(f, "rb")
            except OSError as exc:
                yield InputItem(index, str(f), None, {}, f"cannot open: {exc.strerror}")
                index += 1
                continue
            with fh:
                for lineno, raw in enumerate(fh, 1):
                    if raw.strip():
                        yield jsonl_item(raw, f, lineno, index, max_chars)
                        index += 1
            continue
        if f.suffix == ".parquet":
            from .shards import parquet_items

            for item in parquet_items(f, index, max_chars=max_chars):
                yield item
                index += 1
            continue
        yield _read_text_file(f, index, max_chars)
        index += 1


INPUT_SUFFIXES = (".txt", ".jsonl", ".parquet")


def input_files(paths: Sequence[str | Path]) -> Iterator[Path]:
    """The files behind ``paths`` in reading order: folders expand to their sorted input files."""
    for path in map(Path, paths):
        yield from sorted(p for p in path.rglob("*") if p.suffix in INPUT_SUFFIXES) if path.is_dir() else [path]


def jsonl_item(raw: bytes, f: Path, lineno: int, index: int, max_chars: int) -> InputItem:
    """One non-blank line of a JSON Lines input file as an item (or its error)."""
    import json

    item_id = f"{f}:{lineno}"
    try:
        obj = json.loads(raw.decode("utf-8"))
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise ValueError('expected a JSON object with a string "text" field')
    except (UnicodeDecodeError, ValueError) as exc:
        return InputItem(index, item_id, None, {}, f"line {lineno}: {exc}")
    return item_from_fields(obj, item_id, index, max_chars)


def item_from_fields(obj: dict, default_id: str, index: int, max_chars: int) -> InputItem:
    """An item from a record with a string ``text`` (other fields but ``id`` become meta)."""
    meta = {k: v for k, v in obj.items() if k not in ("id", "text", "entities", "relations", "roles")}
    text = obj["text"]
    err = _text_problem(text, max_chars)
    return InputItem(index, str(obj.get("id", default_id)), None if err else text, meta, err)


def _text_problem(text: str, max_chars: int) -> str | None:
    if not text.strip():
        return "empty input (no text to tag)"
    if len(text) > max_chars:
        return f"too long: {len(text):,} characters > limit {max_chars:,} (raise it with --max-chars)"
    return None


def _read_text_file(f: Path, index: int, max_chars: int) -> InputItem:
    try:
        size = f.stat().st_size
        if size > 4 * max_chars:
            return InputItem(index, str(f), None, {}, f"too large: {size:,} bytes (limit about {4 * max_chars:,}; raise it with --max-chars)")
        data = f.read_bytes()
    except OSError as exc:
        return InputItem(index, str(f), None, {}, f"cannot read: {exc.strerror or exc}")
    if b"\x00" in data:
        return InputItem(index, str(f), None, {}, "binary file (contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return InputItem(index, str(f), None, {}, f"not UTF-8 (invalid byte at offset {exc.start}); convert it with iconv -t UTF-8")
    err = _text_problem(text, max_chars)
    return InputItem(index, str(f), None if err else text, {}, err)


def predict_records(extractor: Extractor, items: Iterable[InputItem], *, batch_size: int = 16) -> Iterator[tuple[int, dict]]:
    """(input index, output record) for each item, in input order: a prediction or an error record."""
    errors: list[tuple[int, dict]] = []

    def documents() -> Iterator[Document]:
        for item in items:
            if item.error is not None:
                errors.append((item.index, {"id": item.id, "error": item.error}))
                continue
            yield Document(item.id, item.text or "", meta={**item.meta, "_index": item.index})

    for doc in extractor.iter_predict(documents(), batch_size=batch_size):
        index = doc.meta.pop("_index")
        while errors and errors[0][0] < index:
            yield errors.pop(0)
        record = doc.to_dict()
        record["roles"] = [r.to_dict() for r in doc.roles]
        yield index, record
    yield from errors


def predict_dataset(inputs, model, output, **options):
    """Tag a collection into a folder of shards with Ray Data: see :func:`vnpol.distributed.predict_dataset`.

    Needs the ``ray`` extra (``pip install 'vnpol[ray]'``); importing this module never imports Ray.
    """
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"the Ray engine needs Ray Data ({exc}); install it with: pip install 'vnpol[ray]'") from exc
    from .distributed import predict_dataset as run

    return run(inputs, model, output, **options)

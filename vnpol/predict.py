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

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .corpus import Document
from .inference import Extractor, resolve_device

__all__ = ["Extractor", "load", "iter_inputs", "predict_records", "InputItem"]


def load(model_dir: str | Path, device: str = "auto", *, precision: str = "auto", backend: str = "torch",
         **kwargs) -> Extractor:
    """Load a saved model directory as an :class:`Extractor`.

    ``device``: ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    ``precision``: ``"auto"`` (fp16 weights on CUDA, bf16 autocast on CPUs with AMX, else fp32),
    ``"fp32"``, ``"fp16"`` or ``"bf16"``; with ``backend="onnx"`` also ``"int8"``.
    ``backend``: ``"torch"``, or ``"onnx"`` (CPU): the encoder exported once to ONNX Runtime and
    cached (see :mod:`vnpol.runtime`); same offsets, same decoding.
    """
    from .saving import load_model

    dev = resolve_device("cpu" if backend == "onnx" and device == "auto" else device)
    model, tokenizer, prep, meta = load_model(model_dir, device="cpu")
    return Extractor(model, tokenizer, prep, meta, device=dev, precision=precision, backend=backend, **kwargs)


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

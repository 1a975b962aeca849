"""Inputs cut into shards: fixed runs of consecutive inputs that can be read anywhere.

A *shard* is the unit of work, of output and of resumption for the Ray engine
(:mod:`vnpol.distributed`). The plan is made on one machine from file names,
line breaks and Parquet metadata only (no JSON is parsed and no text decoded),
and every input gets the same index it has in :func:`vnpol.predict.iter_inputs`.
Reading a shard back (:func:`read_shard`) goes through the same per-file and
per-line code as the default engine, so a bad input gives the same error
record on either engine.

>>> plan = plan_shards(["articles/", "news.jsonl"], shard_size=256)  # doctest: +SKIP
>>> [item.id for item in read_shard(plan.shards[0])][:2]              # doctest: +SKIP
['articles/a.txt', 'articles/b.txt']
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .predict import InputItem, _read_text_file, input_files, item_from_fields, jsonl_item


@dataclass
class Piece:
    """Consecutive inputs of one file inside a shard.

    ``name`` is the path as the user gave it (it makes the default ids),
    ``file`` the absolute path a worker opens. ``start`` is the byte offset of
    the first line (JSON Lines) or the first row (Parquet); ``lineno`` the
    first line's number. ``error`` is set for a file that could not be opened
    when planning: it stands for one error record.
    """

    name: str
    file: str
    kind: str  # "txt", "jsonl", "parquet" or "error"
    start: int = 0
    lineno: int = 0
    count: int = 1
    error: str | None = None


@dataclass
class Shard:
    number: int
    first_index: int
    pieces: list[Piece] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(p.count for p in self.pieces)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Shard":
        d = json.loads(text)
        return cls(d["number"], d["first_index"], [Piece(**p) for p in d["pieces"]])


@dataclass
class Plan:
    inputs: list[str]
    shard_size: int
    total: int
    shards: list[Shard]

    def fingerprint(self) -> dict:
        """What must not change between a run and its ``--resume``."""
        return {"inputs": self.inputs, "shard_size": self.shard_size, "total": self.total, "shards": len(self.shards)}


def plan_shards(paths: Sequence[str | Path], shard_size: int = 256) -> Plan:
    """Cut the inputs behind ``paths`` into shards of ``shard_size`` inputs (the last may be smaller)."""
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    shards: list[Shard] = []
    current = Shard(0, 0)
    index = 0
    for atom in _atoms(paths):
        last = current.pieces[-1] if current.pieces else None
        if last is not None and last.kind == atom.kind and last.file == atom.file and atom.kind in ("jsonl", "parquet"):
            last.count += 1
        else:
            current.pieces.append(atom)
        index += 1
        if current.count == shard_size:
            shards.append(current)
            current = Shard(len(shards), index)
    if current.pieces:
        shards.append(current)
    return Plan([str(p) for p in paths], shard_size, index, shards)


def _atoms(paths: Sequence[str | Path]) -> Iterator[Piece]:
    """One piece per input, in the order of :func:`vnpol.predict.iter_inputs`."""
    for f in input_files(paths):
        name, file = str(f), os.path.abspath(f)
        if f.suffix == ".jsonl":
            try:
                fh = open(f, "rb")
            except OSError as exc:
                yield Piece(name, file, "error", error=f"cannot open: {exc.strerror}")
                continue
            with fh:
                offset = 0
                for lineno, raw in enumerate(fh, 1):
                    if raw.strip():
                        yield Piece(name, file, "jsonl", offset, lineno)
                    offset += len(raw)
        elif f.suffix == ".parquet":
            rows, problem = parquet_rows(f)
            if problem:
                yield Piece(name, file, "error", error=problem)
            for row in range(rows):
                yield Piece(name, file, "parquet", row)
        else:
            yield Piece(name, file, "txt")


def read_shard(shard: Shard, *, max_chars: int = 10_000_000) -> Iterator[InputItem]:
    """The shard's inputs as :class:`~vnpol.predict.InputItem` s, with their global indices."""
    index = shard.first_index
    for piece in shard.pieces:
        if piece.kind == "error":
            items: Iterator[InputItem] = iter([InputItem(index, piece.name, None, {}, piece.error)])
        elif piece.kind == "txt":
            items = iter([_read_text_file(Path(piece.file), index, max_chars)])
        elif piece.kind == "jsonl":
            items = _jsonl_piece(piece, index, max_chars)
        else:
            items = parquet_items(piece.file, index, max_chars=max_chars, first_row=piece.start,
                                  count=piece.count, name=piece.name)
        n = 0
        for item in items:
            if piece.kind == "txt":
                item.id = piece.name  # opened by absolute path, named as the user gave it
            yield item
            n += 1
        if n != piece.count:
            raise RuntimeError(f"{piece.name}: expected {piece.count} input(s) from the plan, read {n}; "
                               "the file changed since the run started; start again without --resume")
        index += n


def _jsonl_piece(piece: Piece, index: int, max_chars: int) -> Iterator[InputItem]:
    with open(piece.file, "rb") as fh:
        fh.seek(piece.start)
        lineno, left = piece.lineno, piece.count
        for raw in fh:
            if left == 0:
                return
            if raw.strip():
                yield jsonl_item(raw, Path(piece.name), lineno, index, max_chars)
                index += 1
                left -= 1
            lineno += 1


# --------------------------------------------------------------------------- Parquet inputs


def parquet_rows(path: str | Path) -> tuple[int, str | None]:
    """(rows, problem): a readable Parquet file with a ``text`` column has a row count and no problem."""
    try:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
    except ImportError:
        return 0, "reading Parquet needs pyarrow: pip install pyarrow"
    except Exception as exc:  # pyarrow raises several types for a damaged or non-Parquet file
        return 0, f"cannot read as Parquet: {exc}"
    names = pf.schema_arrow.names
    if "text" not in names:
        return 0, f'no "text" column (columns: {", ".join(names) or "none"}); expected a string "text" column'
    return pf.metadata.num_rows, None


def parquet_items(path: str | Path, index: int, *, max_chars: int = 10_000_000, first_row: int = 0,
                  count: int | None = None, name: str | None = None) -> Iterator[InputItem]:
    """Rows ``first_row`` to ``first_row + count`` of a Parquet file as items (row ``r`` has id ``PATH:r+1``
    unless it has an ``id``); a file that cannot be used is one error item."""
    name = str(path) if name is None else name
    rows, problem = parquet_rows(path)
    if problem:
        if first_row == 0:
            yield InputItem(index, name, None, {}, problem)
        return
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    end = rows if count is None else min(rows, first_row + count)
    group_start = 0
    for g in range(pf.metadata.num_row_groups):
        group_rows = pf.metadata.row_group(g).num_rows
        lo, hi = max(first_row, group_start), min(end, group_start + group_rows)
        if lo < hi:
            table = pf.read_row_group(g).slice(lo - group_start, hi - lo)
            for row, obj in enumerate(table.to_pylist(), lo):
                yield _parquet_item(obj, name, row, index, max_chars)
                index += 1
        group_start += group_rows


def _parquet_item(obj: dict, name: str, row: int, index: int, max_chars: int) -> InputItem:
    default_id = f"{name}:{row + 1}"
    if not isinstance(obj.get("text"), str):
        got = "null" if obj.get("text") is None else type(obj["text"]).__name__
        return InputItem(index, default_id, None, {}, f'row {row + 1}: expected a string "text" value, got {got}')
    fields = {k: _jsonable(v) for k, v in obj.items() if not (k == "id" and v is None)}
    return item_from_fields(fields, default_id, index, max_chars)


def _jsonable(value):
    """Parquet values as JSON can hold them (dates as ISO strings, bytes as text)."""
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value

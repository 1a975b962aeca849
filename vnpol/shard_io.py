"""Output shards: one file per shard, written whole or not at all, read back as one collection.

A shard's file is ``part-NNNNNN.jsonl`` or ``part-NNNNNN.parquet`` in the
output folder. It is written under a temporary name and renamed, so a file
with the final name always holds every record of its shard; a run killed
mid-write leaves only a ``.part-*.tmp-*`` file, which the next run removes.
Every record carries ``_index``, its input's position, so input order is
recoverable from any set of shards.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

from .corpus import Document, json_line

FORMATS = ("jsonl", "parquet")
PLAN_FILE = "_plan.json"
_PART = re.compile(r"^part-(\d{6})\.(jsonl|parquet)$")


def shard_path(out_dir: str | Path, number: int, fmt: str) -> Path:
    return Path(out_dir) / f"part-{number:06d}.{fmt}"


def write_shard(out_dir: str | Path, number: int, records: Iterable[dict], fmt: str = "jsonl") -> Path:
    """Write one shard's records atomically (temporary name, fsync, rename); returns the final path."""
    final = shard_path(out_dir, number, fmt)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if fmt == "jsonl":
        with open(tmp, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json_line(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(records_to_table(list(records)), tmp)
    else:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    os.replace(tmp, final)
    return final


def written_shards(out_dir: str | Path) -> dict[int, Path]:
    """Shard number -> file, for every complete shard file in ``out_dir``."""
    out = {}
    for p in Path(out_dir).iterdir() if Path(out_dir).is_dir() else []:
        m = _PART.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return out


def remove_partial_files(out_dir: str | Path) -> int:
    """Delete temporary files left by a killed run; returns how many."""
    n = 0
    for p in Path(out_dir).glob(".part-*.tmp-*"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def prepare_output(out_dir: str | Path, fingerprint: dict, fmt: str, *, resume: bool) -> set[int]:
    """Check the output folder against this run's plan; returns the shard numbers already done.

    Without ``resume`` the folder must hold no shards; with it, the plan must be the
    one the folder was started with (same inputs, same shard size, same counts).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan_file = out / PLAN_FILE
    done = written_shards(out)
    wanted = {**fingerprint, "format": fmt}
    remove_partial_files(out)
    if not resume:
        if done:
            raise ValueError(f"{out}: holds {len(done)} shard file(s) from an earlier run; "
                             "pass --resume to continue it, or choose an empty output folder")
        plan_file.write_text(json.dumps(wanted, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return set()
    if plan_file.exists():
        before = json.loads(plan_file.read_text(encoding="utf-8"))
        changed = [k for k in wanted if before.get(k) != wanted[k]]
        if changed:
            detail = "; ".join(f"{k}: was {before.get(k)!r}, now {wanted[k]!r}" for k in changed)
            raise ValueError(f"{plan_file}: cannot resume, the run changed ({detail}); "
                             "use the same inputs, --shard-size and --format, or a new output folder")
    else:
        plan_file.write_text(json.dumps(wanted, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    stray = sorted(n for n, p in done.items() if n >= wanted["shards"] or p.suffix != "." + fmt)
    if stray:
        raise ValueError(f"{out}: shard file(s) {stray[:5]} do not belong to this plan of {wanted['shards']} {fmt} shard(s)")
    return set(done)


# --------------------------------------------------------------------------- reading shards back


def is_shard_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and bool(written_shards(path))


def read_shard_records(path: str | Path) -> list[dict]:
    """The records of one shard file (JSON Lines or Parquet), as the default engine writes them plus ``_index``."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [_row_to_record(r) for r in pq.read_table(path).to_pylist()]
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def iter_collection(out_dir: str | Path) -> Iterator[dict]:
    """Every record of a folder of shards, in input order."""
    for _, p in sorted(written_shards(out_dir).items()):
        yield from sorted(read_shard_records(p), key=lambda r: r["_index"])


# --------------------------------------------------------------------------- Parquet records

_CORE = ("_index", "id", "error", "text", "entities", "relations", "roles")


def _schema():
    import pyarrow as pa

    entity = pa.struct([("id", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("type", pa.string()),
                        ("text", pa.string()), ("score", pa.float64())])
    relation = pa.struct([("head", pa.string()), ("tail", pa.string()), ("type", pa.string()), ("score", pa.float64())])
    role = pa.struct([(k, pa.string()) for k in ("person", "position", "organisation", "person_id", "position_id",
                                                 "organisation_id")])
    return pa.schema([("_index", pa.int64()), ("id", pa.string()), ("error", pa.string()), ("text", pa.string()),
                      ("entities", pa.list_(entity)), ("relations", pa.list_(relation)), ("roles", pa.list_(role)),
                      ("meta", pa.string())])


def records_to_table(records: list[dict]):
    """A fixed-schema table: typed core columns, and the article's own fields as a JSON ``meta`` column."""
    import pyarrow as pa

    rows = []
    for rec in records:
        is_error = "text" not in rec
        meta = {k: v for k, v in rec.items() if k not in _CORE or (k == "error" and not is_error)}
        rows.append({"_index": rec["_index"], "id": rec["id"], "error": rec["error"] if is_error else None,
                     "text": rec.get("text"), "entities": rec.get("entities"), "relations": rec.get("relations"),
                     "roles": rec.get("roles"), "meta": None if is_error else json.dumps(meta, ensure_ascii=False)})
    return pa.Table.from_pylist(rows, schema=_schema())


def _row_to_record(row: dict) -> dict:
    if row["text"] is None:
        return {"_index": row["_index"], "id": row["id"], "error": row["error"]}
    meta = json.loads(row["meta"] or "{}")
    rec = {"_index": row["_index"], "id": row["id"], **meta, "text": row["text"]}
    rec["entities"] = [_drop_null_score(e) for e in row["entities"] or []]
    rec["relations"] = [_drop_null_score(r) for r in row["relations"] or []]
    rec["roles"] = row["roles"] or []
    return rec


def _drop_null_score(d: dict) -> dict:
    return {k: v for k, v in d.items() if not (k == "score" and v is None)}


def read_shards(path: str | Path) -> list[Document] | None:
    """The tagged articles of a folder of shards (``vnpol predict --engine ray``) or of one Parquet shard file,
    in input order and without error records; ``None`` when ``path`` is neither."""
    p = Path(path)
    if is_shard_folder(p):
        records = list(iter_collection(p))
    elif p.suffix == ".parquet" and p.is_file() and _is_prediction_parquet(p):
        records = sorted(read_shard_records(p), key=lambda r: r["_index"])
    else:
        return None
    return [Document.from_dict({k: v for k, v in r.items() if k != "_index"}) for r in records if "text" in r]


def _is_prediction_parquet(path: Path) -> bool:
    import pyarrow.parquet as pq

    return {"_index", "entities"} <= set(pq.ParquetFile(path).schema_arrow.names)

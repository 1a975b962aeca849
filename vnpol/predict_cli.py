"""``vnpol predict``: tag articles into JSON Lines, on one machine (``--engine local``, also under
``accelerate launch``) or on Ray Data (``--engine ray``, a folder of shards).

The command is a thin layer over :func:`vnpol.predict.predict_records` and
:func:`vnpol.predict.predict_dataset`; :mod:`vnpol.cli` registers it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_precision(p: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--backend`` (how the encoder runs), shared by predict and evaluate."""
    from .config import PRECISIONS
    from .runtime import BACKENDS

    p.add_argument("--precision", default="auto", choices=[*PRECISIONS, "int8"],
                   help="auto: fp16 on CUDA, bf16 autocast on CPUs with AMX, else fp32; int8 needs --backend onnx")
    p.add_argument("--backend", default="torch", choices=BACKENDS,
                   help="onnx: the encoder exported once to ONNX Runtime (CPU; needs vnpol[onnx])")


def add_predict_parser(add) -> None:
    """Register ``vnpol predict`` (``add`` is :func:`vnpol.cli.build_parser`'s helper)."""
    p = add("predict", cmd_predict, "tag articles (.txt files, folders, JSON Lines with a text field) into JSON Lines",
            "vnpol predict --model models/demo articles/ news.jsonl --output predictions.jsonl")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--model", required=True)
    p.add_argument("--output", "-o", required=True)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    add_precision(p)
    p.add_argument("--batch-size", type=int, default=16, help="windows per encoder batch")
    p.add_argument("--entity-threshold", type=float, default=None, help="default: the model's, chosen on its dev set")
    p.add_argument("--relation-threshold", type=float, default=None, help="default: the model's, chosen on its dev set")
    p.add_argument("--max-chars", type=int, default=10_000_000, help="longer articles get an error record")
    p.add_argument("--resume", action="store_true", help="skip articles whose id is already in OUTPUT (ray: shards already written)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any input produced an error record")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--to", default="jsonl", choices=["jsonl", "labelstudio"],
                   help="labelstudio: a JSON list of tasks with the output as predictions (pre-annotations)")
    g = p.add_argument_group("--engine ray (needs vnpol[ray]; OUTPUT becomes a folder of shards)")
    g.add_argument("--engine", choices=["local", "ray"], default="local", help="local: one process (default); ray: Ray Data actors")
    g.add_argument("--num-workers", type=int, default=1, help="actors, each with its own copy of the model")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs reserved per actor (0: CPU)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs reserved per actor (also its torch threads)")
    g.add_argument("--shard-size", type=int, default=256, help="inputs per output shard (the unit of --resume)")
    g.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl", help="shard file format")
    g.add_argument("--address", help="join this Ray cluster (e.g. auto or ray://head:10001); default: start Ray here")
    g.add_argument("--num-cpus", type=int, help="CPUs for the Ray started here (default: all)")


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from tqdm.auto import tqdm

    from .corpus import json_line
    from .predict import iter_inputs, load, predict_records

    if args.engine == "ray":
        return _predict_ray(args)
    try:
        from accelerate import PartialState

        state = PartialState(cpu=args.device == "cpu")
        rank, world = state.process_index, state.num_processes
    except Exception:  # accelerate missing or not launched: one process
        state, rank, world = None, 0, 1
    out = Path(args.output)
    if args.to == "labelstudio" and args.resume:
        raise ValueError("--resume works on JSON Lines output only; predict to JSON Lines and convert, or drop --resume")
    done: set[str] = set()
    if args.resume and out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                done.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                continue
    extractor = load(args.model, device=args.device if world == 1 else str(state.device), precision=args.precision,
                     backend=args.backend, entity_threshold=args.entity_threshold, relation_threshold=args.relation_threshold)
    items = (it for it in iter_inputs(args.inputs, max_chars=args.max_chars)
             if it.index % world == rank and it.id not in done)
    target = out if world == 1 else out.with_name(f"{out.name}.part{rank}")
    mode = "a" if (args.resume and world == 1) else "w"
    n_ok = n_err = 0
    with open(target, mode, encoding="utf-8") as fh, tqdm(unit="art", desc="tagging", disable=args.quiet or rank != 0) as bar:
        for index, record in predict_records(extractor, items, batch_size=args.batch_size):
            if world > 1:
                record = {"_index": index, **record}
            fh.write(json_line(record) + "\n")
            fh.flush()
            if "error" in record:
                n_err += 1
                print(f"warning: {record['id']}: {record['error']}", file=sys.stderr)
            else:
                n_ok += 1
            bar.update(1)
    if world > 1:
        state.wait_for_everyone()
        if rank == 0:
            _merge_parts(out, world, append=args.resume)
    if args.to == "labelstudio" and rank == 0:
        from .labelstudio_cli import rewrite_as_tasks

        print(f"vnpol: {rewrite_as_tasks(out, args.model)} Label Studio task(s) with predictions", file=sys.stderr)
    who = f"process {rank + 1}/{world}: " if world > 1 else ""
    print(f"vnpol: {who}{n_ok} article(s) tagged, {n_err} error record(s) -> {out}", file=sys.stderr)
    return 1 if (args.strict and n_err) else 0


def _predict_ray(args: argparse.Namespace) -> int:
    """``vnpol predict --engine ray``: OUTPUT is a folder of shards (see vnpol.distributed)."""
    from .distributed import print_progress
    from .predict import predict_dataset

    summary = predict_dataset(
        args.inputs, args.model, args.output, fmt=args.format, num_workers=args.num_workers,
        gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker, batch_size=args.batch_size,
        shard_size=args.shard_size, device=None if args.device == "auto" else args.device, precision=args.precision, backend=args.backend,
        entity_threshold=args.entity_threshold, relation_threshold=args.relation_threshold, max_chars=args.max_chars,
        resume=args.resume, address=args.address, num_cpus=args.num_cpus, progress=None if args.quiet else print_progress)
    for _, item_id, error in summary.errors:
        print(f"warning: {item_id}: {error}", file=sys.stderr)
    print(f"vnpol: {summary.total} input(s) in {summary.shards} shard(s), {summary.shards_skipped} already written; "
          f"{summary.records} record(s) written now ({len(summary.errors)} error record(s)) -> {args.output}", file=sys.stderr)
    return 1 if (args.strict and summary.errors) else 0


def _merge_parts(out: Path, world: int, append: bool) -> None:
    """Merge per-process outputs into ``out`` in input order."""
    import heapq
    import json

    from .corpus import json_line

    parts = [out.with_name(f"{out.name}.part{r}") for r in range(world)]

    def rows(p: Path):
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                yield rec.pop("_index"), rec

    with open(out, "a" if append else "w", encoding="utf-8") as fh:
        for _, rec in heapq.merge(*(rows(p) for p in parts), key=lambda x: x[0]):
            fh.write(json_line(rec) + "\n")
    for p in parts:
        p.unlink()

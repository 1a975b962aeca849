"""Batch tagging on Ray Data: a pool of actors, each loading the model once, over shards of the inputs.

>>> from vnpol.predict import predict_dataset                                   # doctest: +SKIP
>>> summary = predict_dataset(["articles/", "news.parquet"], "models/demo", "out/",
...                           num_workers=2)                                     # doctest: +SKIP
>>> summary.records                                                              # doctest: +SKIP
1000

How a run goes:

1. The inputs are cut into shards of ``shard_size`` consecutive inputs
   (:func:`vnpol.shards.plan_shards`: file names, line breaks and Parquet
   metadata only). The plan is saved as ``OUTPUT/_plan.json``.
2. ``ray.data.from_items`` makes a dataset of the shards still to do, one row
   each; ``map_batches`` hands them to an actor pool (``concurrency =
   num_workers``, ``num_gpus = gpus_per_worker``), one shard per call.
3. Each actor reads its shard with the same code as the default engine (so a
   bad file or line gives the same error record, which Ray's JSON reader
   cannot do: it fails or drops the line), tags it with
   :func:`vnpol.predict.predict_records`, and writes ``part-NNNNNN.jsonl`` or
   ``.parquet`` atomically (:mod:`vnpol.shard_io`). It returns a one-row
   summary that the driver turns into progress and warnings.
4. ``resume=True`` skips shards whose file exists, so a killed run restarted
   ends with exactly one record per input.

On a cluster (``address``), every node must have vnpol installed, and the
inputs, the model folder and the output folder must be on a file system that
all nodes see under the same path.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .shard_io import prepare_output, written_shards, write_shard
from .shards import Shard, plan_shards, read_shard


@dataclass
class RunSummary:
    output: Path
    total: int
    shards: int
    shards_skipped: int
    records: int = 0  # written by this run
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (index, id, error), this run's error records


class ShardTagger:
    """A Ray Data actor: loads the model once, then tags and writes one shard per call."""

    def __init__(self, model: str, out_dir: str, fmt: str, threads: int, load_kwargs: dict, batch_size: int,
                 max_chars: int):
        import torch

        from .predict import load

        torch.set_num_threads(max(1, threads))
        self.extractor = load(model, **load_kwargs)
        self.out_dir, self.fmt, self.batch_size, self.max_chars = out_dir, fmt, batch_size, max_chars

    def __call__(self, batch: dict) -> dict:
        from .predict import predict_records

        numbers, counts, errors = [], [], []
        for spec in batch["shard"]:
            shard = Shard.from_json(str(spec))
            records = [{"_index": index, **record} for index, record in
                       predict_records(self.extractor, read_shard(shard, max_chars=self.max_chars),
                                       batch_size=self.batch_size)]
            write_shard(self.out_dir, shard.number, records, self.fmt)
            numbers.append(shard.number)
            counts.append(len(records))
            errors.append(json.dumps([[r["_index"], r["id"], r["error"]] for r in records if "text" not in r]))
        return {"number": np.array(numbers), "records": np.array(counts), "errors": np.array(errors, dtype=object)}


def predict_dataset(inputs: Sequence[str | Path], model: str | Path, output: str | Path, *, fmt: str = "jsonl",
                    num_workers: int = 1, gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0,
                    batch_size: int = 16, shard_size: int = 256, device: str | None = None, precision: str = "auto",
                    backend: str = "torch", entity_threshold: float | None = None, relation_threshold: float | None = None, max_chars: int = 10_000_000,
                    resume: bool = False, address: str | None = None, num_cpus: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> RunSummary:
    """Tag ``inputs`` into a folder of shards ``output`` with a pool of ``num_workers`` Ray actors.

    Without ``address`` Ray starts inside this process on this machine (``num_cpus``
    logical CPUs, default all of them); with it, the run joins that cluster.
    ``progress(done, total)`` is called after each shard with input counts.
    """
    if num_workers < 1:
        raise ValueError(f"--num-workers must be at least 1, got {num_workers}")
    if not (Path(model) / "vnpol.json").is_file():
        raise FileNotFoundError(f"{model}: not a vnpol model folder (no vnpol.json); train one with scripts/train.py")
    plan = plan_shards(inputs, shard_size)
    done = prepare_output(output, plan.fingerprint(), fmt, resume=resume)
    todo = [s for s in plan.shards if s.number not in done]
    summary = RunSummary(Path(output), plan.total, len(plan.shards), len(plan.shards) - len(todo))
    finished = sum(s.count for s in plan.shards if s.number in done)
    if progress:
        progress(finished, plan.total)
    tagger = {"model": os.path.abspath(model), "out_dir": os.path.abspath(output), "fmt": fmt,
              "threads": int(cpus_per_worker), "batch_size": batch_size, "max_chars": max_chars,
              "load_kwargs": {"device": device or ("cuda" if gpus_per_worker > 0 else "cpu"), "precision": precision,
                              "backend": backend, "entity_threshold": entity_threshold, "relation_threshold": relation_threshold}}
    if todo:
        for row in _run(todo, tagger, num_workers, cpus_per_worker, gpus_per_worker, address, num_cpus):
            summary.records += int(row["records"])
            summary.errors += [tuple(e) for e in json.loads(str(row["errors"]))]
            finished += int(row["records"])
            if progress:
                progress(finished, plan.total)
    summary.errors.sort()
    missing = sorted(set(range(len(plan.shards))) - set(written_shards(output)))
    if missing:
        raise RuntimeError(f"{output}: shard(s) {missing[:10]} were not written; run again with --resume")
    return summary


def _run(todo: list[Shard], tagger: dict, num_workers: int, cpus_per_worker: float, gpus_per_worker: float,
         address: str | None, num_cpus: int | None):
    """Yield one summary row per shard tagged, as the actors finish them."""
    import ray

    started = _init_ray(address, num_cpus, num_workers * cpus_per_worker)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ds = ray.data.from_items([{"shard": s.to_json()} for s in todo], override_num_blocks=min(len(todo), 10_000))
        tagged = ds.map_batches(ShardTagger, batch_size=1, compute=ray.data.ActorPoolStrategy(size=num_workers),
                                num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None,
                                fn_constructor_kwargs=tagger)
        yield from tagged.iter_rows()
    finally:
        if started:
            ray.shutdown()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse an address nothing listens on: Ray itself retries such an address for many minutes."""
    import socket

    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RuntimeError(f"cannot join the Ray cluster at {address}: nothing answers there ({exc}); is it running "
                           "(`ray status` on the head node), and can this machine reach the head's port?") from None


def _init_ray(address: str | None, num_cpus: int | None, cpus_needed: float) -> bool:
    """Start or join Ray; returns whether this call started it (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    env = {k: v for k, v in os.environ.items() if k in ("HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "PYTHONPATH")}
    kwargs = {"runtime_env": {"env_vars": env}, "include_dashboard": False, "log_to_driver": True,
              "logging_level": "WARNING"}
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            raise RuntimeError(f"cannot join the Ray cluster at {address}: {exc}; is it running there "
                               "(`ray status` on the head node), can this machine reach the head, and if the cluster "
                               "uses token authentication, are RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or "
                               "RAY_AUTH_TOKEN_PATH) set here?") from exc
        return True
    num_cpus = num_cpus or os.cpu_count() or 1
    if cpus_needed > num_cpus:
        raise ValueError(f"{cpus_needed:g} CPU(s) asked for (--num-workers x --cpus-per-worker) but this machine "
                         f"offers Ray {num_cpus}; lower --num-workers or --cpus-per-worker (fractions such as 0.5 work)")
    # "local" always starts a fresh instance: without it Ray joins whatever cluster
    # RAY_ADDRESS or a stale /tmp/ray/ray_current_cluster names, and then refuses num_cpus.
    ray.init(address="local", num_cpus=num_cpus, **kwargs)
    return True


def print_progress(done: int, total: int) -> None:
    print(f"\rtagged {done}/{total} input(s)", end="\n" if done == total else "", file=sys.stderr, flush=True)

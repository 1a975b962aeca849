"""The default engine against Ray Data with 1 and 2 workers, on the same synthetic collection, on this machine.

    python scripts/benchmark_scale.py --model /tmp/tiny-model     # 1,000 articles; writes docs/benchmarks.md (scale)
    python scripts/benchmark_scale.py --quick                     # trains a tiny model, 40 articles (CI smoke run)

Articles are built from the sentences of data/authored/*.jsonl (5-15 each, fixed
seed) and written to one JSON Lines file. Each engine runs as its own
``vnpol predict`` process, so start-up (Python, Ray, model load) is counted as
a user sees it. Reported per run: wall time and articles/s end to end, the
steady rate (records written between the first and the last record, start-up
excluded), peak memory of the whole process tree (proportional set size, so
shared pages are not counted twice: the driver, Ray's own processes and its
actors), and whether the records equal the default engine's record for record.
The same cores are used in every run: 1 worker has both, 2 workers have one each.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from benchmark_report import write_section  # noqa: E402

from vnpol.shard_io import iter_collection, written_shards  # noqa: E402

CORES = 2
#: An assumption, not a measurement (no GPU here): subword tokens/s one GPU actor sustains for the
#: e5-small-sized encoder in fp16, windows of 256, batch 64 (a mid-range datacenter GPU such as an A10 or L4).
ASSUMED_GPU_TOKENS_PER_S = 100_000


def synthetic_articles(n: int, seed: int = 0) -> list[str]:
    from vnpol.text import split_sentences

    texts = [json.loads(line)["text"] for f in sorted((ROOT / "data" / "authored").glob("*.jsonl"))
             for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    sentences = [t[s:e] for t in texts for s, e in split_sentences(t)]
    rng = random.Random(seed)
    return ["\n".join(rng.choice(sentences) for _ in range(rng.randint(5, 15))) for _ in range(n)]


class TreeMonitor(threading.Thread):
    """Samples the summed proportional set size of a process and all its descendants, and a progress count."""

    def __init__(self, pid: int, count, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.count, self.interval = pid, count, interval
        self.peak_mb, self.progress, self.stop = 0.0, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_mb = max(self.peak_mb, sum(_pss_kb(p) for p in _tree(self.pid)) / 1024)
            self.progress.append((time.perf_counter(), self.count()))
            time.sleep(self.interval)


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_engine(cmd: list[str], count, threads: int | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    monitor = TreeMonitor(proc.pid, count)
    monitor.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    monitor.stop.set()
    monitor.join()
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{err[-3000:]}")
    seen = [(t, n) for t, n in monitor.progress if n > 0]
    steady = None
    if len(seen) >= 2 and seen[-1][1] > seen[0][1]:
        steady = (seen[-1][1] - seen[0][1]) / (seen[-1][0] - seen[0][0])
    return {"wall_s": round(wall, 2), "peak_pss_mb": round(monitor.peak_mb, 1),
            "steady_articles_per_s": round(steady, 2) if steady else None}


def count_lines(path: Path):
    def count() -> int:
        try:
            with open(path, "rb") as fh:
                return sum(1 for _ in fh)
        except OSError:
            return 0
    return count


def count_shards(folder: Path, shard_size: int):
    return lambda: len(written_shards(folder)) * shard_size if folder.is_dir() else 0


def benchmark(model: Path, n: int, work: Path, shard_size: int, batch_size: int) -> dict:
    inputs = work / "articles.jsonl"
    inputs.write_text("".join(json.dumps({"id": f"s{i:05d}", "text": t}, ensure_ascii=False) + "\n"
                              for i, t in enumerate(synthetic_articles(n))), encoding="utf-8")
    base = [sys.executable, "-m", "vnpol", "predict", "--model", str(model), str(inputs), "--device", "cpu",
            "--quiet", "--batch-size", str(batch_size)]
    default_out = work / "default.jsonl"
    rows = [{"engine": "default", "workers": 1, "threads": CORES,
             **run_engine(base + ["--output", str(default_out)], count_lines(default_out))}]
    expected = [json.loads(line) for line in default_out.read_text(encoding="utf-8").splitlines()]
    one_thread = work / "default-1thread.jsonl"
    rows.append({"engine": "default", "workers": 1, "threads": 1,
                 **run_engine(base + ["--output", str(one_thread)], count_lines(one_thread), threads=1)})
    rows[-1]["identical_to_default"] = one_thread.read_text(encoding="utf-8") == default_out.read_text(encoding="utf-8")
    for workers in (1, 2):
        out = work / f"ray{workers}"
        cmd = base + ["--output", str(out), "--engine", "ray", "--num-workers", str(workers), "--cpus-per-worker",
                      str(CORES // workers), "--num-cpus", str(CORES), "--shard-size", str(shard_size)]
        row = {"engine": "ray", "workers": workers, "threads": CORES // workers,
               **run_engine(cmd, count_shards(out, shard_size))}
        got = [{k: v for k, v in r.items() if k != "_index"} for r in iter_collection(out)]
        row["identical_to_default"] = got == expected
        rows.append(row)
    for row in rows:
        row["articles_per_s"] = round(n / row["wall_s"], 2)
        row["startup_s"] = round(row["wall_s"] - n / row["steady_articles_per_s"], 1) if row["steady_articles_per_s"] else None
    return {"articles": n, "characters": sum(len(r["text"]) for r in expected if "text" in r),
            "shard_size": shard_size, "batch_size": batch_size, "cores": CORES, "runs": rows}


def archive_estimate(result: dict, n_archive: int = 10_000_000) -> dict:
    """Workers and hours for ``n_archive`` articles: the real model's CPU speed from docs/benchmarks_speed.json
    scaled by this run's Ray efficiency; the GPU figure rests on ASSUMED_GPU_TOKENS_PER_S."""
    speed = json.loads((ROOT / "docs" / "benchmarks_speed.json").read_text(encoding="utf-8"))["collection"]
    tokens_per_article = speed["subword_tokens"] / speed["articles"]
    by = {(r["engine"], r["workers"], r["threads"]): r["steady_articles_per_s"] for r in result["runs"]}
    same_threads = [by.get(("default", 1, CORES)), by.get(("ray", 1, CORES))]
    efficiency = same_threads[1] / same_threads[0] if all(same_threads) else 1.0
    node_rate = speed["vnpol_articles_per_s"] * min(efficiency, 1.0)  # one 2-core node
    gpu_rate = ASSUMED_GPU_TOKENS_PER_S / tokens_per_article
    cpu_node_hours, gpu_hours = n_archive / node_rate / 3600, n_archive / gpu_rate / 3600
    return {"archive_articles": n_archive, "tokens_per_article": round(tokens_per_article), "ray_efficiency": round(efficiency, 2),
            "cpu_node_articles_per_s": round(node_rate, 2), "cpu_node_hours": round(cpu_node_hours),
            "cpu_nodes_for_24h": int(-(-cpu_node_hours // 24)), "assumed_gpu_tokens_per_s": ASSUMED_GPU_TOKENS_PER_S,
            "gpu_articles_per_s": round(gpu_rate, 1), "gpu_hours": round(gpu_hours, 1),
            "gpus_for_8h": int(-(-gpu_hours // 8))}


def markdown(result: dict, est: dict, model: str) -> str:
    lines = ["## Scale: default engine against Ray Data (`scripts/benchmark_scale.py`)", "",
             f"Machine: {CORES} cores, CPU only, other jobs sharing it; model `{model}` (configs/tiny.yaml: hidden 64, "
             f"2 layers; so the work per article is small and fixed costs weigh more than with a real encoder). "
             f"{result['articles']:,} synthetic articles ({result['characters']:,} characters) from sentences of "
             f"data/authored/*.jsonl; shards of {result['shard_size']}, batch {result['batch_size']} windows. "
             "Each run is one `vnpol predict` process, start-up included; memory is the peak summed PSS of the "
             "process tree (driver, Ray's processes, actors). 1 Ray worker has both cores, 2 workers one each.", "",
             "| engine | workers | torch threads each | wall s | articles/s (end to end) | steady articles/s | peak memory MB | same records as default |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        same = "yes" if r.get("identical_to_default") else ("—" if "identical_to_default" not in r else "**no**")
        lines.append(f"| {r['engine']} | {r['workers']} | {r['threads']} | {r['wall_s']} | {r['articles_per_s']} | "
                     f"{r['steady_articles_per_s']} | {r['peak_pss_mb']} | {same} |")
    by = {(r["engine"], r["threads"]): r["steady_articles_per_s"] or 0 for r in result["runs"] if r["workers"] == 1}
    starts = ", ".join(f"{r['engine']} {r['workers']}×{r['threads']} threads {r['startup_s']} s"
                       for r in result["runs"] if r.get("startup_s"))
    lines += ["", "Steady articles/s counts the records written between the first and the last one seen "
              "(sampled every 0.25 s), so Python, Ray and model start-up are left out. Read rows with the same "
              f"threads together: for this tiny model one torch thread ran {by[('default', 1)]} articles/s against "
              f"{by[('default', CORES)]} with {CORES} (its matrices are too small to split, and other jobs held the "
              "cores), so the gaps between engines here are mostly threading, not Ray.", "",
              f"**Estimate for a {est['archive_articles']:,}-article archive.** The tiny model says what Ray costs, not "
              "what tagging costs; for that take the real model's speed from the speed section above "
              f"(`embedded:multilingual-e5-small`, {est['tokens_per_article']:,} subword tokens per article of that "
              "collection). Each node is a 2-core CPU machine like this one; nodes share nothing, so the archive divides "
              "over nodes with no loss but each run's fixed start-up (the table's wall time less articles over the "
              f"steady rate: {starts}).", "",
              f"- CPU: {est['cpu_node_articles_per_s']} articles/s per 2-core node (the speed section's "
              f"rate × Ray's steady rate over the default engine's at the same threads here, {est['ray_efficiency']}, "
              "capped at 1: Ray added no per-article cost we could measure) → "
              f"{est['cpu_node_hours']:,} node-hours; about {est['cpu_nodes_for_24h']:,} such nodes "
              f"(`--num-workers {est['cpu_nodes_for_24h']:,} --cpus-per-worker 2`, one actor per node) to finish in a day.",
              f"- GPU (**assumption, not measured: no GPU here**): one actor per GPU sustaining "
              f"{est['assumed_gpu_tokens_per_s']:,} subword tokens/s with that encoder in fp16 → "
              f"{est['gpu_articles_per_s']} articles/s per GPU, {est['gpu_hours']:,} GPU-hours; "
              f"{est['gpus_for_8h']} GPUs (`--gpus-per-worker 1 --num-workers {est['gpus_for_8h']}`) for an 8-hour run. "
              "Measure one shard on the real GPU first and replace the assumed rate.",
              f"- Shards of 256 articles make {-(-est['archive_articles'] // 256):,} shard files; a kill loses at most the shards in flight "
              "(one per worker), and `--resume` redoes only those."]
    return "\n".join(lines)


def tiny_model(work: Path) -> Path:
    from vnpol.config import load_config
    from vnpol.training import train

    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["training.epochs=1", f"data.train=[{ROOT / 'seeds' / 'gold.jsonl'}]",
                                                       f"data.dev=[{ROOT / 'seeds' / 'gold.jsonl'}]", "data.test=[]"])
    train(cfg, work / "tiny", say=lambda *_: None)
    return work / "tiny"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="trained model folder (e.g. from scripts/train.py --config configs/tiny.yaml)")
    ap.add_argument("--articles", type=int, default=1000)
    ap.add_argument("--shard-size", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="train a tiny model and run 40 articles (CI smoke run)")
    ap.add_argument("--output", default=str(ROOT / "docs"), help="folder for benchmarks.md and benchmarks_scale.json")
    ap.add_argument("--from-json", help="re-write the section from an earlier run's benchmarks_scale.json (no measuring)")
    args = ap.parse_args()
    out = Path(args.output)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        for row in result["runs"]:
            row["startup_s"] = round(row["wall_s"] - result["articles"] / row["steady_articles_per_s"], 1)
        return report(result, out, result.get("model", "tiny-model"), quick=False)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.quick:
            model, n, shard = tiny_model(work), 40, 10
        elif args.model:
            model, n, shard = Path(args.model), args.articles, args.shard_size
        else:
            sys.exit("error: pass --model DIR (a trained model) or --quick")
        result = benchmark(model, n, work, shard, args.batch_size)
    result["model"] = "tiny (trained on the seeds for 1 epoch)" if args.quick else model.name
    report(result, out, result["model"], quick=args.quick)


def report(result: dict, out: Path, model: str, *, quick: bool) -> None:
    result["estimate"] = archive_estimate(result)
    name = "benchmarks_scale_quick.json" if quick else "benchmarks_scale.json"
    (out / name).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    text = markdown(result, result["estimate"], model)
    print(text)
    if not quick:
        write_section(out / "benchmarks.md", "scale", text)
    if not all(r.get("identical_to_default", True) for r in result["runs"]):
        sys.exit("error: the Ray engine's records differ from the default engine's")


if __name__ == "__main__":
    main()

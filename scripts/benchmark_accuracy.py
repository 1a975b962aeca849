"""Accuracy on real text: train on the authored corpus, select on its dev split, test on the five seed articles.

    python scripts/benchmark_accuracy.py            # offline encoder (+ PhoBERT when it loads), peer, learning curve 10/20/40/all
                                                    # (27 min on 2 cores with AMX: what docs/benchmarks.md shows)
    python scripts/benchmark_accuracy.py --pruning  # plus one training run with a pruned vocabulary
    python scripts/benchmark_accuracy.py --quick    # tiny config, a smoke run for CI (numbers meaningless)

Writes docs/benchmarks.md (the accuracy section) and docs/benchmarks_accuracy.json.
No reported number comes from a model that saw a seed article: train() refuses to
score a test document that is also in the training data.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from benchmark_report import write_section  # noqa: E402

from vnpol.config import load_config  # noqa: E402
from vnpol.corpus import Document, Entity, read_jsonl, write_jsonl  # noqa: E402
from vnpol.evaluation import score_sets  # noqa: E402
from vnpol.training import EncoderLoadError, train  # noqa: E402

PEER_TYPES = ("PER", "ORG", "LOC")


def config_for(name: str, quick: bool, limit: int = 0, work: Path | None = None):
    """The recipe with repository paths; ``limit`` trains on a genre-balanced subset of that size."""
    cfg = load_config(ROOT / "configs" / name)
    cfg.data.train = [str(ROOT / p) for p in cfg.data.train]
    cfg.data.dev = [str(ROOT / p) for p in cfg.data.dev]
    cfg.data.test = [str(ROOT / p) for p in cfg.data.test]
    if limit:
        subset = work / f"train-{limit}.jsonl"
        write_jsonl(balanced_subset([d for p in cfg.data.train for d in read_jsonl(p)], limit), subset)
        cfg.data.train = [str(subset)]
    if quick:
        cfg.training.epochs = 2
    return cfg


def curve_row(n: int, result: dict) -> dict:
    """One learning-curve point: its size, the test headline, the chosen epoch and the time it took."""
    return {"train_documents": n, **(result.get("test") or {}), "dev": result.get("dev") or {},
            "best_epoch": result["best_epoch"], "wall_seconds": result["wall_seconds"]}


def balanced_subset(docs: list[Document], n: int) -> list[Document]:
    """The first n documents taken round-robin over genres (file order within a genre).

    The training file is sorted by genre, so its first 10 documents would cover 2 of 12 genres;
    a learning-curve point should differ from the next one in size, not in what kind of text it saw.
    """
    by_genre: dict[str, list[Document]] = {}
    for d in docs:
        by_genre.setdefault(str(d.meta.get("genre", "")), []).append(d)
    queues = list(by_genre.values())
    picked: list[Document] = []
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop(0))
    return picked


def run(cfg, out: Path) -> dict:
    started = time.time()
    result = train(cfg, out, say=lambda *a: print(*a, flush=True))
    result["wall_seconds"] = round(time.time() - started, 1)
    result["config"] = cfg.to_dict()
    return result


def underthesea_peer(docs: list[Document]) -> list[Document]:
    """underthesea's bundled CRF NER, its words aligned back to character offsets."""
    from underthesea import ner

    from vnpol.text import split_sentences

    out = []
    for d in docs:
        ents: list[Entity] = []
        for s, e in split_sentences(d.text):
            sentence = d.text[s:e]
            cursor, open_ent = 0, None
            for word, _, _, tag in ner(sentence):
                at = sentence.find(word, cursor)
                if at < 0:  # underthesea changed the text (rare): skip the word
                    continue
                cursor = at + len(word)
                prefix, _, etype = tag.partition("-")
                if open_ent and (prefix != "I" or etype != open_ent[2]):
                    ents.append(Entity(f"T{len(ents) + 1}", s + open_ent[0], s + open_ent[1], open_ent[2], ""))
                    open_ent = None
                if prefix == "B" or (prefix == "I" and open_ent is None):
                    open_ent = [at, cursor, etype]
                elif prefix == "I" and open_ent:
                    open_ent[1] = cursor
            if open_ent:
                ents.append(Entity(f"T{len(ents) + 1}", s + open_ent[0], s + open_ent[1], open_ent[2], ""))
        for x in ents:
            x.text = d.text[x.start:x.end]
        out.append(Document(d.id, d.text, ents))
    return out


def typed_scores(gold: list[Document], pred: list[Document], types=PEER_TYPES) -> dict:
    g = [(e.type, (d.id, e.start, e.end)) for d in gold for e in d.entities if e.type in types]
    p = [(e.type, (d.id, e.start, e.end)) for d in pred for e in d.entities if e.type in types]
    return {k: v.to_dict() for k, v in sorted(score_sets(g, p).items())}


def prf_table(section: dict, title: str) -> list[str]:
    lines = [f"**{title}**", "", "| type | P | R | F1 | support |", "|---|---|---|---|---|"]
    for k, v in section.items():
        lines.append(f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
    return lines + [""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny config and 2 epochs: checks the script, numbers are meaningless")
    ap.add_argument("--config", default="offline.yaml", help="recipe for the offline run (configs/…)")
    ap.add_argument("--curve", default="10,20,40", help="training-set sizes for the learning curve (plus 'all'), "
                    "each a genre-balanced subset of the authored training split")
    ap.add_argument("--curve-only", action="store_true", help="re-run only the learning-curve points of --curve and update the report")
    ap.add_argument("--pruning", action="store_true", help="also train with a pruned vocabulary and compare size, load time and F1")
    ap.add_argument("--no-hf-peer", action="store_true", help="skip the plain HF token-classification peer (scripts/peer_hf.py)")
    ap.add_argument("--hf-peer-lr", type=float, default=1.5e-4, help="the peer's learning rate (its grid: scripts/ablate.py --peer-lr)")
    ap.add_argument("--peer-only", action="store_true", help="train only the HF peer and add it to the saved report")
    ap.add_argument("--peer-from", help="with --peer-only: the peer's result from `scripts/peer_hf.py --out FILE` instead of training")
    ap.add_argument("--output", default=str(ROOT / "docs"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vnpol-bench-"))
    main_config = "tiny.yaml" if args.quick else args.config
    if args.curve_only:
        return rerun_curve(args, main_config, work)
    if args.peer_only:
        return rerun_peer(args, main_config)
    seeds = read_jsonl(ROOT / "seeds" / "gold.jsonl")
    report: dict = {"protocol": "train data/authored/train.jsonl, select on data/authored/dev.jsonl, test on seeds/gold.jsonl (5 real articles)",
                    "quick": args.quick, "command": " ".join(["python scripts/benchmark_accuracy.py", *sys.argv[1:]]), "runs": {}}

    # 1. our model on the offline encoder (and PhoBERT when it loads)
    print(f"== training {main_config} on all authored training documents", flush=True)
    main_run = run(config_for(main_config, args.quick), work / "main")
    report["runs"][main_config] = main_run
    if args.pruning and not args.quick:
        print("== the same recipe with a pruned vocabulary", flush=True)
        cfg = config_for(main_config, False)
        cfg.model.prune_vocabulary = True
        pruned = run(cfg, work / "pruned")
        pruned["model_mb"] = round(sum(f.stat().st_size for f in (work / "pruned").rglob("*") if f.is_file()) / 1e6, 1)
        main_run["model_mb"] = round(sum(f.stat().st_size for f in (work / "main").rglob("*") if f.is_file()) / 1e6, 1)
        for name, d in (("main", work / "main"), ("pruned", work / "pruned")):
            from vnpol.predict import load as load_model

            start = time.time()
            load_model(d, device="cpu")
            (pruned if name == "pruned" else main_run)["load_seconds"] = round(time.time() - start, 2)
        report["runs"][main_config + " + prune_vocabulary"] = pruned
    if not args.quick:
        cfg = config_for("default.yaml", False)
        cfg.model.fallback_config = None
        try:
            report["runs"]["default.yaml (PhoBERT)"] = run(cfg, work / "phobert")
        except EncoderLoadError as exc:
            report["phobert"] = f"not run: {exc}"

    # 1b. the plain Hugging Face token-classification recipe on the same split and encoder (scripts/peer_hf.py)
    if not args.no_hf_peer and not args.quick:
        report["runs"][PEER] = hf_peer(main_config, args.hf_peer_lr)

    # 2. peer: underthesea's NER on the same documents, on the types it has
    from vnpol.predict import load

    ours = list(load(work / "main", device="auto").iter_predict([Document(d.id, d.text) for d in seeds]))
    peer = underthesea_peer(seeds)
    report["peer"] = {"underthesea.ner": typed_scores(seeds, peer), "vnpol": typed_scores(seeds, ours)}

    # 3. learning curve
    curve = []
    sizes = [int(x) for x in args.curve.split(",") if x] if not args.quick else [10]
    for n in sizes:
        print(f"== learning curve: {n} training documents", flush=True)
        r = run(config_for(main_config, args.quick, limit=n, work=work), work / f"curve-{n}")
        curve.append(curve_row(n, r))
    curve.append(curve_row(len(read_jsonl(ROOT / "data" / "authored" / "train.jsonl")), main_run))
    report["learning_curve"] = curve
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    plot_curve(curve, out / ("learning_curve_quick.png" if args.quick else "learning_curve.png"))

    # 4. write
    json_name = "benchmarks_accuracy_quick.json" if args.quick else "benchmarks_accuracy.json"
    slim = json.loads(json.dumps(report, default=str))
    for r in slim["runs"].values():
        r.pop("test_report", None)
    (out / json_name).write_text(json.dumps(slim, ensure_ascii=False, indent=1), encoding="utf-8")
    if not args.quick:
        write_section(out / "benchmarks.md", "accuracy", markdown(report, main_config))
        if PEER in report["runs"]:
            write_section(out / "benchmarks.md", "peer", peer_markdown(slim, main_config))
        write_section(out / "benchmarks.md", "curve", curve_markdown(curve, report["command"]))
    print(markdown(report, main_config))
    print(curve_markdown(curve, report["command"]))
    return 0


PEER = "hf-token-classification"


def hf_peer(main_config: str, lr: float) -> dict:
    """The plain Hugging Face recipe (scripts/peer_hf.py) on the same split and encoder as ``main_config``."""
    from peer_hf import train_peer

    cfg = config_for(main_config, False)
    docs = [[d for p in getattr(cfg.data, s) for d in read_jsonl(p)] for s in ("train", "dev", "test")]
    started = time.time()
    result = train_peer(*docs, lr=lr)
    result["wall_seconds"] = round(time.time() - started, 1)
    return result


def rerun_peer(args, main_config: str) -> int:
    """Train (or read, --peer-from) only the HF peer, add it to the saved report and rewrite its section."""
    out = Path(args.output)
    path = out / "benchmarks_accuracy.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    if args.peer_from:
        result = json.loads(Path(args.peer_from).read_text(encoding="utf-8"))
        result.setdefault("wall_seconds", result.get("train_seconds"))
    else:
        result = hf_peer(main_config, args.hf_peer_lr)
    result["encoder"] = "embedded:multilingual-e5-small (AutoModelForTokenClassification)"
    report["runs"][PEER] = result
    report["peer_command"] = " ".join(["python scripts/benchmark_accuracy.py", *sys.argv[1:]])
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    write_section(out / "benchmarks.md", "peer", peer_markdown(report, main_config))
    print(peer_markdown(report, main_config))
    return 0


def peer_markdown(report: dict, main_config: str) -> str:
    """vnpol's recipe beside the plain Hugging Face recipe: dev (where choices are made) and the seeds (reported)."""
    ours, peer = report["runs"][main_config], report["runs"][PEER]
    lines = ["## vnpol against the plain Hugging Face token-classification recipe (same split, same encoder)", "",
             f"`{report.get('peer_command', report.get('command', ''))}` — the peer: `scripts/peer_hf.py` "
             f"(AutoModelForTokenClassification, sentence examples, first-subword labels, AdamW lr {peer['learning_rate']}, "
             f"linear decay, batch 16, {peer['epochs']} epochs, best epoch on dev: {peer['best_epoch']}).", "",
             "| system | dev entity F1 | seed entity F1 | seed relation F1 | seed roles F1 | best epoch | train s |",
             "|---|---|---|---|---|---|---|"]
    for name, r in ((f"vnpol `configs/{main_config}`", ours), ("HF token classification (peer)", peer)):
        dev, test = r.get("dev") or {}, r.get("test") or {}
        cell = lambda d, k: f"{d[k]:.3f}" if k in d else "–"  # noqa: E731
        lines.append(f"| {name} | {cell(dev, 'entity_f1')} | {cell(test, 'entity_f1')} | {cell(test, 'relation_f1')} | "
                     f"{cell(test, 'roles_f1')} | {r.get('best_epoch', '–')} | {r.get('train_seconds', r.get('train_seconds_total', '–'))} |")
    gap = (ours["dev"]["entity_f1"] - peer["dev"]["entity_f1"]) * 100
    lines += ["", f"Dev entity F1: vnpol {'+' if gap >= 0 else ''}{gap:.1f} points against the peer. Per type on dev, peer: "
              + ", ".join(f"{t} {v:.3f}" for t, v in sorted(peer["dev"].get("per_type", {}).items())) + ". "
              "Training seconds are as measured on this machine; a run that shared its 2 cores with another job is slower than alone."]
    return "\n".join(lines)


def rerun_curve(args, main_config: str, work: Path) -> int:
    """Re-train the learning-curve points named in --curve and update the saved report."""
    out = Path(args.output)
    path = out / "benchmarks_accuracy.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    curve = {row["train_documents"]: row for row in report["learning_curve"]}
    for n in [int(x) for x in args.curve.split(",") if x]:
        print(f"== learning curve: {n} training documents", flush=True)
        r = run(config_for(main_config, False, limit=n, work=work), work / f"curve-{n}")
        curve[n] = curve_row(n, r)
    report["learning_curve"] = [curve[k] for k in sorted(curve)]
    report["curve_command"] = " ".join(["python scripts/benchmark_accuracy.py", *sys.argv[1:]])
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    plot_curve(report["learning_curve"], out / "learning_curve.png")
    write_section(out / "benchmarks.md", "curve", curve_markdown(report["learning_curve"], report["curve_command"]))
    print(curve_markdown(report["learning_curve"], report["curve_command"]))
    return 0


def markdown(report: dict, main_config: str) -> str:
    run_ = report["runs"][main_config]
    rep = run_["test_report"]
    cfg = run_["config"]
    lines = ["## Accuracy on the five real seed articles", "", f"`{report.get('command', '')}`", "",
             f"Protocol: {report['protocol']}. Encoder: `{run_['encoder']}`; recipe `configs/{main_config}` "
             f"(lr {cfg['training']['learning_rate']}, {cfg['training']['epochs']} epochs max, batch {cfg['training']['batch_size']}, "
             f"max length {cfg['preprocessing']['max_length']}, segmenter {cfg['preprocessing']['segmenter']}); best dev epoch "
             f"{run_['best_epoch']}; wall time {run_['wall_seconds']} s on this machine.", ""]
    lines += prf_table(rep["entities"], "Entities, strict character spans")
    lines += prf_table(rep["relations_end_to_end"], "Relations, end to end (both spans, both types and the label must match)")
    lines += prf_table(rep["relations_given_gold"], "Relations, given gold entities")
    r = rep["roles"]
    lines += [f"**Roles** (PER, POS, ORG) triples: P {r['precision']:.3f}, R {r['recall']:.3f}, F1 {r['f1']:.3f} (support {r['support']})", ""]
    if "phobert" in report:
        lines += [f"PhoBERT: {report['phobert']}", ""]
    others = [(n, o) for n, o in report["runs"].items() if n != main_config]
    if others:
        lines += ["### Other runs (same protocol)", "", "| run | encoder | entity F1 | relation F1 | roles F1 | rel. F1 given gold | train+eval s | model MB | load s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, o in [(main_config, run_)] + others:
            t = o.get("test") or {}
            lines.append(f"| {name} | {o['encoder']} | {t.get('entity_f1', 0):.3f} | {t.get('relation_f1', 0):.3f} | {t.get('roles_f1', 0):.3f} | "
                         f"{t.get('relation_given_gold_f1', 0):.3f} | {o['wall_seconds']} | {o.get('model_mb', '-')} | {o.get('load_seconds', '-')} |")
        lines.append("")
    lines += ["### Peer: underthesea's bundled NER on the same documents (PER, ORG, LOC only)", "",
              "| system | type | P | R | F1 | support |", "|---|---|---|---|---|---|"]
    for system, scores in report["peer"].items():
        for k, v in scores.items():
            lines.append(f"| {system} | {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
    return "\n".join(lines)


def curve_markdown(curve: list[dict], command: str) -> str:
    lines = ["## Learning curve (test on the five seed articles)", "", f"`{command}`", "",
             "The offline recipe trained on N authored training documents drawn round-robin across the genres "
             "(same dev set for selection).", "",
             "| training documents | dev entity F1 | dev relation F1 | entity F1 | relation F1 | roles F1 | relation F1 given gold "
             "| best dev epoch | train+eval s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in curve:
        dev = row.get("dev") or {}
        lines.append(f"| {row['train_documents']} | {dev.get('entity_f1', 0):.3f} | {dev.get('relation_f1', 0):.3f} | "
                     f"{row.get('entity_f1', 0):.3f} | {row.get('relation_f1', 0):.3f} | "
                     f"{row.get('roles_f1', 0):.3f} | {row.get('relation_given_gold_f1', 0):.3f} | {row.get('best_epoch', '-')} | "
                     f"{row.get('wall_seconds', '-')} |")
    return "\n".join(lines + ["", "![learning curve](learning_curve.png)", ""])


def plot_curve(curve: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [c["train_documents"] for c in curve]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, label in (("entity_f1", "entities"), ("relation_f1", "relations"), ("roles_f1", "roles")):
        ax.plot(xs, [c.get(key, 0) for c in curve], marker="o", label=label)
    ax.set_xlabel("authored training documents")
    ax.set_ylabel("F1 on the seed articles")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

"""Speed against the compute floor, side by side in one run, on one machine, for one model.

    python scripts/benchmark_speed.py --model models/demo        # the trained offline model (make demo)
    python scripts/benchmark_speed.py --quick                     # trains a tiny model first; CI smoke run
    python scripts/benchmark_speed.py --model DIR --device cuda   # the same table on a GPU

For the seeds (5 articles) and a synthetic 100-article collection built from
their sentences, it reports:
  (1) the floor: the bare encoder forward pass over exactly the windows vnpol creates;
  (2) vnpol.predict end to end (normalise, segment, window, encode, decode, relations);
  (3) the Hugging Face pipeline("token-classification") on the same encoder weights and tagger,
      same batch size, with its own striding for long texts: as it comes (fp32) and under the
      same precision as vnpol (bf16 autocast on CPUs with AMX), so the speed-up from precision
      and the speed-up from the pipeline itself can be told apart;
articles/s, subword tokens/s, the ratios (2)/(1) and (2)/(3), the share of (2) spent in the
encoder, model load time, peak resident memory, and training seconds per epoch against
forward+backward alone. Writes the speed section of docs/benchmarks.md and docs/benchmarks_speed.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import torch  # noqa: E402
from benchmark_report import write_section  # noqa: E402

from vnpol.predict_cli import add_precision  # noqa: E402
from vnpol.corpus import Document, read_jsonl  # noqa: E402
from vnpol.encoding import encode_document  # noqa: E402
from vnpol.predict import load  # noqa: E402
from vnpol.text import split_sentences  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_collection(seeds: list[Document], n: int, seed: int = 0) -> list[str]:
    """n articles of 15-60 sentences drawn from the seed articles (realistic vocabulary and noise)."""
    rng = random.Random(seed)
    sentences = [d.text[s:e] for d in seeds for s, e in split_sentences(d.text)]
    return ["\n".join(rng.choice(sentences) for _ in range(rng.randint(15, 60))) for _ in range(n)]


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def floor_forward(extractor, windows: list[list[int]], batch_size: int) -> None:
    model, pad, dev = extractor.model, extractor.tokenizer.pad_id, extractor.device
    with torch.inference_mode(), extractor.autocast():
        for i in range(0, len(windows), batch_size):
            batch = windows[i:i + batch_size]
            width = max(map(len, batch))
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, w in enumerate(batch):
                ids[r, :len(w)] = torch.tensor(w)
                mask[r, :len(w)] = 1
            model.encode(ids.to(dev), mask.to(dev))
        if dev.type == "cuda":
            torch.cuda.synchronize()


def hf_pipeline(model_dir: Path, extractor, batch_size: int, device: str):
    """A standard token-classification model holding the same encoder and tagger weights."""
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer, pipeline

    from vnpol.schema import POLITICAL
    LABELS = POLITICAL.bio_labels()

    config = AutoConfig.from_pretrained(str(model_dir / "encoder"))
    config.num_labels = len(LABELS)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {l: i for i, l in enumerate(LABELS)}
    tc = AutoModelForTokenClassification.from_config(config)
    base = getattr(tc, tc.base_model_prefix)
    base.load_state_dict(extractor.model.encoder.state_dict(), strict=False)
    tc.classifier.load_state_dict(extractor.model.tagger.state_dict())
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.model_max_length = extractor.prep.max_length
    dev = 0 if device.startswith("cuda") else -1
    kwargs = {"stride": 32} if getattr(tok, "is_fast", False) else {}
    return pipeline("token-classification", model=tc.eval(), tokenizer=tok, aggregation_strategy="simple",
                    batch_size=batch_size, device=dev, **kwargs)


def measure(extractor, model_dir: Path, texts: list[str], batch_size: int, device: str, pipe, repeat: int = 2) -> dict:
    docs = [Document(str(i), t) for i, t in enumerate(texts)]
    encoded = [encode_document(d, extractor.tokenizer, extractor.prep) for d in docs]
    windows = [w.input_ids for e in encoded for w in e.windows]
    tokens = sum(map(len, windows))
    floor_forward(extractor, windows[:batch_size], batch_size)  # warm-up

    encoder_time = [0.0]
    original = extractor.model.encode

    def counting(*a, **k):
        start = time.perf_counter()
        out = original(*a, **k)
        encoder_time[0] += time.perf_counter() - start
        return out

    # floor and vnpol alternate, best of `repeat` each: a shared or throttled CPU drifts by 10-15 % between minutes
    t_floor = t_vnpol = float("inf")
    share = 0.0
    for _ in range(repeat):
        t_floor = min(t_floor, timed(lambda: floor_forward(extractor, windows, batch_size)))
        encoder_time[0] = 0.0
        extractor.model.encode = counting
        try:
            t = timed(lambda: extractor.predict_batch(texts, batch_size=batch_size))
        finally:
            extractor.model.encode = original
        if t < t_vnpol:
            t_vnpol, share = t, encoder_time[0] / t
    row = {"articles": len(texts), "windows": len(windows), "subword_tokens": tokens,
           "floor_s": round(t_floor, 2), "vnpol_s": round(t_vnpol, 2),
           "floor_articles_per_s": round(len(texts) / t_floor, 2), "vnpol_articles_per_s": round(len(texts) / t_vnpol, 2),
           "floor_tokens_per_s": round(tokens / t_floor), "vnpol_tokens_per_s": round(tokens / t_vnpol),
           "vnpol_over_floor": round(t_floor / t_vnpol, 3), "encoder_share_of_vnpol": round(share, 3), "repeats": repeat}
    if pipe is not None:
        t_pipe = timed(lambda: list(pipe(texts)), repeat=repeat)
        row.update(hf_pipeline_s=round(t_pipe, 2), hf_articles_per_s=round(len(texts) / t_pipe, 2),
                   vnpol_speedup_over_hf=round(t_pipe / t_vnpol, 2))
        if extractor.precision != "fp32":
            def same_precision():
                with extractor.autocast():
                    list(pipe(texts))
            t_same = timed(same_precision, repeat=repeat)
            row.update(hf_same_precision_s=round(t_same, 2), hf_same_precision_articles_per_s=round(len(texts) / t_same, 2),
                       vnpol_speedup_over_hf_same_precision=round(t_same / t_vnpol, 2))
    return row


CONFIGURATIONS = [  # name, model ("default" or "fast"), load() keywords, windows grouped by length
    ("torch, windows in input order (before issue 19)", "default", {"backend": "torch"}, False),
    ("torch", "default", {"backend": "torch"}, True),
    ("onnx fp32", "default", {"backend": "onnx", "precision": "fp32"}, True),
    ("onnx int8 (attention)", "default", {"backend": "onnx", "precision": "int8"}, True),
    ("fast recipe, torch", "fast", {"backend": "torch"}, True),
    ("fast recipe, onnx fp32", "fast", {"backend": "onnx", "precision": "fp32"}, True),
    ("fast recipe, onnx int8", "fast", {"backend": "onnx", "precision": "int8"}, True),
]


def configurations(models: dict[str, Path], texts: list[str], dev: list[Document], batch_size: int, repeat: int,
                   hf_s: float | None) -> list[dict]:
    """articles/s of every backend and recipe on the same collection, and its dev F1 beside it."""
    from vnpol.evaluation import evaluate_model, headline

    rows = []
    for name, which, kwargs, grouped in CONFIGURATIONS:
        if which not in models:
            continue
        ex = load(models[which], device="cpu", say=lambda *_: None, **kwargs)
        ex.group_batches = ex.group_batches if grouped else 1
        ex.predict_batch(texts[:2], batch_size=batch_size)  # warm-up (and the one-time ONNX export)
        t = timed(lambda: ex.predict_batch(texts, batch_size=batch_size), repeat=repeat)
        row = {"configuration": name, "model": str(models[which]), "precision": ex.precision, "seconds": round(t, 2),
               "articles_per_s": round(len(texts) / t, 2)}
        if hf_s:
            row["speedup_over_hf"] = round(hf_s / t, 2)
        if dev:
            row.update({f"dev_{k}": v for k, v in headline(evaluate_model(ex, dev, batch_size, given_gold=False)).items()
                        if k in ("entity_f1", "relation_f1")})
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = rows[0]["articles_per_s"] if rows else None
    for row in rows:
        row["speedup_over_before"] = round(row["articles_per_s"] / base, 2)
    return rows


def training_epoch(model_dir: Path, docs: list[Document], batch_size: int, autocast) -> dict:
    """Seconds for one training epoch over the documents against forward+backward alone on the same batches.

    ``autocast`` is the precision context training would use on this machine (``vnpol train``'s
    ``mixed_precision: auto`` picks the same one as prediction)."""
    from vnpol.encoding import SubwordTokenizer
    from vnpol.batches import collate, joint_loss, window_examples
    from vnpol.model import freeze_embeddings
    from vnpol.saving import load_model

    model, hf_tok, prep, _ = load_model(model_dir)
    tok = SubwordTokenizer(hf_tok)
    recipe = model_dir / "training_config.json"
    if recipe.exists() and json.loads(recipe.read_text(encoding="utf-8"))["model"].get("freeze_embeddings"):
        freeze_embeddings(model)  # as training did: no AdamW over a frozen matrix
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def epoch(step: bool) -> None:
        examples = [ex for d in docs for ex in window_examples(encode_document(d, tok, prep, with_labels=True, scheme=model.scheme), model.scheme)]
        for i in range(0, len(examples), batch_size):
            batch = collate(examples[i:i + batch_size], tok.pad_id)
            with autocast():
                loss, _, _ = joint_loss(model, batch, 1.0)
            loss.backward()
            if step:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            opt.zero_grad()

    examples = [ex for d in docs for ex in window_examples(encode_document(d, tok, prep, with_labels=True, scheme=model.scheme), model.scheme)]
    batches = [collate(examples[i:i + batch_size], tok.pad_id) for i in range(0, len(examples), batch_size)]

    def fwd_bwd() -> None:
        for b in batches:
            with autocast():
                loss, _, _ = joint_loss(model, b, 1.0)
            loss.backward()
            opt.zero_grad()

    return {"windows": len(examples), "epoch_s": round(timed(lambda: epoch(True)), 2), "forward_backward_s": round(timed(fwd_bwd), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "demo"))
    ap.add_argument("--device", default="cpu")
    add_precision(ap)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--articles", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs (floor and vnpol alternate)")
    ap.add_argument("--quick", action="store_true", help="train a tiny model and time 20 synthetic articles (CI)")
    ap.add_argument("--no-hf", action="store_true", help="skip the Hugging Face pipeline comparison")
    ap.add_argument("--output", default=str(ROOT / "docs"), help="folder for benchmarks.md and the JSON file")
    ap.add_argument("--fast-model", help="a model trained with configs/fast-inference.yaml, for the configuration table")
    ap.add_argument("--dev", default=str(ROOT / "data/authored/dev.jsonl"),
                    help="annotated documents scored beside each configuration ('' to skip)")
    args = ap.parse_args()
    seeds = read_jsonl(ROOT / "seeds" / "gold.jsonl")
    model_dir = Path(args.model)
    if args.quick:
        from vnpol.config import load_config
        from vnpol.training import train

        model_dir = Path(tempfile.mkdtemp(prefix="vnpol-speed-")) / "tiny"
        cfg = load_config(ROOT / "configs" / "tiny.yaml", ["training.epochs=1", "data.dev=[]", "data.test=[]",
                                                         f"data.train=[{ROOT / 'data/authored/train.jsonl'}]", "data.limit_train=5"])
        train(cfg, model_dir, say=lambda *_: None)
        args.articles = 20
    if not model_dir.exists():
        sys.exit(f"error: no model at {model_dir}; run `make demo` first (or pass --model DIR, or --quick)")

    rss_before = peak_rss_mb()
    start = time.perf_counter()
    extractor = load(model_dir, device=args.device, precision=args.precision)
    load_s = time.perf_counter() - start
    pipe = None if args.no_hf else hf_pipeline(model_dir, extractor, args.batch_size, args.device)
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.processor() or 'cpu'}",
              "device": args.device, "precision": extractor.precision, "model": str(model_dir), "encoder": extractor.meta.get("encoder"),
              "batch_size": args.batch_size, "model_load_s": round(load_s, 2)}
    repeat = 1 if args.quick else args.repeat
    result["seeds"] = measure(extractor, model_dir, [d.text for d in seeds], args.batch_size, args.device, pipe, repeat)
    result["collection"] = measure(extractor, model_dir, synthetic_collection(seeds, args.articles), args.batch_size,
                                   args.device, pipe, repeat)
    models = {"default": model_dir, **({"fast": Path(args.fast_model)} if args.fast_model else {})}
    dev = read_jsonl(args.dev) if args.dev and not args.quick else []
    result["configurations"] = configurations(models, synthetic_collection(seeds, args.articles), dev, args.batch_size,
                                              repeat, result["collection"].get("hf_pipeline_s"))
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["rss_before_load_mb"] = round(rss_before, 1)
    result["training"] = training_epoch(model_dir, seeds[:2] if args.quick else seeds, 8, extractor.autocast)
    print(json.dumps(result, indent=1))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("benchmarks_speed_quick.json" if args.quick else "benchmarks_speed.json")).write_text(json.dumps(result, indent=1), encoding="utf-8")
    if not args.quick:
        write_section(out / "benchmarks.md", "speed", markdown(result))
    return 0


def markdown(r: dict) -> str:
    lines = ["## Speed (CPU unless stated)", "",
             f"Machine: {r['machine']}; device `{r['device']}`, precision {r.get('precision', 'fp32')}; model `{r['encoder']}`; "
             f"batch {r['batch_size']} windows; best of {r['seeds'].get('repeats', 1)} runs each; "
             f"model load {r['model_load_s']} s; peak resident memory {r['peak_rss_mb']} MB (whole benchmark process).", "",
             "Floor and vnpol run in that precision; \"HF\" is the pipeline as it comes (fp32), \"HF same prec.\" the pipeline "
             "under the same autocast as vnpol.", "",
             "| articles | windows | subword tokens | floor art/s | vnpol art/s | HF art/s | HF same prec. art/s | floor tok/s | vnpol tok/s "
             "| vnpol/floor | encoder share | vnpol vs HF | vnpol vs HF same prec. |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("seeds", "collection"):
        x = r[name]
        lines.append(f"| {x['articles']} ({name}) | {x['windows']} | {x['subword_tokens']} | {x['floor_articles_per_s']} | {x['vnpol_articles_per_s']} | "
                     f"{x.get('hf_articles_per_s', '-')} | {x.get('hf_same_precision_articles_per_s', '-')} | {x['floor_tokens_per_s']} | "
                     f"{x['vnpol_tokens_per_s']} | {x['vnpol_over_floor']} | {x['encoder_share_of_vnpol']} | "
                     f"{x.get('vnpol_speedup_over_hf', '-')}× | {x.get('vnpol_speedup_over_hf_same_precision', '-')}× |")
    lines += ["", "**Backends and recipes** on the same 100 articles (articles/s; \"vs HF\": against the pipeline above as it "
              "comes, fp32; \"vs before\": against vnpol before issue 19; dev F1 of the same configuration, strict spans):", "",
              "| configuration | precision | art/s | vs HF | vs before | dev entity F1 | dev relation F1 |", "|---|---|---|---|---|---|---|"]
    for c in r.get("configurations", []):
        lines.append(f"| {c['configuration']} | {c['precision']} | {c['articles_per_s']} | {c.get('speedup_over_hf', '-')}× | "
                     f"{c['speedup_over_before']}× | {c.get('dev_entity_f1', '-')} | {c.get('dev_relation_f1', '-')} |")
    t = r["training"]
    lines += ["", f"Training on the seeds ({t['windows']} windows, batch 8): one epoch {t['epoch_s']} s against forward+backward alone "
              f"{t['forward_backward_s']} s (the rest is optimiser steps and encoding).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

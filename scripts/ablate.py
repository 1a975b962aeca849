"""Ablations of a recipe on the development split: one training run per variant, one table.

    python scripts/ablate.py --config configs/offline.yaml --out docs/ablations.jsonl            # every variant
    python scripts/ablate.py --only base,unfrozen --out /tmp/abl.jsonl                           # some of them
    python scripts/ablate.py --peer-lr 1.5e-4,3e-4 --out /tmp/abl.jsonl                          # the HF peer's grid

Each variant is the recipe plus ``--set`` overrides. A finished variant is written as one
JSON line (dev headline, seed headline, best epoch, training time) and skipped when the
script runs again, so an interrupted sweep continues where it stopped. Decisions are
taken on the ``dev`` numbers only; the seed numbers are recorded for the report.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from vnpol.config import load_config  # noqa: E402
from vnpol.corpus import read_jsonl  # noqa: E402
from vnpol.training import train  # noqa: E402

#: name -> (what it changes, overrides on top of the recipe)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "base": ("the recipe as shipped", []),
    "lr-1.5e-4": ("encoder learning rate 1.5e-4", ["training.learning_rate=1.5e-4"]),
    "unfrozen": ("embedding matrix trainable", ["model.freeze_embeddings=false"]),
    "unfrozen-lr-1.5e-4": ("both of the above", ["model.freeze_embeddings=false", "training.learning_rate=1.5e-4"]),
    "attn-dropout-0.1": ("attention dropout 0.1 (no fused kernel)", ["model.attention_dropout=0.1"]),
    "fp32": ("fp32 training (no bf16 autocast)", ["training.mixed_precision=no"]),
    "bf16": ("bf16 autocast in training (AVX-512 BF16 or AMX)", ["training.mixed_precision=bf16"]),
    "crf": ("a CRF layer over the word tags instead of a softmax per word", ["model.crf=true"]),
    "epochs-14": ("14 epochs instead of 10 (the linear decay stretched with them)", ["training.epochs=14"]),
    "rel-weight-0.5": ("relation loss weight 0.5", ["training.relation_loss_weight=0.5"]),
    "head-lr-3e-4": ("head learning rate 3e-4", ["training.head_learning_rate=3e-4"]),
    "context-0": ("windows of whole sentences, no context", ["preprocessing.context=0"]),
    "epochs-20": ("20 epochs, patience 4", ["training.epochs=20", "training.early_stopping_patience=4"]),
    "batch-8": ("batch 8: half the optimizer steps of the recipe's batch 4", ["training.batch_size=8"]),
    "no-capitals": ("no capitalised copies of training documents", ["training.uppercase_copies=0"]),
    "earlier-offline": ("the earlier offline.yaml: every weight trainable, lr 1.5e-4, batch 8, no copies",
                        ["model.freeze_embeddings=false", "training.learning_rate=1.5e-4", "training.batch_size=8",
                         "training.uppercase_copies=0"]),
    "fast-inference": ("bottom 6 of 12 encoder layers, batch 8, no copies (configs/fast-inference.yaml)",
                       ["model.encoder_layers=6", "training.batch_size=8", "training.uppercase_copies=0"]),
    "features": ("relation head with list features", ["model.relation_features=true"]),
    "features-unfrozen-lr-1.5e-4": ("list features, embeddings trainable, encoder lr 1.5e-4",
                                    ["model.relation_features=true", "model.freeze_embeddings=false", "training.learning_rate=1.5e-4"]),
    "features-unfrozen-lr-1.5e-4-attn-0.1": ("the above with attention dropout 0.1",
                                             ["model.relation_features=true", "model.freeze_embeddings=false",
                                              "training.learning_rate=1.5e-4", "model.attention_dropout=0.1"]),
}


def run_variant(config: str, overrides: list[str]) -> dict:
    cfg = load_config(ROOT / config, overrides)
    for part in ("train", "dev", "test"):
        setattr(cfg.data, part, [str(ROOT / p) for p in getattr(cfg.data, part)])
    from vnpol.evaluation import evaluate_model, headline
    from vnpol.predict import load

    with tempfile.TemporaryDirectory() as tmp:
        started = time.time()
        result = train(cfg, Path(tmp) / "model", say=lambda *a: print(*a, flush=True))
        wall = round(time.time() - started, 1)
        unconstrained = load(Path(tmp) / "model", device="cpu", constraints=False)  # the same model, no one_per decoding
        dev_free = headline(evaluate_model(unconstrained, load_corpus_for(cfg.data.dev), given_gold=True))
    return {"dev": result.get("dev"), "test": result.get("test"), "dev_without_one_per": dev_free,
            "thresholds": result.get("thresholds"), "best_epoch": result["best_epoch"],
            "train_seconds": result["train_seconds_total"], "wall_seconds": wall}


def load_corpus_for(paths: list[str]):
    return [d for p in paths for d in read_jsonl(p, validate=False)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/offline.yaml")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--peer-lr", default="", help="comma-separated learning rates for the HF peer")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out)
    done = {json.loads(l)["name"] for l in out.read_text().splitlines() if l.strip()} if out.exists() else set()
    jobs = [(f"peer-lr-{lr}", lr) for lr in a.peer_lr.split(",") if lr]
    jobs += [(n, None) for n in (a.only.split(",") if a.only else VARIANTS) if n]
    for name, lr in jobs:
        if name in done:
            continue
        if lr is not None:
            from peer_hf import train_peer

            cfg = load_config(ROOT / a.config)
            docs = [[d for p in getattr(cfg.data, s) for d in read_jsonl(ROOT / p)] for s in ("train", "dev", "test")]
            row = {"name": name, "what": "HF token-classification peer", **train_peer(*docs, lr=float(lr))}
        else:
            what, overrides = VARIANTS[name]
            row = {"name": name, "what": what, "overrides": overrides, **run_variant(a.config, overrides)}
        with out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(json.dumps({k: row[k] for k in ("name", "dev", "test") if k in row}, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

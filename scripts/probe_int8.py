"""Where int8 loses accuracy: dynamic int8 on different sets of the encoder's linear layers, scored on dev.

    python scripts/probe_int8.py --model models/demo        # prints the table (development split only)

Each variant loads the model afresh, replaces some of the encoder's ``nn.Linear`` layers with
PyTorch's dynamic int8 ones (weights int8, per tensor or per output channel; activations
quantised per batch at run time) and tags the development split. Heads and embeddings stay in
fp32 in every variant (quantising the heads too changed nothing measurable: 0.8632 either way).
Seconds are the wall time of tagging the 30 dev articles on this machine, one run each.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vnpol.corpus import read_jsonl  # noqa: E402
from vnpol.evaluation import evaluate_model, headline  # noqa: E402
from vnpol.predict import load  # noqa: E402


def _ffn_output(name: str) -> bool:
    """The feed-forward block's second projection (intermediate → hidden) of each layer."""
    return name.endswith("output.dense") and "attention" not in name


VARIANTS = {
    "fp32": None,
    "int8 per tensor, every encoder linear": ("tensor", lambda n: True),
    "int8 per channel, every encoder linear": ("channel", lambda n: True),
    "int8 per tensor, all but the FFN output projections": ("tensor", lambda n: not _ffn_output(n)),
    "int8 per channel, all but the FFN output projections": ("channel", lambda n: not _ffn_output(n)),
    "int8 per tensor, attention projections only": ("tensor", lambda n: "attention" in n),
}


def quantised(model_dir: str, granularity: str, keep) -> object:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    ex = load(model_dir, device="cpu", precision="fp32")
    qconfig = per_channel_dynamic_qconfig if granularity == "channel" else default_dynamic_qconfig
    names = [n for n, m in ex.model.encoder.named_modules() if isinstance(m, torch.nn.Linear) and keep(n)]
    ex.model.encoder = quantize_dynamic(ex.model.encoder, {n: qconfig for n in names}, dtype=torch.qint8)
    return ex


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--dev", default=str(ROOT / "data/authored/dev.jsonl"))
    a = ap.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*quantiz.*")
    dev = read_jsonl(a.dev)
    print("| variant | dev entity F1 | dev relation F1 | dev roles F1 | tagging s |\n|---|---|---|---|---|")
    for name, spec in VARIANTS.items():
        ex = load(a.model, device="cpu", precision="fp32") if spec is None else quantised(a.model, *spec)
        started = time.perf_counter()
        h = headline(evaluate_model(ex, dev, given_gold=False))
        print(f"| {name} | {h['entity_f1']:.3f} | {h['relation_f1']:.3f} | {h['roles_f1']:.3f} | "
              f"{time.perf_counter() - started:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

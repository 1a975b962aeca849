"""Saving stage: a model directory with everything needed to reload it, and no pickle.

::

    model.safetensors   all weights (encoder + heads)
    encoder/            encoder config.json (no weights)
    tokenizer files     whatever the tokenizer needs to reload
    scheme.yaml         the label scheme (also inside vnpol.json)
    vnpol.json          scheme, label maps, preprocessing, encoder name, head sizes, thresholds, metrics

:func:`load_model` is the low-level reader; users meet :func:`vnpol.predict.load`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .encoding import Preprocessing
from .model import JointModel
from .schema import Scheme, SchemeError, from_model_meta

WEIGHTS_FILE = "model.safetensors"
META_FILE = "vnpol.json"
SCHEME_FILE = "scheme.yaml"
ENCODER_DIR = "encoder"
#: Files a model directory must never contain: pickled weights can run code when loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_model_dir(model_dir: str | Path) -> dict[str, Any]:
    """Refuse directories that are not vnpol models, hold pickles, or whose label maps do not match their scheme."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory (train one with `python scripts/train.py --output {model_dir}`)")
    pickles = sorted(p.name for p in model_dir.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ValueError(f"{model_dir}: refusing to load pickled files {pickles}; vnpol models hold only safetensors and JSON/YAML "
                         "(pickles can execute code). Re-save the model with vnpol.")
    meta_path = model_dir / META_FILE
    if not meta_path.exists() or not (model_dir / WEIGHTS_FILE).exists():
        raise FileNotFoundError(f"{model_dir}: not a vnpol model (expected {META_FILE} and {WEIGHTS_FILE})")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    try:
        scheme = from_model_meta(meta)
    except SchemeError as exc:
        raise ValueError(f"{model_dir}: {exc}; retrain the model or install the vnpol version that made it") from None
    if meta.get("labels") != scheme.bio_labels() or meta.get("relation_labels") != scheme.relation_labels():
        raise ValueError(f"{model_dir}: the label maps in {META_FILE} do not match its scheme {scheme.describe()}; "
                         "the directory was edited by hand or written by another tool")
    return meta


def save(model: JointModel, tokenizer, prep: Preprocessing, model_dir: str | Path, *, encoder_name: str,
         extra: dict[str, Any] | None = None) -> None:
    """Write the model directory (callers wanting atomicity write to a temp dir and rename)."""
    from safetensors.torch import save_file

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(model_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    model.encoder.config.save_pretrained(str(model_dir / ENCODER_DIR))
    tokenizer.save_pretrained(str(model_dir))
    scheme: Scheme = model.scheme
    scheme.save(model_dir / SCHEME_FILE)
    meta = {
        "scheme": scheme.to_dict(),
        "labels": scheme.bio_labels(),
        "relation_labels": scheme.relation_labels(),
        "entity_types": list(scheme.entity_types),
        "preprocessing": prep.to_dict(),
        "encoder": encoder_name,
        "head": model.head_sizes,
    }
    meta.update(extra or {})
    (model_dir / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")


def load_model(model_dir: str | Path, device: str | torch.device = "cpu"):
    """Load (model, tokenizer, preprocessing, meta) from a directory written by :func:`save`."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    model_dir = Path(model_dir)
    meta = check_model_dir(model_dir)
    config = AutoConfig.from_pretrained(str(model_dir / ENCODER_DIR), trust_remote_code=False)
    kwargs = {"add_pooling_layer": False} if config.model_type in ("bert", "roberta", "xlm-roberta") else {}
    encoder = AutoModel.from_config(config, **kwargs)
    model = JointModel(encoder, from_model_meta(meta), **meta["head"])
    state = load_file(str(model_dir / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise ValueError(f"{model_dir}: weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    prep = Preprocessing(**meta["preprocessing"])
    return model, tokenizer, prep, meta

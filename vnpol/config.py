"""Configuration: dataclasses loaded from YAML, with ``--set section.key=value`` overrides.

>>> cfg = Config()
>>> apply_overrides(cfg, ["training.learning_rate=3e-5", "data.train=[a.jsonl, b.jsonl]"])
>>> cfg.training.learning_rate, cfg.data.train
(3e-05, ['a.jsonl', 'b.jsonl'])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: numeric precisions for prediction (``vnpol.predict.load``, ``--precision``); ``auto`` picks per device
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass
class ModelConfig:
    #: hub id, local directory, ``embedded:multilingual-e5-small``, or ``random`` (tiny test encoder)
    encoder: str = "vinai/phobert-base"
    #: used when ``encoder`` cannot be loaded (no network, no cache); ``null`` makes that an error
    fallback_config: str | None = "configs/offline.yaml"
    #: for ``encoder: random``: RoBERTa sizes; the tokenizer is trained on the training corpus
    random_init: dict[str, Any] = field(default_factory=lambda: {
        "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128, "vocab_size": 3000})
    dropout: float = 0.1
    #: dropout on the encoder's attention probabilities; null keeps the encoder's own (0.1 for BERT/RoBERTa).
    #: 0 lets PyTorch use its fused attention kernel in training, which on CPU is much faster
    attention_dropout: float | None = None
    relation_hidden: int = 256
    type_dim: int = 32
    freeze_embeddings: bool = False
    #: keep only the vocabulary pieces the training corpus and a Vietnamese dictionary use (SentencePiece encoders)
    prune_vocabulary: bool = False


@dataclass
class PreprocessingConfig:
    normalize_tones: bool = True
    segmenter: str = "underthesea"
    max_length: int = 256
    context: int = 16


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=lambda: ["data/authored/train.jsonl"])
    dev: list[str] = field(default_factory=lambda: ["data/authored/dev.jsonl"])
    test: list[str] = field(default_factory=lambda: ["seeds/gold.jsonl"])
    #: keep only the first N training documents (learning curves, smoke runs); 0 = all
    limit_train: int = 0


@dataclass
class TrainingConfig:
    epochs: int = 20
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    relation_loss_weight: float = 1.0
    early_stopping_patience: int = 4
    seed: int = 13
    mixed_precision: str = "auto"  # auto (fp16 on GPU, bf16 on CPUs with AMX, else none) | no | fp16 | bf16
    max_grad_norm: float = 1.0
    num_threads: int = 0  # torch threads on CPU; 0 = torch default


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    #: the ``--set`` overrides applied on top of the YAML (kept so a fallback recipe gets them too)
    overrides: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _merge(obj: Any, values: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"{where}: unknown key {key!r}; expected one of {', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{key}: expected a mapping")
            _merge(current, value, f"{where}.{key}")
        else:
            setattr(obj, key, value)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← YAML file (``extends: other.yaml`` supported) ← ``key=value`` overrides."""
    cfg = Config()
    if path is not None:
        for values, where in _yaml_chain(Path(path)):
            _merge(cfg, values, where)
    apply_overrides(cfg, overrides or [])
    return cfg


def _yaml_chain(path: Path) -> list[tuple[dict[str, Any], str]]:
    if not path.exists():
        raise FileNotFoundError(f"config file {path} not found (see configs/ for the shipped ones)")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level")
    chain = []
    parent = values.pop("extends", None)
    if parent:
        chain = _yaml_chain((path.parent / parent) if not Path(parent).is_absolute() else Path(parent))
    return chain + [(values, str(path))]


def apply_overrides(cfg: Config, overrides: list[str]) -> None:
    cfg.overrides = list(cfg.overrides) + list(overrides)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"override {item!r}: expected section.key=value, e.g. training.learning_rate=3e-5")
        *path, last = key.strip().split(".")
        target: Any = cfg
        for part in path:
            if not hasattr(target, part):
                raise ValueError(f"override {item!r}: unknown section {part!r}")
            target = getattr(target, part)
        if not dataclasses.is_dataclass(target) or last not in {f.name for f in dataclasses.fields(target)}:
            raise ValueError(f"override {item!r}: unknown key {last!r}")
        setattr(target, last, yaml.safe_load(raw))

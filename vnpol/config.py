"""Configuration: pydantic models filled from YAML files and ``--set section.key=value`` overrides.

pydantic (rather than OmegaConf structured configs) because it coerces the way YAML users
expect — ``3e-5`` read by YAML as the string ``"3e-5"`` becomes the float it means — and
refuses what cannot be coerced with the key, the value and the expected type, and it is
already how the rest of the Python ecosystem validates settings. YAML files and ``--set``
take one path: both are merged into one mapping, which is validated once.

>>> cfg = load_config(overrides=["training.learning_rate=3e-5", "data.train=[a.jsonl, b.jsonl]"])
>>> cfg.training.learning_rate, cfg.data.train
(3e-05, ['a.jsonl', 'b.jsonl'])
>>> load_config(overrides=["training.learning_rate=fast"])
Traceback (most recent call last):
...
vnpol.config.ConfigError: training.learning_rate = 'fast' (from --set): expected a number
>>> load_config(overrides=["training.learnig_rate=1e-4"])
Traceback (most recent call last):
...
vnpol.config.ConfigError: training.learnig_rate = '1e-4' (from --set): unknown key; did you mean 'learning_rate'?
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: numeric precisions for prediction (``vnpol.predict.load``, ``--precision``); ``auto`` picks per device
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class ConfigError(ValueError):
    """A configuration value that is missing, unknown or of the wrong type: one line per problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    #: hub id, local directory, ``embedded:multilingual-e5-small``, or ``random`` (tiny test encoder)
    encoder: str = "vinai/phobert-base"
    #: used when ``encoder`` cannot be loaded (no network, no cache); ``null`` makes that an error
    fallback_config: Optional[str] = "configs/offline.yaml"
    #: for ``encoder: random``: RoBERTa sizes; the tokenizer is trained on the training corpus
    random_init: dict[str, int] = Field(default_factory=lambda: {
        "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128, "vocab_size": 3000})
    dropout: float = Field(0.1, ge=0, lt=1)
    #: dropout on the encoder's attention probabilities; null keeps the encoder's own (0.1 for BERT/RoBERTa).
    #: 0 lets PyTorch use its fused attention kernel in training, which on CPU is much faster
    attention_dropout: Optional[float] = Field(None, ge=0, lt=1)
    #: keep only the encoder's bottom N transformer layers (0 = all): the ``fast`` recipe's layer-dropped
    #: encoder, fine-tuned as usual; dropping the top layers costs least (Sajjad et al. 2023, "On the effect
    #: of dropping layers of pre-trained transformer models")
    encoder_layers: int = Field(0, ge=0)
    relation_hidden: int = Field(256, gt=0)
    type_dim: int = Field(32, gt=0)
    freeze_embeddings: bool = False
    #: list features in the relation head (distance, entities and separators between the pair; see encoding.pair_features)
    relation_features: bool = False
    #: a linear-chain CRF over each window's word tags (learned transition scores, trained on whole sequences)
    #: instead of a softmax per word; both decode with IOB2-constrained Viterbi
    crf: bool = False
    #: keep only the vocabulary pieces the training corpus and a Vietnamese dictionary use (SentencePiece encoders)
    prune_vocabulary: bool = False


class PreprocessingConfig(_Section):
    normalize_tones: bool = True
    segmenter: Literal["none", "underthesea", "pyvi"] = "underthesea"
    max_length: int = Field(256, ge=16)
    context: int = Field(16, ge=0)


class DataConfig(_Section):
    train: list[str] = Field(default_factory=lambda: ["data/authored/train.jsonl"])
    dev: list[str] = Field(default_factory=lambda: ["data/authored/dev.jsonl"])
    test: list[str] = Field(default_factory=lambda: ["seeds/gold.jsonl"])
    #: keep only the first N training documents (learning curves, smoke runs); 0 = all
    limit_train: int = Field(0, ge=0)
    #: where encoded training windows are cached as Arrow (Hugging Face datasets); ``auto``: under the
    #: vnpol cache ($VNPOL_CACHE or ~/.cache/vnpol)/windows; null: encode every run
    cache_dir: Optional[str] = "auto"


class TrainingConfig(_Section):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    head_learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    relation_loss_weight: float = Field(1.0, ge=0)
    #: add this fraction of the training documents again in capitals (headlines are set in capitals;
    #: see vnpol.augment); 0 = none
    uppercase_copies: float = Field(0.0, ge=0, le=1)
    early_stopping_patience: int = Field(4, ge=1)
    seed: int = 13
    #: auto: fp16 on GPU, bf16 autocast on CPUs with AVX-512 BF16 or AMX, else none (fp32)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    max_grad_norm: float = Field(1.0, gt=0)
    num_threads: int = Field(0, ge=0)  # torch threads on CPU; 0 = torch default

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        """YAML reads a bare ``no`` as false: ``mixed_precision: no`` means the value ``"no"``."""
        return "no" if value is False else value


class Config(_Section):
    #: the label scheme: ``political`` (the shipped default), a path to a scheme YAML file, or ``auto``
    #: (entity types from the training data; relations only where the data has them)
    scheme: str = "political"
    model: ModelConfig = Field(default_factory=ModelConfig)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    #: the ``--set`` overrides applied on top of the YAML (kept so a fallback recipe gets them too)
    overrides: list[str] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← YAML file (``extends: other.yaml`` supported) ← ``section.key=value`` overrides."""
    values: dict[str, Any] = {}
    origin: dict[tuple, str] = {}
    if path is not None:
        for layer, where in _yaml_chain(Path(path)):
            _deep_merge(values, layer, origin, where, ())
    for item in overrides or []:
        key, value = _parse_override(item)
        _deep_merge(values, _nest(key, value), origin, "--set", ())
    values["overrides"] = list(overrides or [])
    try:
        return Config.model_validate(values)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(err, values, origin) for err in exc.errors())) from None


def _yaml_chain(path: Path) -> list[tuple[dict[str, Any], str]]:
    if not path.exists():
        raise FileNotFoundError(f"config file {path} not found (see configs/ for the shipped ones)")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level, got {type(values).__name__}")
    chain = []
    parent = values.pop("extends", None)
    if parent:
        chain = _yaml_chain((path.parent / parent) if not Path(parent).is_absolute() else Path(parent))
    return chain + [(values, str(path))]


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r}: expected section.key=value, e.g. training.learning_rate=3e-5")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def _nest(key: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _deep_merge(into: dict, layer: dict, origin: dict, where: str, prefix: tuple) -> None:
    for key, value in layer.items():
        path = prefix + (key,)
        if isinstance(value, dict) and isinstance(into.get(key), dict) and key != "random_init":
            _deep_merge(into[key], value, origin, where, path)
        else:
            into[key] = value
            origin[path] = where
            if isinstance(value, dict):
                for sub in value:
                    origin[path + (sub,)] = where


_EXPECTED = {"float_parsing": "a number", "float_type": "a number", "int_parsing": "a whole number",
             "int_type": "a whole number", "int_from_float": "a whole number", "bool_parsing": "true or false",
             "bool_type": "true or false", "string_type": "a string", "list_type": "a list, e.g. [a.jsonl, b.jsonl]",
             "dict_type": "a mapping", "model_type": "a mapping of keys"}


def _describe(err: dict, values: dict, origin: dict) -> str:
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc)
    value = err.get("input")
    where = next((origin[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origin), "defaults")
    kind = err["type"]
    if kind == "extra_forbidden":
        section = Config
        for part in loc[:-1]:
            field = section.model_fields.get(part)
            section = field.annotation if field is not None and isinstance(field.annotation, type) else None
            if section is None or not issubclass(section, BaseModel):
                break
        names = list(section.model_fields) if section is not None and isinstance(section, type) else []
        near = difflib.get_close_matches(loc[-1], names, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"expected one of {', '.join(names)}"
        return f"{key} = {value!r} (from {where}): unknown key; {hint}"
    expected = ("expected " + _EXPECTED[kind]) if kind in _EXPECTED else err["msg"].replace("Input should be", "expected").replace("Input", "the value")
    return f"{key} = {value!r} (from {where}): {expected}"

"""Model stage: one encoder shared by an entity tagger and a relation classifier.

:class:`JointModel` runs the encoder once per window. The token head scores
BIO tags on each word's first subword; :func:`viterbi` decodes only valid BIO
sequences. The relation head scores candidate (head, tail) entity pairs in one
sentence from mean-pooled span vectors, the text between them and the two
entity types; classes whose type pair the scheme forbids are masked out.

Saved as one directory (see :func:`save` / :func:`load`)::

    model.safetensors   all weights (encoder + heads)
    encoder/            encoder config.json (no weights)
    tokenizer files     whatever the tokenizer needs to reload
    vnpol.json          scheme version, label maps, preprocessing, encoder name, head sizes, metrics
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from . import schema
from .config import PRECISIONS
from .encoding import LABELS, Preprocessing

REL_LABELS = schema.relation_labels()
REL2ID = {l: i for i, l in enumerate(REL_LABELS)}
TYPE2ID = {t: i for i, t in enumerate(schema.ENTITY_TYPES)}
WEIGHTS_FILE = "model.safetensors"
META_FILE = "vnpol.json"
ENCODER_DIR = "encoder"
#: Files a model directory must never contain: pickled weights can run code when loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

# allowed[head_type, tail_type, relation] — NONE always allowed
_ALLOWED = torch.zeros(len(schema.ENTITY_TYPES), len(schema.ENTITY_TYPES), len(REL_LABELS), dtype=torch.bool)
_ALLOWED[:, :, 0] = True
for _rel, _pairs in schema.RELATION_SIGNATURES.items():
    for _h, _t in _pairs:
        _ALLOWED[TYPE2ID[_h], TYPE2ID[_t], REL2ID[_rel]] = True


class JointModel(nn.Module):
    def __init__(self, encoder: nn.Module, *, dropout: float = 0.1, relation_hidden: int = 256, type_dim: int = 32):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.tagger = nn.Linear(hidden, len(LABELS))
        self.type_embedding = nn.Embedding(len(schema.ENTITY_TYPES), type_dim)
        self.order_embedding = nn.Embedding(2, type_dim)
        self.relation = nn.Sequential(
            nn.Linear(4 * hidden + 3 * type_dim, relation_hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(relation_hidden, len(REL_LABELS)),
        )
        self.head_sizes = {"dropout": dropout, "relation_hidden": relation_hidden, "type_dim": type_dim}

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def tag_logits(self, hidden: torch.Tensor, word_index: torch.Tensor) -> torch.Tensor:
        """Tag scores for words; ``word_index`` is (N, 2): (window row, first-subword position)."""
        vectors = hidden[word_index[:, 0], word_index[:, 1]]
        return self.tagger(self.dropout(vectors))

    def relation_logits(self, hidden: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Relation scores for pairs: (M, 8) rows of
        (window row, head start, head end, tail start, tail end, head type, tail type, unused)
        with subword positions (end exclusive)."""
        if pairs.numel() == 0:
            return hidden.new_zeros((0, len(REL_LABELS)))
        hidden = self.dropout(hidden)
        zero = hidden.new_zeros(hidden.size(0), 1, hidden.size(2))
        cums = torch.cat([zero, hidden.cumsum(dim=1)], dim=1)  # (B, T+1, H)
        row = pairs[:, 0]

        def pool(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            width = (b - a).clamp(min=1).unsqueeze(-1).to(hidden.dtype)
            return (cums[row, b] - cums[row, a]) / width

        hs, he, ts, te = pairs[:, 1], pairs[:, 2], pairs[:, 3], pairs[:, 4]
        head, tail = pool(hs, he), pool(ts, te)
        head_first = (hs < ts).long()
        gap_start = torch.where(head_first.bool(), he, te)
        gap_end = torch.where(head_first.bool(), ts, hs).clamp(min=0)
        gap_end = torch.maximum(gap_end, gap_start)
        between = pool(gap_start, gap_end)
        features = torch.cat(
            [head, tail, head * tail, between,
             self.type_embedding(pairs[:, 5]), self.type_embedding(pairs[:, 6]), self.order_embedding(head_first)],
            dim=-1,
        )
        logits = self.relation(features)
        allowed = _ALLOWED.to(logits.device)[pairs[:, 5], pairs[:, 6]]
        return logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)


# --------------------------------------------------------------------------- decoding


def _transition_mask() -> np.ndarray:
    """mask[i, j] = 0 when tag j may follow tag i, -inf otherwise (strict IOB2)."""
    n = len(LABELS)
    mask = np.zeros((n, n), dtype=np.float32)
    for j, lj in enumerate(LABELS):
        if lj.startswith("I-"):
            for i, li in enumerate(LABELS):
                if li[2:] != lj[2:] or li == "O":
                    mask[i, j] = -np.inf
    return mask


_TRANSITIONS = _transition_mask()
_TRANSITIONS_TO_FROM = np.ascontiguousarray(_TRANSITIONS.T)
_START = np.array([-np.inf if l.startswith("I-") else 0.0 for l in LABELS], dtype=np.float32)


def viterbi(log_probs: np.ndarray) -> list[int]:
    """Best tag sequence for (n_words, n_labels) log-probabilities under strict IOB2."""
    return viterbi_batch([log_probs])[0]


def viterbi_batch(sequences: Sequence[np.ndarray]) -> list[list[int]]:
    """:func:`viterbi` for several sequences at once: one numpy step per position of the longest.

    Decoding a window sentence by sentence, word by word, cost more than the rest of
    prediction outside the encoder; stepping all its sentences together does not.
    """
    lengths = [len(x) for x in sequences]
    paths: list[list[int]] = [[] for _ in sequences]
    live = [k for k, n in enumerate(lengths) if n]
    if not live:
        return paths
    n_max, n_labels = max(lengths), len(LABELS)
    lp = np.zeros((len(live), n_max, n_labels), dtype=np.float32)
    for r, k in enumerate(live):
        lp[r, : lengths[k]] = sequences[k]
    ends = np.array([lengths[k] for k in live])
    score = lp[:, 0] + _START
    back = np.zeros((len(live), n_max, n_labels), dtype=np.int64)
    for i in range(1, n_max):
        total = score[:, None, :] + _TRANSITIONS_TO_FROM  # (sequences, to, from): reduce the contiguous axis
        best = total.argmax(axis=2)
        back[:, i] = best
        step = np.take_along_axis(total, best[:, :, None], 2)[:, :, 0] + lp[:, i]
        score = np.where((i < ends)[:, None], step, score)  # finished sequences keep their final score
    last = score.argmax(axis=1).tolist()
    for r, k in enumerate(live):
        path = [last[r]]
        rows = back[r]
        for i in range(lengths[k] - 1, 0, -1):
            path.append(int(rows[i, path[-1]]))
        paths[k] = path[::-1]
    return paths


def spans_from_tags(tags: list[int]) -> list[tuple[int, int, str]]:
    """(start, end, type) word spans from a valid IOB2 sequence of label ids."""
    spans, start, etype = [], None, None
    for i, t in enumerate(tags + [0]):
        label = LABELS[t]
        if start is not None and not label.startswith("I-"):
            spans.append((start, i, etype))
            start = None
        if label.startswith("B-"):
            start, etype = i, label[2:]
    return spans


# --------------------------------------------------------------------------- save / load


def _load_encoder_config(path: Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(path), trust_remote_code=False)


def check_model_dir(model_dir: str | Path) -> dict[str, Any]:
    """Refuse directories that are not vnpol models, hold pickles or use another scheme."""
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
    if meta.get("scheme") != schema.SCHEME_VERSION or meta.get("labels") != LABELS or meta.get("relation_labels") != REL_LABELS:
        raise ValueError(f"{model_dir}: model uses label scheme {meta.get('scheme')!r} but this vnpol uses {schema.SCHEME_VERSION!r} "
                         "(or the label maps differ); retrain the model or install the vnpol version that made it")
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
    meta = {
        "scheme": schema.SCHEME_VERSION,
        "labels": LABELS,
        "relation_labels": REL_LABELS,
        "entity_types": list(schema.ENTITY_TYPES),
        "preprocessing": prep.to_dict(),
        "encoder": encoder_name,
        "head": model.head_sizes,
    }
    meta.update(extra or {})
    (model_dir / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")


def load(model_dir: str | Path, device: str | torch.device = "cpu"):
    """Load (model, tokenizer, preprocessing, meta) from a directory written by :func:`save`."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    model_dir = Path(model_dir)
    meta = check_model_dir(model_dir)
    config = _load_encoder_config(model_dir / ENCODER_DIR)
    encoder = AutoModel.from_config(config, add_pooling_layer=False) if config.model_type in ("bert", "roberta", "xlm-roberta") else AutoModel.from_config(config)
    model = JointModel(encoder, **meta["head"])
    state = load_file(str(model_dir / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise ValueError(f"{model_dir}: weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    prep = Preprocessing(**meta["preprocessing"])
    return model, tokenizer, prep, meta


def build_encoder(name_or_path: str, *, random_init_config: dict[str, Any] | None = None,
                  attention_dropout: float | None = None):
    """Load a pre-trained encoder (hub id, local dir, or ``embedded:...``) or build a random one.

    ``attention_dropout`` replaces the encoder config's ``attention_probs_dropout_prob`` (None keeps it).
    """
    from transformers import AutoConfig, AutoModel, RobertaConfig, RobertaModel
    from transformers.utils import logging as hf_logging

    if random_init_config is not None:
        config = RobertaConfig(**random_init_config)
    else:
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=False)
    if attention_dropout is not None:
        config.attention_probs_dropout_prob = attention_dropout
    if random_init_config is not None:
        return RobertaModel(config, add_pooling_layer=False)
    kwargs = {"add_pooling_layer": False} if config.model_type in ("bert", "roberta", "xlm-roberta") else {}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the unused pooler's weights are reported as unexpected: expected here
    try:
        return AutoModel.from_pretrained(name_or_path, config=config, trust_remote_code=False, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)


def freeze_embeddings(model: "JointModel") -> None:
    """Keep the encoder's input embedding matrix fixed (no gradients, no optimiser state)."""
    for p in model.encoder.get_input_embeddings().parameters():
        p.requires_grad_(False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- numeric precision


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX tiles (Intel Sapphire Rapids and later), where oneDNN runs bf16 matmuls natively.

    Measured on such a CPU (2 cores, multilingual-e5-small, 16 windows of 230 subwords):
    forward 1.84 s in fp32 against 0.75 s under bf16 autocast, hidden states at cosine 0.99998.
    CPUs with only AVX-512 BF16 or none at all gain little or lose, so they stay in fp32.
    """
    try:
        return bool(torch.cpu._is_amx_tile_supported()) and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: fp16 on CUDA, bf16 autocast on CPUs with AMX, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"

"""Model stage: one encoder shared by an entity tagger and a relation classifier.

:class:`JointModel` runs the encoder once per window. The token head scores IOB2 tags
on each word's first subword (:mod:`vnpol.decoding` finds the best valid sequence); with
``crf`` it is a linear-chain CRF, trained on whole sequences with learned transition scores.
The relation head scores candidate (head, tail) entity pairs of one sentence from the
two mean-pooled span vectors, their product, the text between them, the two entity
types, their order and — with ``relation_features`` — what stands between them in a
list (distance, entities and separators between, whether each is the other's nearest
mention of its type; :func:`vnpol.encoding.pair_features`). Classes whose type pair the
scheme forbids are masked out. Saving and loading are in :mod:`vnpol.saving`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .config import PRECISIONS
from .decoding import iob2_constraints
from .encoding import FEATURE_SIZES
from .schema import POLITICAL, Scheme

#: columns of a pair row: window row, head start, head end, tail start, tail end, head type, tail type, label,
#: then one column per list feature
PAIR_BASE_COLUMNS = 8


def allowed_mask(scheme: Scheme) -> torch.Tensor:
    """allowed[head type, tail type, relation class]; ``NONE`` (class 0) always allowed."""
    types = {t: i for i, t in enumerate(scheme.entity_types)}
    rels = scheme.relation_labels()
    mask = torch.zeros(len(types), len(types), len(rels), dtype=torch.bool)
    mask[:, :, 0] = True
    for k, rel in enumerate(rels[1:], 1):
        for h, t in scheme.signatures[rel]:
            mask[types[h], types[t], k] = True
    return mask


class JointModel(nn.Module):
    def __init__(self, encoder: nn.Module, scheme: Scheme = POLITICAL, *, dropout: float = 0.1, relation_hidden: int = 256,
                 type_dim: int = 32, relation_features: bool = False, crf: bool = False):
        super().__init__()
        self.encoder = encoder
        self.scheme = scheme
        hidden = encoder.config.hidden_size
        n_rel = len(scheme.relation_labels())
        self.dropout = nn.Dropout(dropout)
        self.tagger = nn.Linear(hidden, len(scheme.bio_labels()))
        self.type_embedding = nn.Embedding(len(scheme.entity_types), type_dim)
        self.order_embedding = nn.Embedding(2, type_dim)
        n_feat = len(FEATURE_SIZES) if relation_features else 0
        self.feature_embeddings = nn.ModuleList(nn.Embedding(n, type_dim) for n in FEATURE_SIZES[:n_feat])
        self.relation = nn.Sequential(
            nn.Linear(4 * hidden + (3 + n_feat) * type_dim, relation_hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(relation_hidden, n_rel),
        )
        self.register_buffer("allowed", allowed_mask(scheme), persistent=False)
        self.crf = crf
        if crf:
            n_tags = len(scheme.bio_labels())
            self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))  # (from, to), learned
            self.start_transitions = nn.Parameter(torch.zeros(n_tags))
            # strict IOB2 on top, as in decoding; -1e4 rather than -inf keeps logsumexp finite
            from_to, start = (torch.from_numpy(np.maximum(a, -1e4)) for a in iob2_constraints(scheme.bio_labels()))
            self.register_buffer("transition_mask", from_to, persistent=False)
            self.register_buffer("start_mask", start, persistent=False)
        self.head_sizes = {"dropout": dropout, "relation_hidden": relation_hidden, "type_dim": type_dim,
                           "relation_features": relation_features, "crf": crf}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor,
                word_labels: torch.Tensor, pairs: torch.Tensor, relation_weight: float = 1.0) -> tuple[torch.Tensor, ...]:
        """The training loss of one batch (:func:`vnpol.batches.collate`): (joint, tagger, relation) losses.

        Training goes through ``forward`` so that what wraps it (DistributedDataParallel, autocast) applies.
        """
        hidden = self.encode(input_ids, attention_mask)
        tag_loss = self.tag_loss(self.tag_logits(hidden, word_index).float(), word_index, word_labels)
        if pairs.numel():
            rel_loss = nn.functional.cross_entropy(self.relation_logits(hidden, pairs).float(), pairs[:, 7])
        else:
            rel_loss = tag_loss.new_zeros(())
        return tag_loss + relation_weight * rel_loss, tag_loss, rel_loss

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def tag_logits(self, hidden: torch.Tensor, word_index: torch.Tensor) -> torch.Tensor:
        """Tag scores for words; ``word_index`` is (N, 2): (window row, first-subword position)."""
        vectors = hidden[word_index[:, 0], word_index[:, 1]]
        return self.tagger(self.dropout(vectors))

    def tag_loss(self, logits: torch.Tensor, word_index: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean loss per word: cross-entropy per word, or with ``crf`` the sequences' CRF negative log-likelihood.

        A sequence is one window's own words (``word_index[:, 0]``, ascending, as :func:`vnpol.batches.collate` writes).
        """
        if not self.crf:
            return nn.functional.cross_entropy(logits, labels)
        return crf_nll(logits, labels, word_index[:, 0], self.transitions + self.transition_mask,
                       self.start_transitions + self.start_mask)

    def crf_scores(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The learned (from, to) transition and start scores for :func:`vnpol.decoding.viterbi_batch`; None without CRF."""
        if not self.crf:
            return None
        return self.transitions.detach().float().cpu().numpy(), self.start_transitions.detach().float().cpu().numpy()

    def relation_logits(self, hidden: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Relation scores for pairs: rows of ``PAIR_BASE_COLUMNS`` (window row, head start, head end,
        tail start, tail end, head type, tail type, label) plus the list features, subword positions end-exclusive."""
        if pairs.numel() == 0:
            return hidden.new_zeros((0, self.relation[-1].out_features))
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
        parts = [head, tail, head * tail, between,
                 self.type_embedding(pairs[:, 5]), self.type_embedding(pairs[:, 6]), self.order_embedding(head_first)]
        parts += [emb(pairs[:, PAIR_BASE_COLUMNS + k]) for k, emb in enumerate(self.feature_embeddings)]
        logits = self.relation(torch.cat(parts, dim=-1))
        allowed = self.allowed[pairs[:, 5], pairs[:, 6]]
        return logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)


def crf_nll(emissions: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, transitions: torch.Tensor,
            start: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the gold tag sequences under a linear-chain CRF, per word.

    ``emissions`` (words, tags) and ``labels`` (words,) run through all sequences one after
    the other; ``rows`` (words,) gives each word's sequence, ascending. ``transitions`` is
    (from, to), ``start`` (tags,). Written here because the CRF packages on the index
    (pytorch-crf, torchcrf) take no transition constraints and want padded batches, and the
    forward algorithm is a dozen lines.
    """
    if not len(rows):
        return emissions.sum() * 0.0
    n_seq = int(rows.max()) + 1
    lengths = torch.bincount(rows, minlength=n_seq)
    pos = torch.arange(len(rows), device=rows.device) - (torch.cumsum(lengths, 0) - lengths)[rows]
    width, n_tags = int(lengths.max()), emissions.size(1)
    em = emissions.new_zeros(n_seq, width, n_tags).index_put((rows, pos), emissions)
    tags = labels.new_zeros(n_seq, width).index_put((rows, pos), labels)
    inside = torch.arange(width, device=rows.device)[None] < lengths[:, None]  # (sequences, width)
    live = lengths > 0
    gold = emissions.gather(1, labels[:, None]).sum() + start[tags[live, 0]].sum()
    gold = gold + (transitions[tags[:, :-1], tags[:, 1:]] * inside[:, 1:]).sum()
    alpha = start + em[:, 0]
    for t in range(1, width):
        step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + em[:, t]
        alpha = torch.where(inside[:, t, None], step, alpha)
    return (torch.logsumexp(alpha[live], dim=1).sum() - gold) / len(rows)


class EncoderDepthError(RuntimeError):
    """``model.encoder_layers`` asks for more layers than the pre-trained encoder has."""


def build_encoder(name_or_path: str, *, random_init_config: dict[str, Any] | None = None,
                  attention_dropout: float | None = None, layers: int = 0):
    """Load a pre-trained encoder (hub id, local dir, or ``embedded:...``) or build a random one.

    ``attention_dropout`` replaces the encoder config's ``attention_probs_dropout_prob`` (None keeps it).
    ``layers`` > 0 keeps only the bottom ``layers`` transformer layers (their pre-trained weights; the
    saved config records the new depth, so the model reloads as it was trained).
    """
    from transformers import AutoConfig, AutoModel, RobertaConfig, RobertaModel
    from transformers.utils import logging as hf_logging

    if random_init_config is not None:
        config = RobertaConfig(**random_init_config)
    else:
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=False)
    if attention_dropout is not None:
        config.attention_probs_dropout_prob = attention_dropout
    if layers:
        if layers > config.num_hidden_layers:
            raise EncoderDepthError(f"model.encoder_layers: {layers} is more than the encoder's {config.num_hidden_layers} layers")
        config.num_hidden_layers = layers
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


def cpu_trains_faster_in_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX, where training under bf16 autocast is faster than fp32.

    Measured on 2 cores with AVX-512 BF16 and no AMX (e5-small, a batch of 4 × 256, forward and
    backward): 1.42 s in fp32 against 1.04 s under bf16 autocast; an epoch of configs/offline.yaml
    105 s against 137 s. Inference keeps :func:`cpu_has_fast_bf16`.
    """
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
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

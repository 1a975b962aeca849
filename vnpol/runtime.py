"""Encoder runtimes for inference: PyTorch (the default) or ONNX Runtime, in fp32 or int8.

With ``backend="onnx"`` the encoder (the only heavy part: 90 % of the time of an article) is
exported once to ONNX, its graph fused by ONNX Runtime's transformer optimizer (attention,
GELU, skip + layer norm as single kernels), saved in the vnpol cache keyed by the weights,
and run by ONNX Runtime. The tagger and relation heads stay in PyTorch, so decoding, offsets
and thresholds are exactly those of the PyTorch backend.

``precision="int8"`` quantises the attention blocks' weights to int8 (dynamic, per output channel);
the feed-forward layers, embeddings and heads stay fp32. Chosen on the development split with the
``make demo`` model (entity / relation F1, fp32 0.961 / 0.916): attention only 0.961 / 0.913;
attention and the feed-forward input projections 0.958 / 0.904, which misses the "within 0.5 point"
bar. ``scripts/probe_int8.py`` found why the rest cannot be quantised this way: almost all of the loss
comes from the feed-forward output projections (activations after GELU have outlier dimensions that
one dynamic scale per tensor cannot cover).

Needs the ``onnx`` extra: ``pip install 'vnpol[onnx]'``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

BACKENDS = ("torch", "onnx")
ONNX_PRECISIONS = ("auto", "fp32", "int8")
#: bump when the export recipe changes, so cached graphs are rebuilt
EXPORT_VERSION = 1
#: an exported graph must reproduce PyTorch's hidden states to this (fp32), or the unfused graph is used
MAX_EXPORT_ERROR = 1e-3


class OnnxEncoder:
    """The encoder as an ONNX Runtime session: ``encoder(ids, mask)`` returns the hidden states as a tensor."""

    def __init__(self, path: str | Path, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feed = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}
        return torch.from_numpy(self.session.run(None, feed)[0])


def onnx_encoder(encoder: torch.nn.Module, *, precision: str = "fp32", cache_dir: str | Path | None = None,
                 threads: int = 0, say=print) -> OnnxEncoder:
    """``encoder`` exported (or read back from the cache) and opened in ONNX Runtime."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"backend='onnx' needs ONNX Runtime ({exc}); install it with: pip install 'vnpol[onnx]'") from exc
    if precision not in ("fp32", "int8"):
        raise ValueError(f"backend 'onnx' runs in precision 'fp32' or 'int8', got {precision!r}")
    from .encoders import cache_dir as vnpol_cache

    root = Path(cache_dir) if cache_dir else vnpol_cache() / "onnx"
    target = root / f"encoder-{export_key(encoder)}" / f"{precision}.onnx"
    if not target.exists():
        say(f"vnpol: exporting the encoder to ONNX ({precision}) once, into {target.parent}")
        build_onnx(encoder, target, precision)
    return OnnxEncoder(target, threads)


def export_key(encoder: torch.nn.Module) -> str:
    """A digest of the encoder's weights and config and of the export tools' versions."""
    import onnxruntime

    digest = hashlib.sha256(f"{EXPORT_VERSION}|{torch.__version__}|{onnxruntime.__version__}".encode())
    digest.update(encoder.config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def build_onnx(encoder: torch.nn.Module, target: Path, precision: str) -> None:
    """Export, fuse (checked against PyTorch) and, for int8, quantise; written whole, then renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".staging-") as tmp:
        plain = Path(tmp) / "plain.onnx"
        export_plain(encoder, plain)
        fused = Path(tmp) / "fused.onnx"
        graph = fused if fuse(plain, fused, encoder.config) and _matches(encoder, fused) else plain
        if precision == "int8":
            quantised = Path(tmp) / "int8.onnx"
            quantise(graph, quantised, encoder.config.intermediate_size)
            graph = quantised
        staged = Path(tmp) / target.name
        shutil.move(str(graph), staged)
        os.replace(staged, target)


class _LastHidden(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def export_plain(encoder: torch.nn.Module, path: Path) -> None:
    """TorchScript-based export with eager attention (the pattern ONNX Runtime's fuser recognises)."""
    previous = encoder.config._attn_implementation
    encoder.set_attn_implementation("eager")
    ids = torch.full((2, 8), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
            "hidden": {0: "batch", 1: "length"}}
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_LastHidden(encoder).eval(), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                              output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)
    finally:
        encoder.set_attn_implementation(previous)


def fuse(src: Path, dst: Path, config) -> bool:
    """ONNX Runtime's transformer optimizer (BERT-family fusions); False when it cannot run."""
    from onnxruntime.transformers import optimizer

    try:
        optimised = optimizer.optimize_model(str(src), model_type="bert", num_heads=config.num_attention_heads,
                                             hidden_size=config.hidden_size, opt_level=0)
    except Exception:  # noqa: BLE001 - an unknown architecture keeps the plain graph, which is correct
        return False
    optimised.save_model_to_file(str(dst))
    return True


def _matches(encoder: torch.nn.Module, path: Path) -> bool:
    """The fused graph reproduces the encoder on a padded batch."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, min(encoder.config.vocab_size, 1000), (3, 40), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    mask[2, 9:] = 0
    with torch.inference_mode():
        ref = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    out = OnnxEncoder(path, threads=1)(ids, mask)
    keep = mask.bool()
    return float((ref[keep] - out[keep]).abs().max()) <= MAX_EXPORT_ERROR


def quantise(src: Path, dst: Path, intermediate_size: int) -> None:
    """Dynamic int8 weights, per output channel, for the attention blocks (query, key, value and output
    projections); the feed-forward MatMuls (a weight with ``intermediate_size`` rows or columns) stay fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src)).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer if len(t.dims) == 2}
    keep_fp32 = [n.name for n in graph.node if n.op_type == "MatMul"
                 and any(intermediate_size in shapes[i] for i in n.input if i in shapes)]
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=keep_fp32,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops have no inferred types

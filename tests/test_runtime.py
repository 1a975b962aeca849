"""The encoder on ONNX Runtime (``backend="onnx"``), int8, length-grouped batches and layer-dropped encoders.

Each backend must tag exactly as PyTorch does: same spans, same types, same relations.
"""
from __future__ import annotations

import pytest

from vnpol.corpus import Document

pytest.importorskip("onnxruntime")

TEXTS = [
    "Sáng 12/3, Thủ tướng Phạm Minh Chính làm việc với Tỉnh ủy Nghệ An.",
    "Chủ tịch Quốc hội Vương Đình Huệ tiếp Đoàn đại biểu Quốc hội Lào tại Hà Nội.",
]


def triples(doc: Document) -> tuple[list, list]:
    ents = {e.id: e for e in doc.entities}
    spans = [(e.start, e.end, e.type) for e in doc.entities]
    rels = sorted((ents[r.head].start, ents[r.tail].start, r.type) for r in doc.relations)
    return spans, rels


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VNPOL_CACHE", str(tmp_path))
    return tmp_path / "onnx"


def test_onnx_backend_tags_exactly_like_torch(tiny_model, seed_docs, onnx_cache) -> None:
    from vnpol.predict import load

    torch_ex = load(tiny_model[0], device="cpu")
    onnx_ex = load(tiny_model[0], backend="onnx", say=lambda *_: None)
    docs = [Document(d.id, d.text) for d in seed_docs[3:]] + [Document(str(i), t) for i, t in enumerate(TEXTS)]
    expected = [triples(d) for d in torch_ex.iter_predict(docs)]
    got = [triples(d) for d in onnx_ex.iter_predict(docs)]
    assert got == expected
    assert sum(len(s) for s, _ in expected) > 0
    assert onnx_ex.precision == "fp32" and list(onnx_cache.glob("encoder-*/fp32.onnx"))


def test_the_export_is_cached_by_the_weights(tiny_model, onnx_cache) -> None:
    import torch

    from vnpol.runtime import onnx_encoder
    from vnpol.saving import load_model

    model = load_model(tiny_model[0])[0]
    said: list[str] = []
    first = onnx_encoder(model.encoder, say=said.append)
    second = onnx_encoder(model.encoder, say=said.append)
    assert first.path == second.path and len(said) == 1  # exported once
    with torch.no_grad():
        model.encoder.get_input_embeddings().weight[7] += 1.0
    assert onnx_encoder(model.encoder, say=said.append).path != first.path  # new weights, new graph


def test_int8_quantises_the_attention_blocks_only(tiny_model, onnx_cache) -> None:
    import onnx

    from vnpol.runtime import onnx_encoder
    from vnpol.saving import load_model

    model = load_model(tiny_model[0])[0]
    graph = onnx.load(str(onnx_encoder(model.encoder, precision="int8", say=lambda *_: None).path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QAttention") == model.encoder.config.num_hidden_layers
    weights = {t.name: tuple(t.dims) for t in graph.initializer}
    inner = model.encoder.config.intermediate_size
    float_ffn = [n for n in graph.node if n.op_type == "MatMul" and any(inner in weights.get(i, ()) for i in n.input)]
    assert len(float_ffn) == 2 * model.encoder.config.num_hidden_layers  # both feed-forward projections stay fp32


def test_int8_tags_with_onnx_runtime(tiny_model, onnx_cache) -> None:
    from vnpol.predict import load

    ex = load(tiny_model[0], backend="onnx", precision="int8", say=lambda *_: None)
    doc = ex.predict(TEXTS[0])
    assert ex.precision == "int8"
    assert all(doc.text[e.start:e.end] == e.text for e in doc.entities)


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "tensorrt"}, "backend must be one of torch, onnx, got 'tensorrt'"),
    ({"precision": "int8"}, "precision 'int8' needs backend='onnx'"),
    ({"backend": "onnx", "precision": "bf16"}, "backend 'onnx' runs in precision auto, fp32, int8, got 'bf16'"),
])
def test_backend_and_precision_errors_say_what_is_allowed(tiny_model, kwargs, message, onnx_cache) -> None:
    from vnpol.predict import load

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(tiny_model[0], device="cpu", **kwargs)


def test_length_grouped_batches_give_the_same_documents(extractor, seed_docs) -> None:
    docs = [Document(d.id, d.text) for d in seed_docs] + [Document(str(i), t) for i, t in enumerate(TEXTS)]
    extractor.group_batches = 1
    try:
        in_order = list(extractor.iter_predict(docs, batch_size=2))
    finally:
        extractor.group_batches = 8
    grouped = list(extractor.iter_predict(docs, batch_size=2))
    assert [d.id for d in grouped] == [d.id for d in docs]
    assert [triples(d) for d in grouped] == [triples(d) for d in in_order]
    for doc in grouped:  # ids follow the text, whatever order the windows ran in
        assert [e.id for e in doc.entities] == [f"T{n}" for n in range(1, len(doc.entities) + 1)]
        assert [e.start for e in doc.entities] == sorted(e.start for e in doc.entities)


def test_encoder_layers_keeps_the_bottom_layers_and_reloads(seed_split, tmp_path) -> None:
    from conftest import tiny_config

    from vnpol.predict import load
    from vnpol.training import train

    train(tiny_config(seed_split, **{"model.encoder_layers": 1, "training.epochs": 1}), tmp_path / "m", say=lambda *_: None)
    ex = load(tmp_path / "m", device="cpu")
    assert ex.model.encoder.config.num_hidden_layers == 1
    assert len(ex.model.encoder.encoder.layer) == 1


def test_encoder_layers_beyond_the_encoder_is_an_error(seed_split, tmp_path) -> None:
    from conftest import tiny_config

    from vnpol.model import EncoderDepthError
    from vnpol.training import train

    with pytest.raises(EncoderDepthError, match="model.encoder_layers: 3 is more than the encoder's 2 layers"):
        train(tiny_config(seed_split, **{"model.encoder_layers": 3}), tmp_path / "m", say=lambda *_: None)


def test_vnpol_predict_backend_onnx_writes_the_torch_records(tiny_model, tmp_path, onnx_cache) -> None:
    import json

    from vnpol.cli import main

    article = tmp_path / "a.txt"
    article.write_text(TEXTS[0] + "\n" + TEXTS[1], encoding="utf-8")
    outputs = []
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.jsonl"
        assert main(["predict", "--model", str(tiny_model[0]), str(article), "-o", str(out), "--device", "cpu",
                     "--backend", backend, "--quiet"]) == 0
        outputs.append([json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()])
    strip = lambda recs: [[(e["start"], e["end"], e["type"]) for e in r["entities"]] for r in recs]  # noqa: E731
    assert strip(outputs[1]) == strip(outputs[0]) and len(outputs[0]) == 1

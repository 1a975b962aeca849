"""Training stage end to end on the tiny config: train, save, reload, evaluate, resume, refuse bad data."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, tiny_config
from vnpol.corpus import CorpusError
from vnpol.training import EncoderLoadError, train


def test_tiny_training_writes_a_complete_model_directory(tiny_model):
    out, result = tiny_model
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "vnpol.json", "tokenizer.json", "encoder", "metrics.jsonl", "curves.png",
            "training_config.json", "dev_evaluation.md", "test_evaluation.md", "test_evaluation.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    meta = json.loads((out / "vnpol.json").read_text())
    assert meta["encoder"] == "random" and meta["scheme"]["name"] == "vnpol-annotation-v1"
    assert (out / "scheme.yaml").exists() and meta["thresholds"]["chosen_on"] == "development set"
    assert meta["preprocessing"]["max_length"] == 128
    assert set(meta["metrics"]["test"]) == {"entity_f1", "relation_f1", "roles_f1", "relation_given_gold_f1", "word_f1"}
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["loss"] < rows[0]["loss"]  # it learns
    report = (out / "test_evaluation.md").read_text()
    assert "## Relations, given gold entities" in report and "### missed" in report
    assert not out.with_name(out.name + ".work").exists()


def test_training_refuses_a_broken_corpus(tmp_path, seed_split):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": "Bộ Chính trị", "entities": [{"id": "T1", "start": 0, "end": 3, "type": "ORG", "text": "Bộ C"}]}\n',
                   encoding="utf-8")
    cfg = tiny_config(seed_split, **{"data.train": f"[{bad}]"})
    with pytest.raises(CorpusError, match=r"bad.jsonl:1 \[doc x\] @char 0: entity T1: surface 'Bộ C'"):
        train(cfg, tmp_path / "m", say=lambda *_: None)
    assert not (tmp_path / "m").exists()


def test_unloadable_encoder_falls_back_and_says_so(tmp_path, seed_split):
    fallback = tmp_path / "fallback.yaml"
    fallback.write_text(f"extends: {ROOT / 'configs' / 'tiny.yaml'}\ntraining: {{epochs: 1}}\n", encoding="utf-8")
    said = []
    cfg = tiny_config(seed_split, **{"model.encoder": str(tmp_path / "no-such-encoder"), "model.fallback_config": str(fallback)})
    result = train(cfg, tmp_path / "m", say=said.append)
    assert any("is not available offline" in s and str(fallback) in s for s in said)
    assert result["encoder"] == "random"
    assert json.loads((tmp_path / "m" / "vnpol.json").read_text())["encoder"] == "random"

    cfg = tiny_config(seed_split, **{"model.encoder": str(tmp_path / "no-such-encoder"), "model.fallback_config": "null"})
    with pytest.raises(EncoderLoadError, match="cannot be loaded"):
        train(cfg, tmp_path / "m2", say=lambda *_: None)


def _run_train(out: Path, split: Path, epochs: int, *extra: str) -> subprocess.Popen:
    args = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", str(ROOT / "configs" / "tiny.yaml"), "--output", str(out),
            "--set", f"data.train=[{split / 'train.jsonl'}]", "--set", f"data.dev=[{split / 'dev.jsonl'}]",
            "--set", f"data.test=[{split / 'test.jsonl'}]", "--set", f"training.epochs={epochs}", "--set", "training.num_threads=1", *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def test_kill_minus_9_then_resume_reaches_the_same_metrics(tmp_path, seed_split):
    full = _run_train(tmp_path / "full", seed_split, 3)
    assert full.wait(timeout=600) == 0, full.stdout.read().decode()

    out = tmp_path / "killed"
    proc = _run_train(out, seed_split, 3)
    ckpt = out.with_name("killed.work") / "checkpoints" / "epoch-2" / "trainer_state.json"
    deadline = time.time() + 600
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # whatever moment the kill hit, the model directory is complete or absent, never half-written
    if out.exists():
        assert (out / "model.safetensors").exists() and (out / "vnpol.json").exists()
    resumed = _run_train(out, seed_split, 3, "--resume")
    log = resumed.communicate(timeout=600)[0].decode()
    assert resumed.returncode == 0, log
    assert "resumed from" in log
    metrics = lambda d: json.loads((d / "vnpol.json").read_text())["metrics"]
    a, b = metrics(tmp_path / "full"), metrics(out)
    assert (a["dev"], a["test"], a["best_epoch"]) == (b["dev"], b["test"], b["best_epoch"])


def test_phobert_style_slow_tokenizer_with_word_segmentation(tmp_path, seed_split, seed_docs, drill_doc):
    """PhoBERT's path (local directory, slow BPE tokenizer without offsets, underthesea words) on a tiny model built here."""
    from transformers import PhobertTokenizer, RobertaConfig, RobertaModel

    from vnpol.predict import load

    enc_dir = tmp_path / "phobert-tiny"
    enc_dir.mkdir()
    chars = sorted({c for d in seed_docs for c in d.text if not c.isspace()} | {"_"})
    (enc_dir / "vocab.txt").write_text("".join(f"{c} 1\n{c}@@ 1\n" for c in chars), encoding="utf-8")
    (enc_dir / "bpe.codes").write_text("#version: 0.2\n", encoding="utf-8")
    tok = PhobertTokenizer(str(enc_dir / "vocab.txt"), str(enc_dir / "bpe.codes"))
    tok.save_pretrained(str(enc_dir))
    assert not tok.is_fast
    RobertaModel(RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=130, pad_token_id=1),
                 add_pooling_layer=False).save_pretrained(str(enc_dir))
    from vnpol.corpus import Document, write_jsonl

    drill = tmp_path / "drill.jsonl"  # the four hard cases, drilled until known: the slow-tokenizer path must give them back
    write_jsonl([Document(f"d{i}", drill_doc.text, drill_doc.entities, drill_doc.relations) for i in range(30)], drill)
    cfg = tiny_config(seed_split, **{"model.encoder": str(enc_dir), "preprocessing.segmenter": "underthesea", "training.epochs": 12,
                                     "training.learning_rate": "3e-3", "training.head_learning_rate": "3e-3",
                                     "data.train": f"[{drill}]", "data.dev": f"[{drill}]", "data.test": "[]"})
    train(cfg, tmp_path / "m", say=lambda *_: None)
    meta = json.loads((tmp_path / "m" / "vnpol.json").read_text())
    assert meta["encoder"] == str(enc_dir) and meta["preprocessing"]["segmenter"] == "underthesea"
    extractor = load(tmp_path / "m", device="cpu")
    assert type(extractor.tokenizer.hf).__name__ == "PhobertTokenizer"
    doc = extractor.predict(drill_doc.text)
    assert [(e.type, e.start, e.end) for e in doc.entities] == [(e.type, e.start, e.end) for e in drill_doc.entities]


def test_default_config_offline_falls_back_to_the_embedded_encoder(tmp_path, seed_split):
    """What `python scripts/train.py` does on a fresh offline machine: PhoBERT cannot load, e5 takes over."""
    from vnpol.config import load_config

    fallback = tmp_path / "offline-1-epoch.yaml"
    fallback.write_text(f"extends: {ROOT / 'configs' / 'offline-fast.yaml'}\ntraining: {{epochs: 1}}\n", encoding="utf-8")
    cfg = load_config(ROOT / "configs" / "default.yaml", [
        f"data.train=[{seed_split / 'dev.jsonl'}]", "data.dev=[]", f"data.test=[{seed_split / 'test.jsonl'}]",
        "preprocessing.max_length=128"])
    cfg.model.fallback_config = str(fallback)
    said = []
    result = train(cfg, tmp_path / "m", say=said.append)
    assert any("'vinai/phobert-base' is not available offline" in s and "offline-1-epoch.yaml" in s for s in said)
    meta = json.loads((tmp_path / "m" / "vnpol.json").read_text())
    assert meta["encoder"] == result["encoder"] == "embedded:multilingual-e5-small"
    assert meta["preprocessing"]["segmenter"] == "none"
    assert meta["preprocessing"]["max_length"] == 128  # the user's override survived the fallback
    # the fallback recipe's training section is the one used: 1 epoch, not default.yaml's 15
    assert len((tmp_path / "m" / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((tmp_path / "m" / "training_config.json").read_text())["training"]["learning_rate"] == 8e-5


def test_attention_dropout_is_set_on_the_encoder_and_saved(tmp_path, seed_split):
    from vnpol.saving import load_model
    from vnpol.training import resolve_encoder

    cfg = tiny_config(seed_split, **{"model.attention_dropout": 0.0})
    _, encoder, _, _ = resolve_encoder(cfg, ["Hà Nội", "Quốc hội"], say=lambda *_: None)
    assert encoder.config.attention_probs_dropout_prob == 0.0
    default = tiny_config(seed_split)
    assert default.model.attention_dropout is None
    _, encoder, _, _ = resolve_encoder(default, ["Hà Nội", "Quốc hội"], say=lambda *_: None)
    assert encoder.config.attention_probs_dropout_prob == 0.1  # the encoder's own value is kept

    out = tmp_path / "m"
    train(tiny_config(seed_split, **{"model.attention_dropout": 0.0, "training.epochs": 1}), out, say=lambda *_: None)
    model, _, _, meta = load_model(out)
    assert model.encoder.config.attention_probs_dropout_prob == 0.0
    assert meta["metrics"]["mixed_precision"] in ("no", "bf16")


def test_uppercase_copies_add_capitalised_training_documents(seed_split) -> None:
    from conftest import tiny_config

    from vnpol.training import prepare_data

    corpus = prepare_data(tiny_config(seed_split, **{"training.uppercase_copies": 1.0}), say=lambda *_: None)
    originals, copies = corpus.train[:3], corpus.train[3:]
    assert [d.id for d in copies] == [f"{d.id}#upper" for d in originals]
    for doc, copy in zip(originals, copies):
        assert copy.text == doc.text.upper() or len(copy.text) == len(doc.text)
        assert [(e.start, e.end, e.type) for e in copy.entities] == [(e.start, e.end, e.type) for e in doc.entities]
        assert all(copy.text[e.start:e.end] == e.text == e.text.upper() for e in copy.entities)
    assert any(e.text == "THỦ TƯỚNG" for d in copies for e in d.entities)


def test_a_crf_model_trains_saves_its_transitions_and_predicts(tmp_path, seed_split, seed_docs):
    import torch

    from vnpol.predict import load
    from vnpol.saving import load_model

    out = tmp_path / "crf"
    train(tiny_config(seed_split, **{"model.crf": "true", "training.epochs": 1}), out, say=lambda *_: None)
    model, _, _, meta = load_model(out)
    assert meta["head"]["crf"] is True
    assert model.crf and float(model.transitions.abs().sum()) > 0       # learned, saved and reloaded
    from safetensors.torch import load_file
    assert torch.equal(load_file(str(out / "model.safetensors"))["transitions"], model.transitions.detach())
    doc = load(out).predict(seed_docs[0].text)
    assert all(seed_docs[0].text[e.start:e.end] == e.text for e in doc.entities)


def test_bf16_training_really_runs_the_encoder_under_autocast(tmp_path, seed_split):
    """``training.mixed_precision: bf16`` changes the numbers; before the fix it silently trained in fp32."""
    def first_loss(precision: str) -> float:
        out = tmp_path / precision
        train(tiny_config(seed_split, **{"training.mixed_precision": precision, "training.epochs": 1}), out, say=lambda *_: None)
        assert json.loads((out / "vnpol.json").read_text())["metrics"]["mixed_precision"] == precision
        return json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["loss"]

    fp32, bf16 = first_loss("no"), first_loss("bf16")
    assert bf16 != fp32 and abs(bf16 - fp32) < 0.1 * fp32      # the same training, in lower precision


def test_two_process_training_under_torchrun_splits_the_batches_and_saves_one_model(tmp_path, seed_split, tiny_model):
    """What `accelerate launch` on two GPUs runs: two processes (gloo on CPU), DistributedDataParallel, one model."""
    out = tmp_path / "ddp"
    sets = [f"data.{part}=[{seed_split / (part + '.jsonl')}]" for part in ("train", "dev", "test")] + ["training.epochs=2"]
    run = subprocess.run([str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2",
                          str(ROOT / "scripts" / "train.py"), "--config", str(ROOT / "configs" / "tiny.yaml"),
                          "--output", str(out), *[a for s in sets for a in ("--set", s)]],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("vnpol: model saved to") == 1                       # the main process reports
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    single = json.loads((tiny_model[0] / "metrics.jsonl").read_text().splitlines()[0])["steps"]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0]["steps"] in (single // 2, (single + 1) // 2)
    assert (out / "model.safetensors").exists() and not out.with_name("ddp.work").exists()

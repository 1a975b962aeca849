"""Shared fixtures: a tiny model trained once per test session on three seed articles."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds" / "gold.jsonl"


@pytest.fixture(scope="session")
def seed_docs():
    from vnpol.corpus import read_jsonl

    return read_jsonl(SEEDS)


@pytest.fixture(scope="session")
def seed_split(tmp_path_factory, seed_docs):
    """Seeds 000-002 to train, 003 as dev, 004 as test (for pipeline tests only, not reported numbers)."""
    from vnpol.corpus import write_jsonl

    d = tmp_path_factory.mktemp("split")
    write_jsonl(seed_docs[:3], d / "train.jsonl")
    write_jsonl(seed_docs[3:4], d / "dev.jsonl")
    write_jsonl(seed_docs[4:], d / "test.jsonl")
    return d


def tiny_config(split: Path, **overrides):
    from vnpol.config import load_config

    sets = [f"data.train=[{split / 'train.jsonl'}]", f"data.dev=[{split / 'dev.jsonl'}]", f"data.test=[{split / 'test.jsonl'}]",
            "training.epochs=4"]
    sets += [f"{k}={v}" for k, v in overrides.items()]
    return load_config(ROOT / "configs" / "tiny.yaml", sets)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, seed_split):
    from vnpol.training import train

    out = tmp_path_factory.mktemp("models") / "tiny"
    result = train(tiny_config(seed_split), out, say=lambda *_: None)
    return out, result


@pytest.fixture(scope="session")
def extractor(tiny_model):
    from vnpol.predict import load

    return load(tiny_model[0], device="cpu")

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


#: Four hard cases for the relation head, one per line: a list of three officials, a delegation working
#: with a body, a leader receiving a foreign delegation, a byline. The inline markup is the gold.
DRILL = """Tham dự có ông [[Nguyễn Văn Nên|PER|a]], [[Bí thư|POS|a1]] [[Thành ủy|ORG|a2]], ông [[Phan Văn Mãi|PER|b]], [[Chủ tịch|POS|b1]] [[UBND Thành phố|ORG|b2]] và bà [[Nguyễn Thị Lệ|PER|c]], [[Chủ tịch|POS|c1]] [[HĐND Thành phố|ORG|c2]].
[[Sáng 12/3|DATE]], [[Đoàn công tác|ORG|d]] của [[Ban Tổ chức Trung ương|ORG|d1]] làm việc với [[Tỉnh ủy Nghệ An|ORG|d2]].
[[Chiều 5/6|DATE]], tại [[Hà Nội|LOC]], [[Chủ tịch|POS|e1]] [[Quốc hội|ORG|e2]] [[Vương Đình Huệ|PER|e]] tiếp [[Đoàn đại biểu Quốc hội Lào|ORG|f]].
[[Thu Hằng|PER|g]] ([[TTXVN|ORG|g1]])
=== relations
a HAS_POSITION a1
a1 POSITION_AT a2
b HAS_POSITION b1
b1 POSITION_AT b2
c HAS_POSITION c1
c1 POSITION_AT c2
d PART_OF d1
d MEETS d2
e HAS_POSITION e1
e1 POSITION_AT e2
e MEETS f
g AFFILIATED_WITH g1
"""


@pytest.fixture(scope="session")
def drill_doc():
    from vnpol.markup import parse_markup

    return parse_markup(DRILL, "drill")


@pytest.fixture(scope="session")
def drilled_model(tmp_path_factory, drill_doc):
    """A tiny model drilled on the four hard cases until it knows them: pins the whole pipeline
    (windows, candidate pairs, list features, thresholds, one-per constraints, offsets) exactly."""
    from vnpol.config import load_config
    from vnpol.corpus import Document, write_jsonl
    from vnpol.training import train

    d = tmp_path_factory.mktemp("drill")
    copies = [Document(f"d{i}", drill_doc.text, drill_doc.entities, drill_doc.relations) for i in range(30)]
    write_jsonl(copies, d / "train.jsonl")
    write_jsonl(copies[:1], d / "dev.jsonl")
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [f"data.train=[{d / 'train.jsonl'}]", f"data.dev=[{d / 'dev.jsonl'}]",
                                                       "data.test=[]", "training.epochs=12", "model.relation_features=true"])
    out = d / "model"
    train(cfg, out, say=lambda *_: None)
    return out

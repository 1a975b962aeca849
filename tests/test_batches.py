"""Training windows: encoded once, cached as an Arrow dataset, read back on the next run."""
from pathlib import Path

import pytest

from vnpol import encoders
from vnpol.batches import training_examples
from vnpol.corpus import Document, Entity, Relation
from vnpol.encoding import Preprocessing, SubwordTokenizer
from vnpol.schema import POLITICAL

TEXT = "Chiều 5/3, Chủ tịch nước Võ Văn Thưởng tiếp Đại sứ Nhật Bản tại Hà Nội."


def _doc(place_type: str = "LOC") -> Document:
    def ent(eid: str, surface: str, typ: str) -> Entity:
        start = TEXT.index(surface)
        return Entity(eid, start, start + len(surface), typ, surface)

    return Document("a", TEXT, [ent("T1", "Chiều 5/3", "DATE"), ent("T2", "Chủ tịch nước", "POS"),
                                ent("T3", "Võ Văn Thưởng", "PER"), ent("T4", "Hà Nội", place_type)],
                    [Relation("T3", "T2", "HAS_POSITION")])


@pytest.fixture(scope="module")
def tokenizer() -> SubwordTokenizer:
    from transformers import AutoTokenizer

    return SubwordTokenizer(AutoTokenizer.from_pretrained(encoders.prepare(progress=lambda _m: None)))


def test_a_second_run_reads_the_windows_from_the_cache(tokenizer, tmp_path: Path) -> None:
    said: list[str] = []
    prep = Preprocessing(segmenter="none")
    first = training_examples([_doc()], tokenizer, prep, POLITICAL, cache_dir=tmp_path, say=said.append)
    assert said == [] and len(list(tmp_path.glob("windows-*"))) == 1
    has_position = POLITICAL.relation_labels().index("HAS_POSITION")
    assert [p[6] for p in first[0].pairs].count(has_position) == 1  # the one gold pair, labelled
    second = training_examples([_doc()], tokenizer, prep, POLITICAL, cache_dir=tmp_path, say=said.append)
    assert second == first
    assert len(said) == 1 and said[0].startswith("vnpol: 1 encoded training windows read from the cache")


def test_other_annotations_or_preprocessing_make_another_entry(tokenizer, tmp_path: Path) -> None:
    prep = Preprocessing(segmenter="none")
    first = training_examples([_doc()], tokenizer, prep, POLITICAL, cache_dir=tmp_path)
    retyped = training_examples([_doc("ORG")], tokenizer, prep, POLITICAL, cache_dir=tmp_path)
    assert retyped[0].word_labels != first[0].word_labels
    training_examples([_doc()], tokenizer, Preprocessing(segmenter="none", context=4), POLITICAL, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("windows-*"))) == 3


def test_a_damaged_cache_entry_is_encoded_again(tokenizer, tmp_path: Path) -> None:
    prep = Preprocessing(segmenter="none")
    first = training_examples([_doc()], tokenizer, prep, POLITICAL, cache_dir=tmp_path)
    for arrow in tmp_path.glob("windows-*/*.arrow"):
        arrow.write_bytes(b"not arrow")
    said: list[str] = []
    again = training_examples([_doc()], tokenizer, prep, POLITICAL, cache_dir=tmp_path, say=said.append)
    assert again == first and "unreadable" in said[0]
    assert training_examples([_doc()], tokenizer, prep, POLITICAL, cache_dir=tmp_path, say=said.append) == first
    assert "read from the cache" in said[-1]

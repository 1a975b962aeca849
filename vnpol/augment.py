"""Training-data augmentation: documents added again in capitals (``training.uppercase_copies``).

Vietnamese news sets headlines, and sometimes a whole lead, in capitals ("THỦ TƯỚNG PHẠM MINH
CHÍNH CHỦ TRÌ HỘI NGHỊ"). A corpus with few such lines teaches the tagger that names are
title-cased, so it misses them there. A capitalised copy keeps every offset: each character
is replaced by its capital only when that capital is a single character.
"""
from __future__ import annotations

import random
from dataclasses import replace
from typing import Sequence

from .corpus import Document


def capitalise(text: str) -> str:
    """``text`` in capitals, character for character (the same length, so the same offsets).

    >>> capitalise("Ủy ban nhân dân tỉnh Đắk Lắk")
    'ỦY BAN NHÂN DÂN TỈNH ĐẮK LẮK'
    >>> capitalise("straße") == "STRAßE"  # ß has no one-character capital: kept
    True
    """
    return "".join(up if len(up := c.upper()) == 1 else c for c in text)


def uppercase_copy(doc: Document) -> Document:
    """A copy of ``doc`` in capitals, entities and relations unchanged but for their text.

    >>> from vnpol.corpus import Entity
    >>> d = Document("a", "Thủ tướng Phạm Minh Chính đến Hà Nội.", [Entity("T1", 10, 25, "PER", "Phạm Minh Chính")])
    >>> u = uppercase_copy(d)
    >>> u.id, u.text, u.entities[0].text, u.text[10:25]
    ('a#upper', 'THỦ TƯỚNG PHẠM MINH CHÍNH ĐẾN HÀ NỘI.', 'PHẠM MINH CHÍNH', 'PHẠM MINH CHÍNH')
    """
    text = capitalise(doc.text)
    entities = [replace(e, text=text[e.start:e.end]) for e in doc.entities]
    return Document(f"{doc.id}#upper", text, entities, list(doc.relations), dict(doc.meta))


def with_uppercase_copies(docs: Sequence[Document], fraction: float, seed: int = 13) -> list[Document]:
    """``docs`` plus capitalised copies of a seeded ``fraction`` of them.

    >>> docs = [Document(str(i), f"Tỉnh ủy số {i}.") for i in range(10)]
    >>> [d.id for d in with_uppercase_copies(docs, 0.2)][10:]
    ['4#upper', '9#upper']
    """
    chosen = sorted(random.Random(seed).sample(range(len(docs)), round(len(docs) * fraction)))
    return list(docs) + [uppercase_copy(docs[i]) for i in chosen]

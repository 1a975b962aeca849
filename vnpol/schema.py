"""The label scheme of ``ANNOTATION.md`` (v1): entity and relation types and allowed pairs.

Every corpus file, model and metric in vnpol uses exactly these names. A model
directory records :data:`SCHEME_VERSION`; loading refuses a model whose scheme
differs.
"""
from __future__ import annotations

SCHEME_VERSION = "vnpol-annotation-v1"

ENTITY_TYPES: tuple[str, ...] = ("PER", "ORG", "LOC", "POS", "DATE", "DOC", "EVENT")

RELATION_TYPES: tuple[str, ...] = (
    "HAS_POSITION",
    "POSITION_AT",
    "AFFILIATED_WITH",
    "MEETS",
    "ISSUED_BY",
    "PART_OF",
)

#: Allowed (head type, tail type) pairs for each relation type.
RELATION_SIGNATURES: dict[str, frozenset[tuple[str, str]]] = {
    "HAS_POSITION": frozenset({("PER", "POS")}),
    "POSITION_AT": frozenset({("POS", "ORG")}),
    "AFFILIATED_WITH": frozenset({("PER", "ORG")}),
    "MEETS": frozenset({("PER", "PER"), ("PER", "ORG"), ("ORG", "PER"), ("ORG", "ORG")}),
    "ISSUED_BY": frozenset({("DOC", "ORG")}),
    "PART_OF": frozenset({("ORG", "ORG")}),
}

#: Every (head type, tail type) pair for which some relation is allowed.
CANDIDATE_PAIRS: frozenset[tuple[str, str]] = frozenset(
    pair for pairs in RELATION_SIGNATURES.values() for pair in pairs
)

NO_RELATION = "NONE"


def bio_labels() -> list[str]:
    """``O`` followed by ``B-X``/``I-X`` for each entity type, in a fixed order."""
    labels = ["O"]
    for t in ENTITY_TYPES:
        labels += [f"B-{t}", f"I-{t}"]
    return labels


def relation_labels() -> list[str]:
    """The relation head's classes: ``NONE`` first, then the scheme's types."""
    return [NO_RELATION, *RELATION_TYPES]


def allowed(relation_type: str, head_type: str, tail_type: str) -> bool:
    return (head_type, tail_type) in RELATION_SIGNATURES.get(relation_type, frozenset())

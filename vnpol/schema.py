"""The label scheme as data: entity types, relation types and the type pairs each relation joins.

A scheme is a small YAML file (``vnpol/schemes/political.yaml`` is the shipped default,
the scheme of ``ANNOTATION.md``). Configs name one with ``scheme:``; ``scheme: auto``
takes it from the training data. A model directory records its scheme, and every stage
after training (tagger labels, relation masks, evaluation, validation, rendering) reads it
from there.

>>> s = Scheme.from_dict({"name": "covid", "entities": ["PATIENT_ID", "SYMPTOM"], "relations": {}})
>>> s.bio_labels()
['O', 'B-PATIENT_ID', 'I-PATIENT_ID', 'B-SYMPTOM', 'I-SYMPTOM']
>>> POLITICAL.allowed("HAS_POSITION", "PER", "POS"), POLITICAL.allowed("HAS_POSITION", "POS", "PER")
(True, False)
>>> Scheme.from_documents([{"entities": [{"id": "T1", "type": "GENE"}], "relations": []}]).entity_types
('GENE',)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

NO_RELATION = "NONE"
_PALETTE = ("#f4a9a8", "#a8c8f4", "#b5e3b0", "#f7d38a", "#d8c2f0", "#f2b8de", "#9fe0dc", "#e0c9a6", "#c5e1a5", "#ffccbc")


class SchemeError(ValueError):
    """A scheme file that cannot be used, or a model and data of different schemes."""


@dataclass(frozen=True)
class Scheme:
    name: str
    entity_types: tuple[str, ...]
    #: relation type -> allowed (head type, tail type) pairs, in the file's order
    signatures: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    colors: Mapping[str, str] = field(default_factory=dict)
    version: int = 1
    #: relation type -> "head" (each head mention takes at most one tail) or "tail" (each tail at most one head)
    one_per: Mapping[str, str] = field(default_factory=dict)

    @property
    def relation_types(self) -> tuple[str, ...]:
        return tuple(self.signatures)

    @property
    def candidate_pairs(self) -> frozenset[tuple[str, str]]:
        """Every (head type, tail type) pair for which some relation is allowed."""
        return frozenset(p for pairs in self.signatures.values() for p in pairs)

    def bio_labels(self) -> list[str]:
        """``O`` followed by ``B-X``/``I-X`` for each entity type, in the scheme's order."""
        return ["O"] + [f"{p}-{t}" for t in self.entity_types for p in "BI"]

    def relation_labels(self) -> list[str]:
        """The relation head's classes: ``NONE`` first, then the scheme's types."""
        return [NO_RELATION, *self.relation_types]

    def allowed(self, relation_type: str, head_type: str, tail_type: str) -> bool:
        return (head_type, tail_type) in self.signatures.get(relation_type, frozenset())

    def color(self, entity_type: str) -> str:
        return self.colors.get(entity_type) or _PALETTE[self.entity_types.index(entity_type) % len(_PALETTE)] \
            if entity_type in self.entity_types else "#dddddd"

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version,
                "entities": {t: self.color(t) for t in self.entity_types},
                "relations": {r: self._relation_entry(r) for r in self.signatures}}

    def _relation_entry(self, rel: str) -> Any:
        pairs = sorted([list(p) for p in self.signatures[rel]])
        return {"pairs": pairs, "one_per": self.one_per[rel]} if rel in self.one_per else pairs

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "scheme") -> "Scheme":
        if not isinstance(data, Mapping) or "entities" not in data:
            raise SchemeError(f"{where}: expected a mapping with 'entities' (and optionally 'relations', 'name')")
        ents = data["entities"]
        colors = dict(ents) if isinstance(ents, Mapping) else {}
        types = tuple(str(t) for t in (ents if not isinstance(ents, Mapping) else ents.keys()))
        if not types or len(set(types)) != len(types):
            raise SchemeError(f"{where}: 'entities' must list distinct entity types, got {list(types)}")
        bad = [t for t in types if not t or "-" in t or t in ("O", NO_RELATION)]
        if bad:
            raise SchemeError(f"{where}: entity type(s) {bad} cannot be used (no '-', not 'O' or 'NONE')")
        sigs: dict[str, frozenset[tuple[str, str]]] = {}
        one_per: dict[str, str] = {}
        for rel, pairs in (data.get("relations") or {}).items():
            if isinstance(pairs, Mapping):
                if pairs.get("one_per") not in (None, "head", "tail"):
                    raise SchemeError(f"{where}: relation {rel}: one_per must be 'head' or 'tail', got {pairs.get('one_per')!r}")
                if pairs.get("one_per"):
                    one_per[str(rel)] = pairs["one_per"]
                pairs = pairs.get("pairs")
            ok = []
            for p in pairs or []:
                if not (isinstance(p, (list, tuple)) and len(p) == 2 and p[0] in types and p[1] in types):
                    raise SchemeError(f"{where}: relation {rel}: pair {p!r} is not two of the entity types {list(types)}")
                ok.append((str(p[0]), str(p[1])))
            sigs[str(rel)] = frozenset(ok)
        return cls(str(data.get("name", "custom")), types, sigs, {k: str(v) for k, v in colors.items() if v}, int(data.get("version", 1)), one_per)

    @classmethod
    def load(cls, path: str | Path) -> "Scheme":
        path = Path(path)
        if not path.exists():
            raise SchemeError(f"scheme file {path} not found (the shipped default is 'political')")
        return cls.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8")

    @classmethod
    def from_documents(cls, docs: Iterable[Any], name: str = "auto") -> "Scheme":
        """Entity types in order of first appearance; relations with the type pairs the data shows."""
        types: dict[str, None] = {}
        sigs: dict[str, set[tuple[str, str]]] = {}
        for d in docs:
            ents = d["entities"] if isinstance(d, Mapping) else d.entities
            rels = d["relations"] if isinstance(d, Mapping) else d.relations
            kind = {}
            for e in ents:
                etype = e["type"] if isinstance(e, Mapping) else e.type
                types.setdefault(etype)
                kind[e["id"] if isinstance(e, Mapping) else e.id] = etype
            for r in rels:
                get = (lambda k: r[k]) if isinstance(r, Mapping) else (lambda k: getattr(r, k))
                sigs.setdefault(get("type"), set()).add((kind[get("head")], kind[get("tail")]))
        if not types:
            raise SchemeError("scheme: auto found no entity in the training data")
        return cls(name, tuple(types), {r: frozenset(p) for r, p in sigs.items()})

    def describe(self) -> str:
        rels = f"; relations {', '.join(self.relation_types)}" if self.signatures else "; no relations"
        return f"{self.name!r} (entities {', '.join(self.entity_types)}{rels})"


def _shipped(name: str) -> Scheme:
    return Scheme.from_dict(yaml.safe_load(resources.files("vnpol").joinpath(f"schemes/{name}.yaml").read_text(encoding="utf-8")),
                            f"vnpol/schemes/{name}.yaml")


#: The default scheme of ``ANNOTATION.md`` (v1).
POLITICAL = _shipped("political")


def resolve(spec: str | Scheme | None, docs: Iterable[Any] = ()) -> Scheme:
    """``political`` (or None) → the default; ``auto`` → from ``docs``; anything else → a scheme file."""
    if isinstance(spec, Scheme):
        return spec
    if spec in (None, "", "political", POLITICAL.name):
        return POLITICAL
    if spec == "auto":
        return Scheme.from_documents(docs)
    return Scheme.load(spec)


def from_model_meta(meta: Mapping[str, Any]) -> Scheme:
    """The scheme recorded in a model's ``vnpol.json`` (models from before schemes were data: the political one)."""
    s = meta.get("scheme")
    if isinstance(s, Mapping):
        return Scheme.from_dict(s, "vnpol.json")
    if s == POLITICAL.name:
        return POLITICAL
    raise SchemeError(f"model records an unknown label scheme {s!r}")


def check_compatible(model: Scheme, data: Scheme, what: str = "data") -> None:
    """Refuse data whose types the model's scheme does not have, naming both schemes."""
    missing = [t for t in data.entity_types if t not in model.entity_types]
    missing += [r for r in data.relation_types if r not in model.relation_types]
    if missing:
        raise SchemeError(f"the model was trained on scheme {model.describe()}, but the {what} uses scheme "
                          f"{data.describe()}: types {', '.join(missing)} are not in the model's scheme")

"""Training batches: encoded windows with their gold tags and relation pairs, and the joint loss.

:func:`training_examples` encodes a corpus into windows once and keeps them as an Arrow dataset
(Hugging Face ``datasets``) under a key made of everything the windows depend on — the documents,
the tokenizer, the preprocessing, the scheme and the encoding code's version — so a second run on
the same corpus and tokenizer reads them back instead of segmenting and tokenizing again.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from .corpus import Document, json_line
from .encoding import EncodedDocument, Preprocessing, SubwordTokenizer, candidate_pairs, encode_document, pair_features
from .model import JointModel
from .schema import Scheme

#: bump when encode_document, make_windows or window_examples change what they produce
WINDOWS_FORMAT = 1


@dataclass
class Example:
    """One window with its word labels and relation pairs, ready to batch."""

    input_ids: list[int]
    word_pos: list[int]
    word_labels: list[int]
    pairs: list[list[int]]  # head start, head end, tail start, tail end, head type, tail type, label


def window_examples(enc: EncodedDocument, scheme: Scheme) -> list[Example]:
    assert enc.labels is not None
    type_ids = {t: i for i, t in enumerate(scheme.entity_types)}
    rel_ids = {r: i for i, r in enumerate(scheme.relation_labels())}
    gold_rel: dict[tuple[str, str], str] = {}
    for r in enc.doc.relations:
        gold_rel.setdefault((r.head, r.tail), r.type)
    relations_annotated = not enc.doc.meta.get("entity_only", False)
    out = []
    for w in enc.windows:
        pos = [w.first_subword[i - w.word_start] for i in range(w.own_start, w.own_end)]
        labels = [enc.labels[i] for i in range(w.own_start, w.own_end)]
        spans = w.owned_spans(enc.gold_spans)
        pairs = []
        simple = [(s[0], s[1], s[2]) for s in spans]
        for a, b in candidate_pairs(simple, enc.sentence_of_word, scheme) if relations_annotated else []:
            (h0, h1, ht, hid), (t0, t1, tt, tid) = spans[a], spans[b]
            label = gold_rel.get((hid, tid), "NONE")
            pairs.append([*w.span_positions(h0, h1), *w.span_positions(t0, t1), type_ids[ht], type_ids[tt], rel_ids[label],
                          *pair_features(simple, a, b, enc.separators)])
        out.append(Example(w.input_ids, pos, labels, pairs))
    return out


def collate(batch: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    word_index, labels, pairs = [], [], []
    for r, e in enumerate(batch):
        ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[r, : len(e.input_ids)] = 1
        word_index.extend([r, p] for p in e.word_pos)
        labels.extend(e.word_labels)
        pairs.extend([r, *p] for p in e.pairs)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "word_index": torch.tensor(word_index, dtype=torch.long).reshape(-1, 2),
        "word_labels": torch.tensor(labels, dtype=torch.long),
        "pairs": torch.tensor(pairs, dtype=torch.long).reshape(len(pairs), -1) if pairs else torch.zeros((0, 8), dtype=torch.long),
    }


def joint_loss(model: JointModel, batch: dict[str, torch.Tensor], relation_weight: float) -> tuple[torch.Tensor, float, float]:
    """(joint loss to back-propagate, tagger loss, relation loss) of one :func:`collate` batch; ``model`` may be wrapped."""
    loss, tag_loss, rel_loss = model(**batch, relation_weight=relation_weight)
    return loss, float(tag_loss.detach()), float(rel_loss.detach())


# --------------------------------------------------------------------------- encoded windows, cached as Arrow


def training_examples(docs: Sequence[Document], tokenizer: SubwordTokenizer, prep: Preprocessing, scheme: Scheme, *,
                      cache_dir: str | Path | None = None, say: Callable[[str], object] = print) -> list[Example]:
    """The training windows of ``docs``; with ``cache_dir``, read from (or written to) an Arrow dataset there."""
    def encode() -> list[Example]:
        return [ex for d in docs for ex in window_examples(encode_document(d, tokenizer, prep, with_labels=True, scheme=scheme), scheme)]

    if cache_dir is None:
        return encode()
    import datasets

    target = Path(cache_dir) / f"windows-{windows_key(docs, tokenizer, prep, scheme)}"
    if (target / "dataset_info.json").exists():
        try:
            examples = _from_arrow(datasets.load_from_disk(str(target)))
            say(f"vnpol: {len(examples)} encoded training windows read from the cache {target}")
            return examples
        except (OSError, ValueError, KeyError) as exc:  # a damaged cache entry is rebuilt, never trusted
            say(f"vnpol: cache {target} unreadable ({type(exc).__name__}); encoding again")
            shutil.rmtree(target, ignore_errors=True)
    examples = encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".windows-", dir=target.parent))
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # vnpol prints one line per step; the encoder log stays readable
    try:
        datasets.Dataset.from_dict(_columns(examples), features=_features()).save_to_disk(str(staging / "data"))
    finally:
        if bars:
            datasets.enable_progress_bars()
    try:  # written whole, then renamed: a killed run never leaves half a cache entry
        (staging / "data").rename(target)
    except OSError:  # another run wrote the same entry first
        pass
    shutil.rmtree(staging, ignore_errors=True)
    return examples


def windows_key(docs: Sequence[Document], tokenizer: SubwordTokenizer, prep: Preprocessing, scheme: Scheme) -> str:
    """A digest of everything the encoded windows depend on."""
    from . import __version__

    h = hashlib.sha256()
    head = {"format": WINDOWS_FORMAT, "vnpol": __version__, "prep": asdict(prep), "scheme": scheme.to_dict(),
            "segmenter": _segmenter_version(prep.segmenter)}
    h.update(json.dumps(head, sort_keys=True).encode())
    h.update(_tokenizer_fingerprint(tokenizer.hf).encode("utf-8", "surrogatepass"))
    for d in docs:
        h.update(json_line(d.to_dict()).encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()[:20]


def _tokenizer_fingerprint(hf) -> str:
    if getattr(hf, "is_fast", False):
        return type(hf).__name__ + hf.backend_tokenizer.to_str()
    return type(hf).__name__ + json.dumps(sorted(hf.get_vocab().items()), ensure_ascii=False) + repr(hf.init_kwargs.get("do_lower_case"))


def _segmenter_version(name: str) -> str:
    if name == "none":
        return "none"
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return name


def _features():
    import datasets

    ints = datasets.Sequence(datasets.Value("int32"))
    return datasets.Features({"input_ids": ints, "word_pos": ints, "word_labels": ints, "pairs": datasets.Sequence(ints)})


def _columns(examples: list[Example]) -> dict[str, list]:
    return {"input_ids": [e.input_ids for e in examples], "word_pos": [e.word_pos for e in examples],
            "word_labels": [e.word_labels for e in examples], "pairs": [e.pairs for e in examples]}


def _from_arrow(ds) -> list[Example]:
    cols = ds.to_dict()
    return [Example(*row) for row in zip(cols["input_ids"], cols["word_pos"], cols["word_labels"], cols["pairs"])]

"""Encoding stage: words → subwords → labels, and windows over long documents.

A document becomes an :class:`EncodedDocument`:

* its raw text normalised (:func:`vnpol.text.normalize`), tokenised into
  syllable tokens and grouped into words (optionally by a Vietnamese word
  segmenter, as PhoBERT expects: ``Bộ_Chính_trị``);
* each word's subword ids, obtained word by word, so the alignment works the
  same for PhoBERT's slow tokenizer (no offset mapping) and fast tokenizers;
* BIO labels on words (the model reads each word's first subword);
* :class:`Window` objects: consecutive whole sentences packed up to the
  encoder's limit, each window *owning* its sentences and carrying a few
  sentences' worth of context on both sides (overlap). Every word is owned by
  exactly one window, so stitching predictions back is exact and no text is
  ever dropped: a sentence longer than a window is cut into owned chunks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .corpus import Document
from .schema import POLITICAL, Scheme
from .text import NormalizedText, normalize, segment_words, split_sentences, tokenize

IGNORE = -100


@dataclass(frozen=True)
class Preprocessing:
    """Everything that turns raw text into encoder input; saved with every model."""

    normalize_tones: bool = True
    segmenter: str = "none"  # "none" | "underthesea" | "pyvi"
    max_length: int = 256  # encoder positions per window, special tokens included
    context: int = 16  # subwords of context on each side of a window's own sentences

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Window:
    word_start: int  # first word in the window (context included)
    word_end: int
    own_start: int  # words this window predicts for
    own_end: int
    input_ids: list[int]
    first_subword: list[int]  # position in input_ids of each word's first subword (word_start..word_end)
    last_subword: list[int]  # exclusive end position of each word's subwords

    def span_positions(self, w0: int, w1: int) -> tuple[int, int]:
        """Subword positions [start, end) in ``input_ids`` of words ``[w0, w1)``."""
        return self.first_subword[w0 - self.word_start], self.last_subword[w1 - 1 - self.word_start]

    def owned_spans(self, spans):
        """The spans (w0, w1, ...) that start in this window's own words and end inside the window."""
        return [s for s in spans if self.own_start <= s[0] < self.own_end and s[1] <= self.word_end]


@dataclass
class EncodedDocument:
    doc: Document
    norm: NormalizedText
    words: list[tuple[int, int]]  # spans in normalised text
    sentence_of_word: list[int]
    subword_ids: list[list[int]]
    windows: list[Window]
    labels: list[int] | None = None  # BIO label id per word (gold)
    gold_spans: list[tuple[int, int, str, str]] = field(default_factory=list)  # (w0, w1, type, entity id)
    #: prefix counts of ``;`` and ``,`` words (for the relation head's list features)
    separators: tuple[list[int], list[int]] = field(default_factory=lambda: ([0], [0]))

    def raw_span(self, w0: int, w1: int) -> tuple[int, int]:
        """Raw-text character span of words ``[w0, w1)``."""
        return self.norm.to_raw_span(self.words[w0][0], self.words[w1 - 1][1])


class SubwordTokenizer:
    """Word → subword ids with a cache; works for slow and fast Hugging Face tokenizers."""

    def __init__(self, hf_tokenizer, cache_size: int = 200_000):
        self.hf = hf_tokenizer
        self.cache: dict[str, list[int]] = {}
        self.cache_size = cache_size
        cls_id = hf_tokenizer.cls_token_id if hf_tokenizer.cls_token_id is not None else hf_tokenizer.bos_token_id
        sep_id = hf_tokenizer.sep_token_id if hf_tokenizer.sep_token_id is not None else hf_tokenizer.eos_token_id
        if cls_id is None or sep_id is None or hf_tokenizer.unk_token_id is None:
            raise ValueError("tokenizer needs cls/bos, sep/eos and unk tokens")
        self.cls_id, self.sep_id, self.unk_id = cls_id, sep_id, hf_tokenizer.unk_token_id
        self.pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0

    def encode_words(self, words: Sequence[str]) -> list[list[int]]:
        missing = list({w for w in words if w not in self.cache})
        for w in [w for w in missing if not _encodable(w)]:  # lone surrogates (from JSON escapes): unknown
            self.cache[w] = [self.unk_id]
            missing.remove(w)
        if missing:
            if getattr(self.hf, "is_fast", False):
                ids = self.hf(missing, add_special_tokens=False)["input_ids"]
            else:
                ids = [self.hf.encode(w, add_special_tokens=False) for w in missing]
            if len(self.cache) + len(missing) > self.cache_size:
                self.cache.clear()
            for w, i in zip(missing, ids):
                self.cache[w] = list(i) or [self.unk_id]
        return [self.cache[w] for w in words]


def _encodable(word: str) -> bool:
    try:
        word.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _word_strings(text: str, tokens, words: list[list[int]], segmented: bool) -> list[str]:
    out = []
    for group in words:
        if len(group) == 1:
            s, e = tokens[group[0]]
            out.append(text[s:e])
            continue
        parts = [text[tokens[group[0]][0]:tokens[group[0]][1]]]
        for a, b in zip(group, group[1:]):
            gap = tokens[b][0] - tokens[a][1]
            parts.append(("_" if segmented else " ") if gap else "")
            parts.append(text[tokens[b][0]:tokens[b][1]])
        out.append("".join(parts))
    return out


def _split_words_at(words: list[list[int]], tokens, cuts: set[int]) -> list[list[int]]:
    """Split any word that a gold entity boundary (normalised char offset) falls inside."""
    out = []
    for group in words:
        current = [group[0]]
        for t in group[1:]:
            if tokens[t][0] in cuts or any(tokens[current[-1]][1] <= c <= tokens[t][0] for c in cuts if tokens[current[-1]][1] < tokens[t][0]):
                out.append(current)
                current = [t]
            else:
                current.append(t)
        out.append(current)
    return out


def encode_document(doc: Document, tokenizer: SubwordTokenizer, prep: Preprocessing, *, with_labels: bool = False,
                    scheme: Scheme = POLITICAL, exact_spans: bool = False) -> EncodedDocument:
    """Normalise, segment, label and window one document.

    With ``exact_spans`` (evaluation given gold entities) a word boundary is made at every
    gold entity boundary whatever the segmenter, so the gold spans are used exactly as given.
    """
    norm = normalize(doc.text, tones=prep.normalize_tones)
    text = norm.text
    tokens = tokenize(text)
    groups = segment_words(text, tokens, prep.segmenter)
    gold_norm: list[tuple[int, int, str, str]] = []
    if with_labels:
        for e in doc.entities:
            s, t = norm.from_raw_span(e.start, e.end)
            if t > s:
                gold_norm.append((s, t, e.type, e.id))
        cuts = {c for s, t, _, _ in gold_norm for c in (s, t)}
        if prep.segmenter != "none":
            groups = _split_words_at(groups, tokens, cuts)
        if exact_spans:
            tokens, groups = _cut_tokens_at(tokens, groups, cuts)
    words = [(tokens[g[0]][0], tokens[g[-1]][1]) for g in groups]
    strings = _word_strings(text, tokens, groups, prep.segmenter != "none")
    subword_ids = tokenizer.encode_words(strings)

    sentences = split_sentences(text)
    sentence_of_word = _assign_sentences(words, sentences)

    labels = None
    gold_spans: list[tuple[int, int, str, str]] = []
    if with_labels:
        label2id = {l: i for i, l in enumerate(scheme.bio_labels())}
        labels = [label2id["O"]] * len(words)
        starts = {s: i for i, (s, _) in enumerate(words)}
        ends = {e: i for i, (_, e) in enumerate(words)}
        for s, t, etype, eid in gold_norm:
            # an entity boundary inside a token (rare: "TW4") snaps outwards to whole words
            w0 = starts.get(s, next((i for i, (ws, we) in enumerate(words) if we > s), None))
            w1 = ends.get(t, next((i for i, (ws, we) in enumerate(words) if we >= t), None))
            if w0 is None or w1 is None:
                continue
            if f"B-{etype}" not in label2id:
                raise ValueError(f"document {doc.id!r}: entity {eid} has type {etype!r}, which is not in the scheme "
                                 f"{scheme.describe()}")
            labels[w0] = label2id[f"B-{etype}"]
            for i in range(w0 + 1, w1 + 1):
                labels[i] = label2id[f"I-{etype}"]
            gold_spans.append((w0, w1 + 1, etype, eid))
    windows = make_windows(subword_ids, sentence_of_word, tokenizer, prep)
    semis, commas = [0], [0]
    for a, b in words:
        w = text[a:b]
        semis.append(semis[-1] + (w == ";"))
        commas.append(commas[-1] + (w == ","))
    return EncodedDocument(doc, norm, words, sentence_of_word, subword_ids, windows, labels, gold_spans, (semis, commas))


def _cut_tokens_at(tokens, groups, cuts: set[int]):
    """Split tokens (and the words made of them) at the given character positions."""
    new_tokens: list[tuple[int, int]] = []
    new_groups: list[list[int]] = []
    for g in groups:
        word: list[int] = []
        for k in g:
            a, b = tokens[k]
            inner = sorted(c for c in cuts if a < c < b)
            for x, y in zip([a, *inner], [*inner, b]):
                if x > a and word:  # a cut inside a token also ends the word
                    new_groups.append(word)
                    word = []
                new_tokens.append((x, y))
                word.append(len(new_tokens) - 1)
            if any(c == b for c in cuts) and word:
                new_groups.append(word)
                word = []
        if word:
            new_groups.append(word)
    return new_tokens, new_groups


def _assign_sentences(words, sentences) -> list[int]:
    out, k = [], 0
    for s, _ in words:
        while k + 1 < len(sentences) and sentences[k + 1][0] <= s:
            k += 1
        out.append(k)
    return out


def _units(subword_ids: list[list[int]], sentence_of_word: list[int], budget: int) -> list[tuple[int, int]]:
    """Word ranges of sentences, long sentences cut into chunks that fit ``budget`` subwords."""
    units: list[tuple[int, int]] = []
    i, n = 0, len(subword_ids)
    while i < n:
        j, size = i, 0
        while j < n and sentence_of_word[j] == sentence_of_word[i]:
            length = min(len(subword_ids[j]), budget)
            if size + length > budget and j > i:
                break
            size += length
            j += 1
        units.append((i, j))
        i = j
    return units


def make_windows(subword_ids: list[list[int]], sentence_of_word: list[int], tokenizer: SubwordTokenizer, prep: Preprocessing) -> list[Window]:
    """Pack whole sentences into windows of at most ``prep.max_length`` positions."""
    budget = prep.max_length - 2
    lengths = [min(len(ids), budget) for ids in subword_ids]
    units = _units(subword_ids, sentence_of_word, budget)
    windows: list[Window] = []
    u = 0
    while u < len(units):
        own_start, own_end = units[u]
        size = sum(lengths[own_start:own_end])
        u += 1
        while u < len(units) and size + sum(lengths[units[u][0]:units[u][1]]) <= budget - prep.context:
            size += sum(lengths[units[u][0]:units[u][1]])
            own_end = units[u][1]
            u += 1
        # context: words before and after, as room allows
        room = budget - size
        left = right = 0
        start, end = own_start, own_end
        while room > 0 and (start > 0 or end < len(lengths)):
            grew = False
            if start > 0 and left < prep.context and lengths[start - 1] <= room:
                start -= 1
                room -= lengths[start]
                left += lengths[start]
                grew = True
            if end < len(lengths) and right < prep.context and lengths[end] <= room:
                room -= lengths[end]
                right += lengths[end]
                end += 1
                grew = True
            if not grew:
                break
        ids = [tokenizer.cls_id]
        first, last = [], []
        for w in range(start, end):
            first.append(len(ids))
            ids.extend(subword_ids[w][:budget])
            last.append(len(ids))
        ids.append(tokenizer.sep_id)
        windows.append(Window(start, end, own_start, own_end, ids, first, last))
    return windows


# --------------------------------------------------------------------------- relation candidates


#: bucket upper bounds of the relation head's list features (see :func:`pair_features`)
DISTANCE_BUCKETS = (0, 1, 2, 3, 5, 8, 12, 20, 35)
COUNT_BUCKETS = (0, 1, 2, 4)
FEATURE_SIZES = (len(DISTANCE_BUCKETS) + 1, len(COUNT_BUCKETS) + 1, 3, 3, 3, 4, 2, 2)


def _bucket(value: int, bounds: Sequence[int]) -> int:
    return next((k for k, b in enumerate(bounds) if value <= b), len(bounds))


def candidate_pairs(spans: Sequence[tuple[int, int, str]], sentence_of_word: Sequence[int],
                    scheme: Scheme = POLITICAL) -> list[tuple[int, int]]:
    """Index pairs (head, tail) of entities in one sentence whose types some relation allows."""
    allowed = scheme.candidate_pairs
    pairs = []
    for i, (a0, _, at) in enumerate(spans):
        for j, (b0, _, bt) in enumerate(spans):
            if i != j and (at, bt) in allowed and sentence_of_word[a0] == sentence_of_word[b0]:
                pairs.append((i, j))
    return pairs


def pair_features(spans: Sequence[tuple[int, int, str]], i: int, j: int, separators: tuple[list[int], list[int]]) -> list[int]:
    """What tells a pair in a list apart: how far, and what stands between the two mentions.

    Bucketed: words between; entities between; entities of the head's type and of the
    tail's type between; ``;`` and ``,`` between; whether the tail is the nearest mention of
    its type to the head, and the head the nearest of its type to the tail. "A, Bí thư X;
    B, Chủ tịch Y" — B's title is far from A, with a ``;`` and another PER between.

    >>> spans = [(0, 1, "PER"), (2, 3, "POS"), (4, 5, "PER"), (6, 7, "POS")]   # A , t1 ; B , t2
    >>> seps = ([0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 2, 2])
    >>> pair_features(spans, 0, 1, seps), pair_features(spans, 0, 3, seps)
    ([1, 0, 0, 0, 0, 1, 1, 1], [4, 2, 1, 1, 1, 2, 0, 0])
    """
    (a0, a1, at), (b0, b1, bt) = spans[i], spans[j]
    lo, hi = (a1, b0) if a0 < b0 else (b1, a0)
    between = [s for s in spans if s[0] >= lo and s[1] <= hi]
    semis, commas = separators
    gap = max(0, hi - lo)
    hi_c = min(hi, len(semis) - 1)
    lo_c = min(lo, hi_c)

    def nearest(x0: int, ytype: str, y0: int) -> int:
        dist = abs(y0 - x0)
        return int(not any(s[2] == ytype and s[0] != y0 and abs(s[0] - x0) < dist for s in spans))

    return [_bucket(gap, DISTANCE_BUCKETS), _bucket(len(between), COUNT_BUCKETS),
            min(2, sum(s[2] == at for s in between)), min(2, sum(s[2] == bt for s in between)),
            min(2, semis[hi_c] - semis[lo_c]), min(3, commas[hi_c] - commas[lo_c]),
            nearest(a0, bt, b0), nearest(b0, at, a0)]

"""Text stage: normalisation with an exact offset map, sentences, tokens and words.

Everything the model sees is *normalised* text (NFC, one tone-mark style,
plain spaces), but every offset vnpol returns or consumes refers to the
user's *raw* text. :class:`NormalizedText` keeps the map between the two.

>>> raw = "Thủ tướng tiếp Đại sứ Nhật Bản, uỷ viên"
>>> n = normalize(raw)
>>> n.text[-7:]
'ủy viên'
>>> start, end = n.to_raw_span(len(n.text) - 7, len(n.text) - 5)
>>> (start, end), raw[start:end]
((32, 34), 'uỷ')
"""
from __future__ import annotations

import re
import unicodedata
from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

# --------------------------------------------------------------------------- normalisation

#: Characters removed from what the model sees (zero-width and soft hyphen).
_DROPPED = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")
#: Characters that become a plain space.
_SPACES = frozenset("\u00a0\u2007\u202f\u2002\u2003\u2009\u3000\t\x0b\x0c")

_TONES = ("\u0300", "\u0301", "\u0303", "\u0309", "\u0323")  # huyền sắc ngã hỏi nặng
# Old style puts the tone on the second vowel of open "oa", "oe", "uy" (hoà, khoẻ, thuỷ);
# the new style used by the seeds and most current news puts it on the first (hòa, khỏe, thủy).
_OLD_STYLE_PAIRS = {"o": "ae", "u": "y"}


def _split_tone(ch: str) -> tuple[str, str]:
    """Return (character without tone, tone mark or '')."""
    decomposed = unicodedata.normalize("NFD", ch)
    tone = next((m for m in decomposed if m in _TONES), "")
    if not tone:
        return ch, ""
    return unicodedata.normalize("NFC", decomposed.replace(tone, "")), tone


def _with_tone(ch: str, tone: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", ch) + tone)


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


_PAIR_FIRST = re.compile(r"[oOuU](?=.)", re.S)  # where an old-style pair can start: bare o/u before another character


def _new_style_tones(chars: list[str]) -> None:
    """Move old-style tone marks in open ``oa``/``oe``/``uy`` syllables, in place.

    Length-preserving: one character is exchanged for one character.
    """
    n = len(chars)
    for m in _PAIR_FIRST.finditer("".join(chars)):
        i = m.start() + 1
        first, second = chars[i - 1], chars[i]
        base1 = first.lower()
        bare2, tone = _split_tone(second)
        if not tone or bare2.lower() not in _OLD_STYLE_PAIRS[base1]:
            continue
        if i + 1 < n and (_is_letter(chars[i + 1]) or unicodedata.combining(chars[i + 1])):
            continue  # closed syllable (hoàn, thuyền): both styles agree; or stray marks follow
        if base1 == "u" and i >= 2 and chars[i - 2].lower() == "q":
            continue  # "quý": u belongs to the consonant qu
        if i >= 2 and _is_letter(chars[i - 2]) and base1 == "o" and chars[i - 2].lower() in "aeiouy":
            continue
        chars[i - 1] = _with_tone(first, tone)
        chars[i] = bare2


@dataclass(frozen=True)
class NormalizedText:
    """Normalised text plus the map from each of its characters back to the raw text.

    ``raw_start[i]``/``raw_end[i]`` delimit the raw characters that produced
    normalised character ``i``.
    """

    raw: str
    text: str
    raw_start: Sequence[int]  # compact int arrays: a 5 MB text costs 80 MB of map, not 400
    raw_end: Sequence[int]

    def to_raw_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a normalised span ``[start, end)`` (``end > start``) to the raw text."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"span ({start}, {end}) outside normalised text of length {len(self.text)}")
        return self.raw_start[start], self.raw_end[end - 1]

    def from_raw_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a raw span to the smallest normalised span that covers it."""
        import bisect

        s = bisect.bisect_right(self.raw_end, start)  # first char whose raw end > start
        e = bisect.bisect_left(self.raw_start, end)  # chars with raw start < end
        return s, max(e, s)


def _clusters(raw: str) -> Iterable[tuple[int, int]]:
    """Yield (start, end) of each base character with its following combining marks."""
    i, n = 0, len(raw)
    while i < n:
        j = i + 1
        if raw[i] == "\r" and j < n and raw[j] == "\n":
            j += 1
        elif raw[i] != "\n":
            while j < n and unicodedata.combining(raw[j]):
                j += 1
        yield i, j
        i = j


def _is_plain(raw: str) -> bool:
    """True when every cluster of ``raw`` is one character that normalisation keeps as it is."""
    return unicodedata.is_normalized("NFC", raw) and not any(
        c in _DROPPED or c in _SPACES or c == "\r" or unicodedata.combining(c) for c in set(raw))


def normalize(raw: str, *, tones: bool = True) -> NormalizedText:
    """NFC, new-style tone marks (``tones=True``), plain spaces, no zero-width characters."""
    if _is_plain(raw):  # the common case (NFC text, no odd spaces or marks): the map is the identity
        out = list(raw)
        if tones:
            _new_style_tones(out)
        return NormalizedText(raw, "".join(out), array("q", range(len(raw))), array("q", range(1, len(raw) + 1)))
    return _normalize_clusters(raw, tones)


def _normalize_clusters(raw: str, tones: bool) -> NormalizedText:
    """The general path: one base character and its combining marks at a time."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for s, e in _clusters(raw):
        cluster = raw[s:e]
        if cluster in _DROPPED:
            continue
        if cluster in _SPACES:
            composed = " "
        elif cluster == "\r\n" or cluster == "\r":
            composed = "\n"
        else:
            try:
                composed = unicodedata.normalize("NFC", cluster)
            except UnicodeError:  # pragma: no cover - defensive: lone surrogates pass NFC in CPython
                composed = cluster
        for ch in composed:
            out.append(ch)
            starts.append(s)
            ends.append(e)
    if tones:
        _new_style_tones(out)
    return NormalizedText(raw, "".join(out), array("q", starts), array("q", ends))


# --------------------------------------------------------------------------- sentences

#: Words that end with a dot without ending a sentence (case-sensitive).
ABBREVIATIONS = frozenset(
    "TP Tp tp TS ThS Th.S PGS GS BS KS NXB Q P Mr Mrs Ms Dr St TT Ths Tr tr v.v vv Số số No".split()
)
_CLOSERS = "\"'”’»)]"
_ENDERS = ".!?;…"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Split at ``. ! ? ;`` (and ``…``) followed by space, and at every line break.

    Returns (start, end) spans into ``text`` with surrounding white space
    excluded; empty lines produce no sentence. A dot after a known
    abbreviation (``TP.``, ``PGS.``) or a single capital letter (an initial)
    does not end a sentence; dots inside numbers and dates (``1.000``,
    ``4/9/2019``) never do because no space follows them.
    """
    spans: list[tuple[int, int]] = []
    n = len(text)
    start = 0

    def emit(s: int, e: int) -> None:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))

    i = 0
    while i < n:
        ch = text[i]
        if ch in "\n\r\u2028\u2029\x85":
            emit(start, i)
            start = i + 1
        elif ch in _ENDERS:
            j = i + 1
            while j < n and text[j] in _ENDERS:
                j += 1
            while j < n and text[j] in _CLOSERS:
                j += 1
            if j >= n or text[j].isspace():
                if not (ch == "." and j == i + 1 and _dot_is_abbreviation(text, i)):
                    emit(start, j)
                    start = j
            i = j
            continue
        i += 1
    emit(start, n)
    return spans


def _dot_is_abbreviation(text: str, dot: int) -> bool:
    k = dot
    while k > 0 and not text[k - 1].isspace() and text[k - 1] not in "(\"“":
        k -= 1
    word = text[k:dot]
    if word in ABBREVIATIONS:
        return True
    return len(word) == 1 and word.isupper()


def sentence_index(spans: Sequence[tuple[int, int]], position: int) -> int:
    """Index of the sentence span containing ``position`` (-1 if in white space between)."""
    import bisect

    i = bisect.bisect_right([s for s, _ in spans], position) - 1
    if i >= 0 and spans[i][0] <= position < spans[i][1]:
        return i
    return -1


# --------------------------------------------------------------------------- tokens and words

#: Longest run of letters or digits kept as one token; longer runs are cut.
MAX_TOKEN_CHARS = 40
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_TOKEN_RE = re.compile(rf"(?:[^\W_]|[{_MARKS}])+|\S")


def tokenize(text: str) -> list[tuple[int, int]]:
    """Syllable-level tokens: runs of letters/digits, or single other characters.

    >>> t = "Ngày 4/9/2019, Bộ Chính trị"
    >>> [t[s:e] for s, e in tokenize(t)]
    ['Ngày', '4', '/', '9', '/', '2019', ',', 'Bộ', 'Chính', 'trị']
    """
    spans = []
    for m in _TOKEN_RE.finditer(text):
        s, e = m.span()
        while e - s > MAX_TOKEN_CHARS:
            spans.append((s, s + MAX_TOKEN_CHARS))
            s += MAX_TOKEN_CHARS
        spans.append((s, e))
    return spans


SEGMENTERS = ("none", "underthesea", "pyvi")


@lru_cache(maxsize=None)
def _segmenter_function(name: str):
    if name == "underthesea":
        try:
            from underthesea import word_tokenize
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("segmenter 'underthesea' needs: pip install underthesea") from exc
        return lambda s: word_tokenize(s)
    if name == "pyvi":
        try:
            from pyvi import ViTokenizer
        except ImportError as exc:  # pragma: no cover
            raise ImportError("segmenter 'pyvi' needs: pip install pyvi") from exc
        return lambda s: [w.replace("_", " ") for w in ViTokenizer.tokenize(s).split()]
    raise ValueError(f"unknown segmenter {name!r}; expected one of {SEGMENTERS}")


def segment_words(text: str, tokens: Sequence[tuple[int, int]], segmenter: str = "none") -> list[list[int]]:
    """Group token indices into words.

    ``segmenter='none'`` makes each token a word. Otherwise the segmenter's
    multi-syllable words (``Bộ Chính trị`` → one word) are aligned back onto
    the tokens by their characters; whatever the segmenter returns that
    cannot be aligned falls back to one word per token, so no text is lost.
    """
    if segmenter == "none" or not tokens:
        return [[i] for i in range(len(tokens))]
    seg = _segmenter_function(segmenter)
    words: list[list[int]] = []
    t = 0  # tokens are in text order: one pointer walks them once over all sentences (linear in the text)
    for sent_start, sent_end in split_sentences(text) or [(0, len(text))]:
        while t < len(tokens) and tokens[t][0] < sent_start:
            t += 1
        u = t
        while u < len(tokens) and tokens[u][1] <= sent_end:
            u += 1
        idx, t = list(range(t, u)), u
        if not idx:
            continue
        try:
            pieces = seg(text[sent_start:sent_end])
        except Exception:  # a third-party segmenter failing must not lose text
            pieces = []
        words.extend(_align_words(text, tokens, idx, pieces))
    covered = {i for w in words for i in w}
    # tokens outside every sentence span cannot exist (sentences cover all non-space text)
    assert len(covered) == len(tokens), "segmentation lost tokens"
    words.sort(key=lambda w: w[0])
    return words


def _align_words(text: str, tokens, idx: list[int], pieces: list[str]) -> list[list[int]]:
    words: list[list[int]] = []
    k = 0  # position in idx
    for piece in pieces:
        target = "".join(piece.split())
        if not target:
            continue
        group: list[int] = []
        acc = ""
        while k < len(idx) and len(acc) < len(target):
            s, e = tokens[idx[k]]
            acc += text[s:e]
            group.append(idx[k])
            k += 1
        if acc != target:
            # misaligned: give every token of this group its own word and resynchronise
            words.extend([i] for i in group)
            continue
        words.append(group)
    words.extend([i] for i in idx[k:])
    return words

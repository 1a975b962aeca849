"""Encoding and model stages: labels on first subwords, windows that never drop text, valid BIO decoding."""
import json

import numpy as np
import pytest

from vnpol.corpus import Document, Entity
from vnpol.decoding import spans_from_tags, viterbi, viterbi_batch
from vnpol.encoding import Preprocessing, SubwordTokenizer, encode_document
from vnpol.saving import check_model_dir
from vnpol.schema import POLITICAL

LABELS = POLITICAL.bio_labels()


class CharTokenizer:
    """A slow-tokenizer stand-in with no offset mapping: one subword per character."""

    is_fast = False
    cls_token_id, sep_token_id, unk_token_id, pad_token_id = 0, 2, 3, 1
    bos_token_id = eos_token_id = None

    def encode(self, word, add_special_tokens=False):
        return [10 + (ord(c) % 500) for c in word]


def test_labels_sit_on_words_and_map_back_to_raw_offsets():
    text = "Sáng 4/9, Tổng Bí thư Nguyễn Phú Trọng làm việc."
    doc = Document("d", text, [Entity("T1", 0, 8, "DATE", "Sáng 4/9"), Entity("T2", 10, 21, "POS", "Tổng Bí thư"),
                               Entity("T3", 22, 38, "PER", "Nguyễn Phú Trọng")])
    enc = encode_document(doc, SubwordTokenizer(CharTokenizer()), Preprocessing(), with_labels=True)
    words = [text[s:e] for s, e in enc.words]
    tags = [LABELS[i] for i in enc.labels]
    assert list(zip(words, tags))[:10] == [("Sáng", "B-DATE"), ("4", "I-DATE"), ("/", "I-DATE"), ("9", "I-DATE"), (",", "O"),
                                           ("Tổng", "B-POS"), ("Bí", "I-POS"), ("thư", "I-POS"), ("Nguyễn", "B-PER"), ("Phú", "I-PER")]
    assert [enc.raw_span(w0, w1) for w0, w1, _, _ in enc.gold_spans] == [(0, 8), (10, 21), (22, 38)]
    w = enc.windows[0]
    # the first subword of "Tổng" is the character "T"
    assert w.input_ids[w.first_subword[5]] == 10 + ord("T") % 500


def test_long_documents_are_windowed_on_sentences_without_losing_a_word():
    sentence = "Thủ tướng Phạm Minh Chính làm việc với tỉnh Quảng Ninh về phát triển kinh tế. "
    text = sentence * 60
    prep = Preprocessing(max_length=128, context=8)
    enc = encode_document(Document("long", text), SubwordTokenizer(CharTokenizer()), prep)
    owned = [i for w in enc.windows for i in range(w.own_start, w.own_end)]
    assert owned == list(range(len(enc.words)))  # every word owned by exactly one window, in order
    assert all(len(w.input_ids) <= 128 for w in enc.windows)
    # windows start on sentence boundaries and carry context from their neighbours
    starts = [enc.sentence_of_word[w.own_start] != enc.sentence_of_word[w.own_start - 1] for w in enc.windows[1:]]
    assert all(starts)
    assert any(w.word_start < w.own_start for w in enc.windows[1:])


def test_a_sentence_longer_than_a_window_is_cut_not_dropped():
    text = " ".join(["Bộ Chính trị"] * 80)
    enc = encode_document(Document("x", text), SubwordTokenizer(CharTokenizer()), Preprocessing(max_length=32, context=4))
    assert sum(w.own_end - w.own_start for w in enc.windows) == len(enc.words) == 240


def test_viterbi_only_produces_valid_bio():
    rng = np.random.default_rng(0)
    for _ in range(50):
        tags = viterbi(np.log(rng.dirichlet(np.ones(len(LABELS)), size=12)), LABELS)
        for prev, cur in zip(["O"] + [LABELS[t] for t in tags], [LABELS[t] for t in tags]):
            if cur.startswith("I-"):
                assert prev[2:] == cur[2:] and prev != "O"


def _valid(tags):
    return all(not cur.startswith("I-") or (prev[2:] == cur[2:] and prev != "O")
               for prev, cur in zip(["O"] + [LABELS[t] for t in tags], [LABELS[t] for t in tags]))


def test_batched_viterbi_finds_the_best_valid_sequence_for_each_sentence():
    import itertools

    rng = np.random.default_rng(1)
    seqs = [np.log(rng.dirichlet(np.ones(len(LABELS)) * 0.3, size=n)).astype(np.float32) for n in (3, 1, 0, 2, 3)]
    paths = viterbi_batch(seqs, LABELS)
    assert [len(p) for p in paths] == [3, 1, 0, 2, 3]
    for lp, path in zip(seqs, paths):
        if not len(lp):
            continue
        best = max(sum(lp[i, t] for i, t in enumerate(c))
                   for c in itertools.product(range(len(LABELS)), repeat=len(lp)) if _valid(c))
        assert _valid(path) and np.isclose(sum(lp[i, t] for i, t in enumerate(path)), best)
        assert viterbi(lp, LABELS) == path  # one at a time or together: the same answer


def test_spans_from_tags():
    ids = {l: i for i, l in enumerate(LABELS)}
    tags = [ids[t] for t in ["B-POS", "I-POS", "B-PER", "I-PER", "I-PER", "O", "B-ORG"]]
    assert spans_from_tags(tags, LABELS) == [(0, 2, "POS"), (2, 5, "PER"), (6, 7, "ORG")]


def test_model_directory_with_pickles_is_refused(tiny_model, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model[0], bad)
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="refusing to load pickled files"):
        check_model_dir(bad)


def test_model_from_another_scheme_is_refused(tiny_model, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_model[0], other)
    meta = json.loads((other / "vnpol.json").read_text())
    meta["scheme"] = "vnpol-annotation-v0"
    (other / "vnpol.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown label scheme 'vnpol-annotation-v0'"):
        check_model_dir(other)


# --------------------------------------------------------------------------- the CRF layer (model.crf)

SMALL = ["O", "B-PER", "I-PER"]


def test_crf_loss_is_the_exact_negative_log_likelihood_of_the_gold_sequences():
    """Two sequences ("Ông Tô Lâm", "Tô Lâm") scored against every tag sequence by enumeration."""
    import itertools

    import torch

    from vnpol.decoding import iob2_constraints
    from vnpol.model import crf_nll

    g = torch.Generator().manual_seed(0)
    emissions = torch.randn(5, 3, generator=g)
    labels = torch.tensor([0, 1, 2, 1, 2])               # O B-PER I-PER | B-PER I-PER
    rows = torch.tensor([0, 0, 0, 1, 1])
    from_to, start = (torch.from_numpy(np.maximum(a, -1e4)) for a in iob2_constraints(SMALL))
    transitions = from_to + torch.randn(3, 3, generator=g)
    start = start + torch.randn(3, generator=g)

    def score(em, tags):
        s = start[tags[0]] + sum(em[i, t] for i, t in enumerate(tags))
        return s + sum(transitions[a, b] for a, b in zip(tags, tags[1:]))

    expected = 0.0
    for em, gold in ((emissions[:3], [0, 1, 2]), (emissions[3:], [1, 2])):
        log_z = torch.logsumexp(torch.stack([score(em, c) for c in itertools.product(range(3), repeat=len(gold))]), 0)
        expected += float(log_z - score(em, gold))
    assert float(crf_nll(emissions, labels, rows, transitions, start)) == pytest.approx(expected / 5, abs=1e-5)


def test_crf_transition_scores_change_the_decoded_path():
    """Emissions that slightly prefer O after B-PER; a learned B-PER -> I-PER score makes "Tô Lâm" one name."""
    lp = np.log(np.array([[0.1, 0.8, 0.1], [0.5, 0.1, 0.4]], dtype=np.float32))
    assert viterbi(lp, SMALL) == [1, 0]
    transitions = np.zeros((3, 3), dtype=np.float32)
    transitions[1, 2] = 1.0
    assert viterbi(lp, SMALL, (transitions, np.zeros(3, dtype=np.float32))) == [1, 2]
    transitions[0, 2] = 50.0                                 # a learned score never overrides IOB2: O -> I-PER stays banned
    assert viterbi(lp[::-1].copy(), SMALL, (transitions, np.zeros(3, dtype=np.float32)))[0] != 2

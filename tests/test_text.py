"""Text stage: normalisation keeps an exact map to the raw text; sentences survive news noise."""
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from vnpol.text import normalize, segment_words, split_sentences, tokenize


def test_old_and_new_tone_marks_normalise_to_one_form():
    assert normalize("hoà thuỷ khoá Uỷ viên").text == "hòa thủy khóa Ủy viên"
    # closed syllables and "qu" are the same in both styles
    assert normalize("hoàn thuyền quý").text == "hoàn thuyền quý"


def test_nfd_input_maps_back_to_raw_offsets():
    raw = unicodedata.normalize("NFD", "Ông Trần Đại Quang")
    n = normalize(raw)
    assert n.text == "Ông Trần Đại Quang"
    s = n.text.index("Trần Đại Quang")
    start, end = n.to_raw_span(s, s + len("Trần Đại Quang"))
    assert raw[start:end] == unicodedata.normalize("NFD", "Trần Đại Quang")
    assert n.from_raw_span(start, end) == (s, s + len("Trần Đại Quang"))


def test_zero_width_and_special_spaces():
    raw = "Bộ\u00a0Chính\u200b trị\r\nHà Nội"
    n = normalize(raw)
    assert n.text == "Bộ Chính trị\nHà Nội"
    s = n.text.index("Hà Nội")
    assert raw[slice(*n.to_raw_span(s, s + 6))] == "Hà Nội"


def test_sentences_split_on_punctuation_and_lines_not_on_dates_or_abbreviations():
    text = "Sáng 4/9/2019, TP. Hồ Chí Minh đón đoàn. Chiều cùng ngày; ông A phát biểu.\n.\nẢnh: TTXVN"
    got = [text[s:e] for s, e in split_sentences(text)]
    assert got == ["Sáng 4/9/2019, TP. Hồ Chí Minh đón đoàn.", "Chiều cùng ngày;", "ông A phát biểu.", ".", "Ảnh: TTXVN"]


def test_sentence_ends_after_closing_quote():
    text = "làm theo tấm gương đạo đức Hồ Chí Minh.\" Tiếp theo"
    assert [text[s:e] for s, e in split_sentences(text)] == ["làm theo tấm gương đạo đức Hồ Chí Minh.\"", "Tiếp theo"]


def test_tokens_are_syllables_and_single_punctuation():
    t = "Chỉ thị số 35-CT/TW"
    assert [t[s:e] for s, e in tokenize(t)] == ["Chỉ", "thị", "số", "35", "-", "CT", "/", "TW"]


def test_underthesea_groups_syllables_into_words():
    t = "Ủy viên Bộ Chính trị Trần Đại Quang"
    toks = tokenize(t)
    words = [" ".join(t[slice(*toks[i])] for i in w) for w in segment_words(t, toks, "underthesea")]
    assert "Bộ Chính trị" in words and "Trần Đại Quang" in words
    assert sum(len(w.split()) for w in words) == len(toks)  # no syllable lost


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_every_normalised_span_maps_inside_the_raw_text(raw):
    n = normalize(raw)
    assert len(n.raw_start) == len(n.text)
    for i in range(len(n.text)):
        s, e = n.to_raw_span(i, i + 1)
        assert 0 <= s < e <= len(raw)
    for s, e in split_sentences(raw):
        assert 0 <= s < e <= len(raw) and raw[s:e].strip() == raw[s:e]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["Thuỷ", "hoà", "Bộ", "Chính", "trị", " ", "\u0301", "\u200b", "\r\n", ".", "😀", "\u05d0"]), max_size=60))
def test_normalised_text_is_nfc_and_maps_to_raw_tokens(parts):
    raw = "".join(parts)
    n = normalize(raw)
    assert unicodedata.normalize("NFC", n.text) == n.text
    previous_start = 0
    for s, e in tokenize(n.text):
        rs, re_ = n.to_raw_span(s, e)
        # the raw span covers the token (a cluster split by a stray mark may add a neighbour)
        assert n.text[s:e] in normalize(raw[rs:re_]).text
        assert rs >= previous_start
        previous_start = rs


@settings(max_examples=300)
@given(st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80),
    st.lists(st.sampled_from(["Thuỷ", "hoà", "khoẻ", "quý", "Hoà", "uỷ", "oà", "Bộ", " ", "\n", "\u0301", "\u00a0", "\r\n", "."]),
             max_size=40).map("".join)))
def test_the_plain_text_fast_path_equals_the_general_path(raw):
    from vnpol.text import _normalize_clusters

    fast, general = normalize(raw), _normalize_clusters(raw, True)
    assert fast.text == general.text
    assert list(fast.raw_start) == list(general.raw_start) and list(fast.raw_end) == list(general.raw_end)


def test_plain_nfc_text_keeps_its_offsets_and_still_gets_new_style_tones():
    raw = "Ông Lê Văn Thuỷ, Phó Chủ tịch UBND tỉnh Khánh Hoà, uỷ viên Ban Thường vụ."
    n = normalize(raw)
    assert n.text == "Ông Lê Văn Thủy, Phó Chủ tịch UBND tỉnh Khánh Hòa, ủy viên Ban Thường vụ."
    assert n.to_raw_span(n.text.index("Khánh Hòa"), n.text.index("Khánh Hòa") + 9) == (raw.index("Khánh Hoà"), raw.index("Khánh Hoà") + 9)


def test_segmenting_a_megabyte_with_underthesea_loses_nothing():
    """The alignment walks the tokens once (it rescanned them per sentence: quadratic on long inputs)."""
    from vnpol.text import segment_words, tokenize

    sentence = "Sáng 4/9, Bộ trưởng Bộ Công an làm việc với Văn phòng Trung ương Đảng về công tác cán bộ.\n"
    text = sentence * (1_000_000 // len(sentence) + 1)
    tokens = tokenize(text)
    words = segment_words(text, tokens, "underthesea")
    assert sorted(i for w in words for i in w) == list(range(len(tokens)))
    first = [text[tokens[w[0]][0]:tokens[w[-1]][1]] for w in words[:12]]
    assert "Bộ trưởng" in first and "Văn phòng" in first  # multi-syllable words were really found

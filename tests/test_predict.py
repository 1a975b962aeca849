"""Predict stage: offsets always index the caller's string; batches survive bad input."""
import json
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vnpol.cli import main
from vnpol.corpus import Document

ARTICLE = "Sáng 4/9, Đoàn Công tác của Bộ Chính trị do Ủy viên Bộ Chính trị, Bộ trưởng Bộ Công an Trần Đại Quang làm Trưởng đoàn đã làm việc với Văn phòng Trung ương Đảng."


def check_offsets(text, doc):
    assert doc.text == text
    ids = {e.id for e in doc.entities}
    for e in doc.entities:
        assert 0 <= e.start < e.end <= len(text)
        assert text[e.start:e.end] == e.text
        assert 0.0 <= e.score <= 1.0
    for r in doc.relations:
        assert r.head in ids and r.tail in ids and 0.0 <= r.score <= 1.0


def test_predict_returns_entities_with_exact_offsets(extractor):
    doc = extractor.predict(ARTICLE)
    check_offsets(ARTICLE, doc)
    assert doc.entities, "the tiny model trained on seeds finds something in a seed-like sentence"


@pytest.mark.parametrize("variant", [
    lambda t: unicodedata.normalize("NFD", t),
    lambda t: t.replace("Ủy", "Uỷ"),
    lambda t: t.replace(", ", ",\r\n\t"),
    lambda t: "\ufeff" + t.replace(" ", "\u00a0", 3),
])
def test_offsets_hold_for_nfd_old_tones_crlf_and_odd_spaces(extractor, variant):
    text = variant(ARTICLE)
    doc = extractor.predict(text)
    check_offsets(text, doc)
    plain = extractor.predict(ARTICLE)
    # normalisation makes the variants look the same to the model
    assert [e.type for e in doc.entities] == [e.type for e in plain.entities]


def test_empty_and_foreign_text(extractor):
    for text in ["", "   \n\t "]:
        doc = extractor.predict(text)
        assert doc.entities == [] and doc.relations == [] and doc.text == text
    check_offsets("The Prime Minister met the delegation.", extractor.predict("The Prime Minister met the delegation."))


def test_batch_keeps_order_ids_and_thresholds(extractor):
    texts = [ARTICLE, "", ARTICLE * 30]
    docs = extractor.predict_batch(texts, ids=["a", "b", "c"], batch_size=3)
    assert [d.id for d in docs] == ["a", "b", "c"]
    for t, d in zip(texts, docs):
        check_offsets(t, d)
    # a threshold given to one call filters that call's spans by score, and only that call's
    found = docs[0].entities
    cut = sorted(e.score for e in found)[len(found) // 2]
    [strict] = extractor.predict_batch([ARTICLE], entity_threshold=cut)
    assert [(e.start, e.end) for e in strict.entities] == [(e.start, e.end) for e in found if e.score >= cut]
    alone = extractor.predict_batch([ARTICLE])[0].entities
    assert [(e.id, e.start, e.end, e.type, e.text) for e in alone] == [(e.id, e.start, e.end, e.type, e.text) for e in found]
    # in another batch the windows are padded to other widths: scores agree to float rounding, not bit for bit
    assert [e.score for e in alone] == pytest.approx([e.score for e in found], abs=1e-5)


def test_documents_round_trip_through_json(extractor):
    doc = extractor.predict(ARTICLE)
    again = Document.from_dict(json.loads(doc.to_json()))
    assert again.to_dict() == doc.to_dict()
    assert [r.as_tuple() for r in again.roles] == [r.as_tuple() for r in doc.roles]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
       | st.lists(st.sampled_from(["Bộ Chính trị", "Thuỷ", " ", "\u0301", "\u200b", "\r\n", ".", "😀", "שלום", "\x07", "\ud800", "\u202e", "Trần Đại Quang"]),
                  max_size=40).map("".join))
def test_arbitrary_unicode_never_breaks_offsets(extractor, text):
    check_offsets(text, extractor.predict(text))


def test_very_long_line_is_tagged_without_loss(extractor):
    """A 100,000-character line with no sentence end: its windows predict every word exactly once."""
    from vnpol.encoding import encode_document

    text = ("Bộ Chính trị họp " * 6000)[:100_000]
    enc = encode_document(Document("long", text), extractor.tokenizer, extractor.prep)
    own = [(w.own_start, w.own_end) for w in enc.windows]
    assert len(own) > 100 and own[0][0] == 0 and own[-1][1] == len(enc.words)
    assert all(a[1] == b[0] for a, b in zip(own, own[1:])), "windows neither skip nor repeat words"
    assert all(len(w.input_ids) <= extractor.prep.max_length for w in enc.windows)
    doc = extractor.predict(text)
    check_offsets(text, doc)


def test_cli_predict_writes_results_and_error_records(tiny_model, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text(ARTICLE, encoding="utf-8")
    (inputs / "b_binary.txt").write_bytes(b"\x00\x01\x02PNG")
    (inputs / "c_empty.txt").write_text("", encoding="utf-8")
    (inputs / "d_latin1.txt").write_bytes("Thủ tướng".encode("utf-16"))
    with open(inputs / "e_big.txt", "wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps({"id": "j1", "text": ARTICLE, "date": "2019-09-04"}, ensure_ascii=False) + "\n{not json\n"
                     + json.dumps({"id": "j3", "text": "Bộ Công an"}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["predict", "--model", str(tiny_model[0]), str(inputs), str(lines), "--output", str(out), "--device", "cpu",
            "--max-chars", "1000000", "--quiet"]
    assert main(args) == 0
    records = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [str(inputs / n) for n in ("a.txt", "b_binary.txt", "c_empty.txt", "d_latin1.txt", "e_big.txt")] + [
        "j1", f"{lines}:2", "j3"]
    errors = {r["id"].rsplit("/", 1)[-1]: r["error"] for r in records if "error" in r}
    assert errors["b_binary.txt"].startswith("binary file")
    assert errors["c_empty.txt"].startswith("empty input")
    assert errors["d_latin1.txt"].startswith("binary file") or errors["d_latin1.txt"].startswith("not UTF-8")
    assert errors["e_big.txt"].startswith("too large")
    assert errors["lines.jsonl:2"].startswith("line 2:")
    good = [r for r in records if "error" not in r]
    assert good[1]["date"] == "2019-09-04" and "roles" in good[1]
    for r in good:
        check_offsets(r["text"], Document.from_dict(r))
    assert main(args + ["--strict"]) == 1
    # --resume skips what is already there
    before = out.read_text(encoding="utf-8")
    assert main(args + ["--resume"]) == 0
    assert out.read_text(encoding="utf-8") == before


def test_multi_process_launch_splits_inputs_and_merges_in_order(tiny_model, tmp_path):
    """torchrun is what `accelerate launch --multi_gpu` runs under the hood; on CPU it starts two gloo processes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        (src / f"{i:02d}.txt").write_text(f"Ngày {i + 1}/9/2019, Thủ tướng Nguyễn Xuân Phúc làm việc với tỉnh Quảng Ninh.", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    torchrun = Path(sys.executable).with_name("torchrun")
    run = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "vnpol", "predict", "--model", str(tiny_model[0]), str(src),
                          "--output", str(out), "--device", "cpu", "--quiet"],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "process 1/2: 3 article(s)" in run.stderr and "process 2/2: 2 article(s)" in run.stderr
    ids = [json.loads(l)["id"] for l in out.read_text(encoding="utf-8").splitlines()]
    assert ids == [str(src / f"{i:02d}.txt") for i in range(5)]
    assert not list(tmp_path.glob("out.jsonl.part*"))


def test_lone_surrogates_from_json_input_are_tagged_and_written(tiny_model, extractor, tmp_path):
    text = json.loads('"Th\\u1ee7 t\\u01b0\\u1edbng \\ud800 Nguy\\u1ec5n Xu\\u00e2n Ph\\u00fac"')
    check_offsets(text, extractor.predict(text))
    src = tmp_path / "s.jsonl"
    src.write_text('{"id": "s1", "text": "Th\\u1ee7 t\\u01b0\\u1edbng \\ud800 Ph\\u00fac"}\n', encoding="utf-8")
    out = tmp_path / "o.jsonl"
    assert main(["predict", "--model", str(tiny_model[0]), str(src), "-o", str(out), "--device", "cpu", "--quiet"]) == 0
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["id"] == "s1" and record["text"] == json.loads('"Th\\u1ee7 t\\u01b0\\u1edbng \\ud800 Ph\\u00fac"')


def test_cli_errors_say_what_to_do(tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path / "none"), "x.txt", "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "no such model directory" in err and "python scripts/train.py --output" in err


def test_precision_is_chosen_for_the_hardware_and_can_be_forced(tiny_model):
    import torch

    from vnpol.model import cpu_has_fast_bf16, resolve_precision
    from vnpol.predict import load

    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int8", torch.device("cpu"))

    seen = {}
    for precision in ("fp32", "bf16"):
        ex = load(tiny_model[0], device="cpu", precision=precision)
        linear = next(m for m in ex.model.encoder.modules() if isinstance(m, torch.nn.Linear))  # layer norms stay fp32
        hook = linear.register_forward_hook(lambda m, i, out: seen.__setitem__(precision, out.dtype))
        doc = ex.predict(ARTICLE)
        hook.remove()
        check_offsets(ARTICLE, doc)
        assert ex.model.encoder.embeddings.word_embeddings.weight.dtype == torch.float32  # weights are never cast on CPU
    assert seen == {"fp32": torch.float32, "bf16": torch.bfloat16}


def test_cli_predict_precision_option(tiny_model, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text(ARTICLE, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(src), "--model", str(tiny_model[0]), "--output", str(out), "--precision", "fp32", "--quiet"]) == 0
    rec = json.loads(out.read_text(encoding="utf-8"))
    assert rec["text"] == ARTICLE and rec["entities"]

"""Formats round-trip exactly on the seed gold; the HTML view renders in a real browser."""
import shutil
import subprocess

import pytest

from vnpol.cli import main
from vnpol.formats import read_conll, read_documents, write_documents
from vnpol.render import render_html


@pytest.mark.parametrize("fmt, name", [("doccano", "gold.doccano.jsonl"), ("labelstudio", "gold.ls.json"), ("brat", "brat"), ("jsonl", "g.jsonl")])
def test_round_trip_on_seed_gold(seed_docs, tmp_path, fmt, name):
    write_documents(seed_docs, tmp_path / name, fmt)
    back = read_documents(tmp_path / name, fmt)
    assert [d.to_dict() for d in back] == [d.to_dict() for d in seed_docs]


def test_cli_convert(tmp_path):
    assert main(["convert", "seeds/gold.jsonl", "--to", "brat", "-o", str(tmp_path / "b")]) == 0
    ann = (tmp_path / "b" / "000_48322b96a03dd7b8.ann").read_text(encoding="utf-8").splitlines()
    assert ann[0].startswith("T1\tORG 0 13\tĐoàn công tác")
    assert main(["convert", str(tmp_path / "b"), "--from", "brat", "--to", "jsonl", "-o", str(tmp_path / "x.jsonl")]) == 0
    assert main(["validate", str(tmp_path / "x.jsonl")]) == 0


def test_conll_bio_import(tmp_path):
    f = tmp_path / "ner.conll"
    f.write_text("Ông N O\nNguyễn_Phú_Trọng Np B-PER\nthăm V O\nHà_Nội Np B-LOC\n. CH O\n\nBộ_Công_an Np B-ORG\nhọp V O\n", encoding="utf-8")
    (doc,) = read_conll(f)
    assert doc.text == "Ông Nguyễn Phú Trọng thăm Hà Nội .\nBộ Công an họp"
    assert [(e.type, e.text) for e in doc.entities] == [("PER", "Nguyễn Phú Trọng"), ("LOC", "Hà Nội"), ("ORG", "Bộ Công an")]
    assert doc.meta["entity_only"] is True


def test_render_page_has_legend_highlights_relations_and_roles(seed_docs):
    page = render_html(seed_docs[:1])
    assert page.count('class="ent ent-') == len(seed_docs[0].entities)
    assert "—HAS_POSITION→" in page and "<th>person</th>" in page
    for t in ("PER", "ORG", "LOC", "POS", "DATE", "DOC", "EVENT"):
        assert f">{t}</span>" in page


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_render_in_headless_chromium_without_console_errors(seed_docs, tmp_path):
    """Needs Debian's chromium (installed by .ci/run and `make test`)."""
    browser = _chromium()
    assert browser, "chromium is not installed: apt-get install chromium (the Makefile does this)"
    page = tmp_path / "view.html"
    page.write_text(render_html(seed_docs[:2]), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "shot.png"
    run = subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, run.stderr[-2000:]
    console_errors = [l for l in run.stderr.splitlines() if "CONSOLE" in l and ("ERROR" in l or "Uncaught" in l)]
    assert console_errors == []
    # the highlights are really drawn: the screenshot holds the ORG highlight colour
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    colours = {c for _, c in img.getcolors(maxcolors=1 << 20)}
    assert (0xA8, 0xC8, 0xF4) in colours and (0xF4, 0xA9, 0xA8) in colours
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count('class="ent ent-') == len(seed_docs[0].entities) + len(seed_docs[1].entities)


def test_training_on_conll_learns_entities_only(tmp_path, seed_split):
    from conftest import tiny_config
    from vnpol.encoding import SubwordTokenizer, encode_document
    from vnpol.batches import window_examples
    from vnpol.schema import POLITICAL
    from vnpol.formats import load_corpus
    from vnpol.training import train

    f = tmp_path / "vlsp.conll"
    f.write_text("Ông O\nNguyễn_Phú_Trọng B-PER\nlàm_việc O\nvới O\nBộ_Công_an B-ORG\n. O\n\n" * 20, encoding="utf-8")
    docs = load_corpus([str(f)], "training")
    assert len(docs) == 1 and docs[0].meta["entity_only"]

    class Chars:
        is_fast, cls_token_id, sep_token_id, unk_token_id, pad_token_id = False, 0, 2, 3, 1

        def encode(self, w, add_special_tokens=False):
            return [ord(c) % 100 + 5 for c in w]

    examples = window_examples(encode_document(docs[0], SubwordTokenizer(Chars()), __import__("vnpol.encoding").encoding.Preprocessing(), with_labels=True), POLITICAL)
    assert all(ex.pairs == [] for ex in examples)  # no "no relation" examples from unannotated relations
    cfg = tiny_config(seed_split, **{"data.train": f"[{f}, {seed_split / 'train.jsonl'}]", "training.epochs": 1, "data.test": "[]"})
    train(cfg, tmp_path / "m", say=lambda *_: None)
    assert (tmp_path / "m" / "model.safetensors").exists()

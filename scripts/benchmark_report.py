"""Keep docs/benchmarks.md in named sections so the accuracy and speed scripts can each rewrite their own."""
from __future__ import annotations

import re
from pathlib import Path

HEADER = "# Benchmarks\n\nWritten by `scripts/benchmark_accuracy.py` and `scripts/benchmark_speed.py`; every number below was printed by them on the machine named in each section.\n"


def write_section(path: Path, name: str, body: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")

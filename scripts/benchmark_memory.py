"""Peak resident memory and time for tagging one very long text.

    python scripts/benchmark_memory.py --model models/demo --megabytes 5

The text is the seed articles repeated to the requested size (UTF-8 bytes).
Prints the peak resident memory of the process (model included), the time,
and how many entities came back; checks every offset against the text.
"""
import argparse
import json
import resource
import time
from pathlib import Path

from vnpol.predict import load

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--megabytes", type=float, default=5.0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    seeds = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "seeds").glob("*.txt")))
    target = int(args.megabytes * 1_000_000)
    reps = target // len(seeds.encode("utf-8")) + 1
    text = ("\n".join([seeds] * reps)).encode("utf-8")[:target].decode("utf-8", errors="ignore")
    extractor = load(args.model, device=args.device)
    after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    doc = extractor.predict(text)
    seconds = time.perf_counter() - start
    assert all(text[e.start:e.end] == e.text for e in doc.entities)
    print(json.dumps({"model": args.model, "encoder": extractor.meta.get("encoder"), "text_bytes": len(text.encode("utf-8")),
                      "text_chars": len(text), "seconds": round(seconds, 1), "entities": len(doc.entities),
                      "relations": len(doc.relations), "peak_rss_mb_after_load": round(after_load, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}, indent=1))


if __name__ == "__main__":
    main()

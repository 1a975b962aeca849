"""Speed and memory of `vnpol.roles.collect` on synthetic prediction records.

    python scripts/benchmark_roles.py [--records 10000]

Records are the seed gold documents repeated with varied ids and dates (real
entity and relation density). Prints seconds, records/s and peak resident memory.
"""
import argparse
import json
import resource
import time
from pathlib import Path

from vnpol.corpus import Document, read_jsonl
from vnpol.roles import collect

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000)
    args = ap.parse_args()
    seeds = read_jsonl(ROOT / "seeds" / "gold.jsonl")
    docs = [Document(f"{seeds[i % 5].id}-{i}", seeds[i % 5].text, seeds[i % 5].entities, seeds[i % 5].relations,
                     {"date": f"{2010 + i % 16}-{1 + i % 12:02d}-{1 + i % 28:02d}"}) for i in range(args.records)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    table = collect(docs)
    seconds = time.perf_counter() - start
    result = {"records": args.records, "seconds": round(seconds, 2), "records_per_s": round(args.records / seconds),
              "roles_rows": len(table.roles), "meets_rows": len(table.meets),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "rss_after_loading_records_mb": round(rss_before, 1)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

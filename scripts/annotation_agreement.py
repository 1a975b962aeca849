"""Agreement between two independent annotation passes of the seed articles.

    python scripts/annotation_agreement.py seeds/markup/pass_a seeds/markup/pass_b [--diff]

Prints strict entity F1 and relation F1 (pass B scored against pass A) per
article and overall, and with --diff every disagreement to adjudicate.
"""
import argparse
from pathlib import Path

from vnpol.markup import read_markup_file
from vnpol.evaluation import entity_items, relation_items, score_sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pass_a")
    ap.add_argument("pass_b")
    ap.add_argument("--diff", action="store_true", help="list every disagreement")
    args = ap.parse_args()
    all_e, all_r = ([], []), ([], [])
    print("| article | entities A | entities B | entity F1 | relations A | relations B | relation F1 |")
    print("|---|---|---|---|---|---|---|")
    for fa in sorted(Path(args.pass_a).glob("*.txt")):
        fb = Path(args.pass_b) / fa.name
        if not fb.exists():
            print(f"| {fa.stem} | missing pass B |")
            continue
        a, b = read_markup_file(fa), read_markup_file(fb)
        ea, eb, ra, rb = entity_items(a), entity_items(b), relation_items(a), relation_items(b)
        all_e[0].extend(ea); all_e[1].extend(eb); all_r[0].extend(ra); all_r[1].extend(rb)
        fe, fr = score_sets(ea, eb)["micro"].f1, score_sets(ra, rb)["micro"].f1
        print(f"| {fa.stem} | {len(ea)} | {len(eb)} | {fe:.3f} | {len(ra)} | {len(rb)} | {fr:.3f} |")
        if args.diff:
            for name, x, y, doc in (("entity", ea, eb, a), ("relation", ra, rb, a)):
                for item in sorted(set(x) - set(y)):
                    print(f"    only A {name}: {item[0]} {doc.text[item[1][1]:item[1][2]]!r} {item[1][1:]}")
                for item in sorted(set(y) - set(x)):
                    print(f"    only B {name}: {item[0]} {b.text[item[1][1]:item[1][2]]!r} {item[1][1:]}")
    print(f"| all | {len(all_e[0])} | {len(all_e[1])} | {score_sets(*all_e)['micro'].f1:.3f} | "
          f"{len(all_r[0])} | {len(all_r[1])} | {score_sets(*all_r)['micro'].f1:.3f} |")


if __name__ == "__main__":
    main()

"""Evaluate a trained model on annotated data: python scripts/evaluate.py --model DIR --data FILE [--report-dir DIR]"""
import sys

from vnpol.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))

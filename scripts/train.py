"""Train a vnpol model from a YAML config: python scripts/train.py [--config FILE] [--output DIR] [--set key=value ...] [--resume]"""
import sys

from vnpol.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

"""The benchmark scripts' --quick modes run end to end (so they never rot); their numbers are not checked here."""
import json
import os
import subprocess
import sys

from conftest import ROOT


def _run(script, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--quick", "--output", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_accuracy_benchmark_quick(tmp_path):
    out = _run("benchmark_accuracy.py", tmp_path)
    report = json.loads((tmp_path / "benchmarks_accuracy_quick.json").read_text(encoding="utf-8"))
    assert set(report["peer"]) == {"underthesea.ner", "vnpol"}
    assert [row["train_documents"] for row in report["learning_curve"]][0] == 10
    assert "## Accuracy on the five real seed articles" in out and (tmp_path / "learning_curve_quick.png").exists()


def test_speed_benchmark_quick(tmp_path):
    _run("benchmark_speed.py", tmp_path)
    result = json.loads((tmp_path / "benchmarks_speed_quick.json").read_text(encoding="utf-8"))
    for part in ("seeds", "collection"):
        row = result[part]
        assert row["windows"] > 0 and row["vnpol_articles_per_s"] > 0 and 0 < row["encoder_share_of_vnpol"] <= 1
        assert "vnpol_speedup_over_hf" in row
        if result["precision"] != "fp32":  # the pipeline is also timed under vnpol's precision, to tell the gains apart
            assert row["hf_same_precision_articles_per_s"] > 0
    assert result["precision"] in ("fp32", "bf16")
    assert result["training"]["epoch_s"] > 0


def test_learning_curve_subsets_cover_the_genres_evenly():
    sys.path.insert(0, str(ROOT / "scripts"))
    from benchmark_accuracy import balanced_subset

    from vnpol.corpus import read_jsonl

    docs = read_jsonl(ROOT / "data" / "authored" / "train.jsonl")  # sorted by genre, 4 per genre
    genres = {d.meta["genre"] for d in docs}
    ten = balanced_subset(docs, 10)
    assert len(ten) == 10 and len({d.meta["genre"] for d in ten}) == 10
    assert [d.id for d in ten[:3]] == ["a01", "a06", "b01"]  # one per genre in file order
    twenty_four = balanced_subset(docs, 24)
    assert all(sum(d.meta["genre"] == g for d in twenty_four) == 2 for g in genres)
    assert balanced_subset(docs, 10) == ten  # deterministic
    assert len(balanced_subset(docs, 500)) == len(docs)


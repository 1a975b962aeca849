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
    assert result["training"]["epoch_s"] > 0

"""`vnpol predict --engine ray`: the same records as the default engine, nothing lost or doubled across a kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install -e '.[ray]' (make install does)")
pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from vnpol.cli import main  # noqa: E402
from vnpol.shard_io import iter_collection, shard_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BAD_UTF8 = "not UTF-8 (invalid byte at offset 2); convert it with iconv -t UTF-8"
BAD_LINE = "line 4: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
NULL_ROW = 'row 2: expected a string "text" value, got null'


def authored_texts(n: int, chars: int) -> list[str]:
    docs = [json.loads(line) for line in (ROOT / "data" / "authored" / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    return [docs[i % len(docs)]["text"][:chars] for i in range(n)]


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """A folder of 11 inputs with a bad one in each format: .txt, JSON Lines (line 4) and Parquet (row 2)."""
    d = tmp_path_factory.mktemp("collection")
    texts = authored_texts(8, 700)
    (d / "01-article.txt").write_text(texts[0], encoding="utf-8")
    (d / "02-latin1.txt").write_bytes(b"Ha\xf4 Noi")
    lines = [json.dumps({"id": f"n{i}", "date": "2021-09-10", "text": t}, ensure_ascii=False) for i, t in enumerate(texts[1:6])]
    lines[3:3] = ["{broken", ""]  # line 4 is not JSON, line 5 is blank (skipped, as by the default engine)
    (d / "03-news.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"text": [texts[6], None, texts[7]], "source": ["a", "b", "c"]}), d / "04-more.parquet",
                   row_group_size=2)
    return d


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def default_records(tiny_model, collection, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("default") / "out.jsonl"
    assert main(["predict", "--model", str(tiny_model[0]), str(collection), "--output", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def run_ray(model: Path, inputs: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--engine", "ray", "--model", str(model), str(inputs), "--output", str(out),
                 "--device", "cpu", "--quiet", *extra])


def without_index(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "_index"} for r in records]


@pytest.mark.parametrize("fmt,workers", [("jsonl", 2), ("parquet", 1)])
def test_ray_engine_writes_the_records_of_the_default_engine(ray_local, tiny_model, collection, default_records,
                                                             tmp_path, fmt, workers):
    out = tmp_path / "shards"
    assert run_ray(tiny_model[0], collection, out, "--format", fmt, "--num-workers", str(workers),
                   "--shard-size", "5") == 0
    assert sorted(p.name for p in out.iterdir()) == ["_plan.json"] + [f"part-00000{n}.{fmt}" for n in range(3)]
    records = list(iter_collection(out))
    assert [r["_index"] for r in records] == list(range(11))
    assert without_index(records) == default_records


def test_bad_inputs_in_the_middle_give_their_error_records_and_the_rest_are_tagged(ray_local, tiny_model, collection,
                                                                                  tmp_path):
    from vnpol.predict import predict_dataset

    out = tmp_path / "shards"
    summary = predict_dataset([collection], tiny_model[0], out, shard_size=4, num_workers=2)
    assert (summary.total, summary.shards, summary.shards_skipped, summary.records) == (11, 3, 0, 11)
    records = {r["_index"]: r for r in iter_collection(out)}
    errors = {i: r for i, r in records.items() if "error" in r}
    assert errors == {
        1: {"_index": 1, "id": str(collection / "02-latin1.txt"), "error": BAD_UTF8},
        5: {"_index": 5, "id": str(collection / "03-news.jsonl") + ":4", "error": BAD_LINE},
        9: {"_index": 9, "id": str(collection / "04-more.parquet") + ":2", "error": NULL_ROW},
    }
    assert summary.errors == [(i, r["id"], r["error"]) for i, r in sorted(errors.items())]
    tagged = [r for i, r in sorted(records.items()) if i not in errors]
    assert [r["id"] for r in tagged] == [str(collection / "01-article.txt"), "n0", "n1", "n2", "n3", "n4",
                                         str(collection / "04-more.parquet") + ":1",
                                         str(collection / "04-more.parquet") + ":3"]
    assert all(r["text"] and isinstance(r["entities"], list) and "roles" in r for r in tagged)
    assert [r["source"] for r in tagged[-2:]] == ["a", "c"]


def test_a_second_run_without_resume_refuses_a_folder_of_shards(ray_local, tiny_model, collection, tmp_path, capsys):
    out = tmp_path / "shards"
    out.mkdir()
    shard_path(out, 0, "jsonl").write_text("{}\n", encoding="utf-8")
    assert run_ray(tiny_model[0], collection, out) == 2
    assert "holds 1 shard file(s) from an earlier run; pass --resume" in capsys.readouterr().err


def test_roles_reads_a_folder_of_shards_as_one_collection(ray_local, tiny_model, collection, default_records, tmp_path,
                                                          capsys):
    out, single = tmp_path / "shards", tmp_path / "single.jsonl"
    assert run_ray(tiny_model[0], collection, out, "--format", "parquet", "--shard-size", "3") == 0
    single.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in default_records), encoding="utf-8")
    capsys.readouterr()
    assert main(["roles", str(out)]) == 0
    from_shards = capsys.readouterr()
    assert main(["roles", str(single)]) == 0
    assert from_shards == capsys.readouterr()


def test_a_killed_run_resumed_ends_with_exactly_one_record_per_input(tiny_model, tmp_path):
    """A real SIGKILL of the whole process group (driver, Ray and its actors) mid-run, then --resume."""
    inputs = tmp_path / "articles.jsonl"
    inputs.write_text("".join(json.dumps({"id": f"a{i}", "text": t}, ensure_ascii=False) + "\n"
                              for i, t in enumerate(authored_texts(160, 1200))), encoding="utf-8")
    out = tmp_path / "shards"
    cmd = [sys.executable, "-m", "vnpol", "predict", "--engine", "ray", "--model", str(tiny_model[0]), str(inputs),
           "--output", str(out), "--device", "cpu", "--quiet", "--shard-size", "4", "--num-cpus", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while not list(out.glob("part-*.jsonl")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()}"
    import psutil

    # Ray's own processes (GCS, raylet, the actors) run in sessions of their own: kill them with the driver,
    # or they finish a few more shards after the count below (seen: 2 counted, 28 written)
    family = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)
    for child in family:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)
    proc.wait(timeout=30)
    written = len(list(out.glob("part-*.jsonl")))
    assert 0 < written < 40, f"the kill should land mid-run ({written} of 40 shards written); stderr: {proc.stderr.read()}"

    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert f"160 input(s) in 40 shard(s), {written} already written" in resumed.stderr
    records = list(iter_collection(out))
    assert [r["_index"] for r in records] == list(range(160))
    assert [r["id"] for r in records] == [f"a{i}" for i in range(160)]
    assert not list(out.glob(".part-*")), "temporary files of the killed run are removed"


def test_importing_vnpol_predict_does_not_import_ray():
    code = "import sys, vnpol.predict, vnpol.cli; assert not [m for m in sys.modules if m.split('.')[0] == 'ray']"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def test_ray_actors_run_the_onnx_backend(ray_local, tiny_model, collection, default_records, tmp_path) -> None:
    """``--backend onnx`` reaches the actors: the same spans as the default engine (PyTorch)."""
    pytest.importorskip("onnxruntime")
    from vnpol.encoders import cache_dir
    from vnpol.runtime import export_key
    from vnpol.saving import load_model

    exported = cache_dir() / "onnx" / f"encoder-{export_key(load_model(tiny_model[0])[0].encoder)}" / "fp32.onnx"
    exported.unlink(missing_ok=True)  # the actors, not an earlier run, must write it
    out = tmp_path / "shards"
    assert run_ray(tiny_model[0], collection, out, "--backend", "onnx") == 0
    assert exported.is_file()
    spans = lambda recs: [[(e["start"], e["end"], e["type"]) for e in r.get("entities", [])] for r in recs]  # noqa: E731
    records = without_index(list(iter_collection(out)))
    assert spans(records) == spans(default_records)
    assert [r.get("error") for r in records] == [r.get("error") for r in default_records]

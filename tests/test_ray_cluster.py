"""`vnpol predict --engine ray --address`: joining a real Ray cluster started with `ray start --head`
(``make test-integration``). The head runs in its own processes, as on a cluster's head node."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install -e '.[ray]' (make install does)")

from vnpol.cli import main  # noqa: E402
from vnpol.shard_io import iter_collection  # noqa: E402

pytestmark = pytest.mark.integration
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A head node with token authentication, as Ray 2.5x clusters run, and the environment a client needs
    (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN: Ray reads them when it is imported, so clients are new processes)."""
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **auth}
    log = temp / "ray-start.log"
    with open(log, "w") as fh:  # a file, not a pipe: the daemons ray start leaves behind keep their stdout open
        started = subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                                  "--disable-usage-stats"], env=env, timeout=180,
                                 stdout=fh, stderr=subprocess.STDOUT)
    assert started.returncode == 0, log.read_text()
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_joining_a_running_cluster_gives_the_records_of_the_default_engine(ray_head, tiny_model, tmp_path):
    inputs = tmp_path / "news.jsonl"
    texts = ["Chiều 5/3, Chủ tịch nước Võ Văn Thưởng tiếp Đại sứ Nhật Bản tại Hà Nội.",
             "Thủ tướng Phạm Minh Chính làm việc với tỉnh Quảng Ninh.", "{not json",
             "Bộ trưởng Bộ Công an Tô Lâm phát biểu tại hội nghị."]
    inputs.write_text("".join((t if t.startswith("{") else json.dumps({"id": f"a{i}", "text": t}, ensure_ascii=False)) + "\n"
                              for i, t in enumerate(texts)), encoding="utf-8")
    single, shards = tmp_path / "single.jsonl", tmp_path / "shards"
    assert main(["predict", "--model", str(tiny_model[0]), str(inputs), "--output", str(single), "--device", "cpu",
                 "--quiet"]) == 0
    address, env = ray_head
    joined = subprocess.run([sys.executable, "-m", "vnpol", "predict", "--engine", "ray", "--address", address,
                             "--model", str(tiny_model[0]), str(inputs), "--output", str(shards), "--device", "cpu",
                             "--quiet", "--shard-size", "2", "--num-workers", "2"],
                            env=env, timeout=600, capture_output=True, text=True)
    assert joined.returncode == 0, joined.stderr[-3000:]
    assert "4 input(s) in 2 shard(s)" in joined.stderr
    records = list(iter_collection(shards))
    assert [r.pop("_index") for r in records] == [0, 1, 2, 3]
    assert records == [json.loads(line) for line in single.read_text(encoding="utf-8").splitlines()]
    assert "error" in records[2] and records[2]["id"].endswith("news.jsonl:3")


def test_an_address_with_no_cluster_names_it_and_what_to_check(tiny_model, tmp_path, capsys):
    inputs = tmp_path / "a.jsonl"
    inputs.write_text(json.dumps({"id": "a", "text": "Thủ tướng làm việc."}, ensure_ascii=False) + "\n", encoding="utf-8")
    address = f"127.0.0.1:{_free_port()}"
    assert main(["predict", "--engine", "ray", "--address", address, "--model", str(tiny_model[0]), str(inputs),
                 "--output", str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == 2
    assert f"cannot join the Ray cluster at {address}: nothing answers there" in capsys.readouterr().err

"""Checkpoints of a training run: weights and optimiser state as safetensors + JSON (no pickle),
directories written atomically, and the learning curves as a picture."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    save_file(tensors, str(path / "optimizer.safetensors"))
    (path / "optimizer.json").write_text(json.dumps({"param_groups": state["param_groups"], "scalars": scalars}), encoding="utf-8")


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path / "optimizer.safetensors"))
    meta = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
    state: dict[int, dict[str, Any]] = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def atomic_dir(final: Path, write) -> None:
    """Call ``write(tmp_dir)`` then move it into place; the old ``final`` survives any crash before the rename."""
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    write(tmp)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def latest_checkpoint(work: Path) -> Path | None:
    ckpts = sorted((work / "checkpoints").glob("epoch-*"), key=lambda p: int(p.name.split("-")[1]))
    complete = [p for p in ckpts if (p / "trainer_state.json").exists()]
    return complete[-1] if complete else None



def plot_curves(metrics_path: Path, png: Path) -> None:
    """Loss and dev F1 per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(l) for l in metrics_path.read_text(encoding="utf-8").splitlines() if l.strip()]
    if not rows:
        return
    epochs = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(epochs, [r["loss"] for r in rows], label="total")
    a.plot(epochs, [r["tag_loss"] for r in rows], label="entities")
    a.plot(epochs, [r["relation_loss"] for r in rows], label="relations")
    a.set_xlabel("epoch"); a.set_title("training loss"); a.legend()
    for key, label in (("dev_entity_f1", "entity F1"), ("dev_relation_f1", "relation F1"), ("dev_roles_f1", "roles F1")):
        if key in rows[0]:
            b.plot(epochs, [r[key] for r in rows], label=label)
    b.set_xlabel("epoch"); b.set_title("development set"); b.set_ylim(0, 1)
    if b.lines:
        b.legend()
    else:
        b.text(0.5, 0.5, "no development set", ha="center", transform=b.transAxes)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)

"""Training stage: config → data → encoder → joint model → epochs → saved model + report.

The flow of :func:`train` reads top to bottom like Hugging Face's
``run_ner.py``. Hugging Face ``accelerate`` runs the loop, so the same code
trains on CPU, one GPU or several (``accelerate launch scripts/train.py``).

Files (``OUT`` is ``--output``)::

    OUT/            the best model so far; replaced atomically (temp dir + rename)
    OUT.work/       checkpoints/epoch-N (safetensors + JSON, no pickle), metrics.jsonl;
                    what ``--resume`` reads; removed when training finishes
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import encoders
from .config import Config, load_config
from .corpus import CorpusError, Document, load_and_validate
from .encoding import IGNORE, EncodedDocument, Preprocessing, SubwordTokenizer, candidate_pairs, encode_document
from .evaluation import evaluate_model, headline, write_report
from .model import REL2ID, TYPE2ID, JointModel, build_encoder, freeze_embeddings, resolve_precision, save
from .predict import Extractor

log = logging.getLogger("vnpol.training")


# --------------------------------------------------------------------------- data


CONLL_SUFFIXES = (".conll", ".bio", ".iob")


def load_corpus(paths: list[str], what: str) -> list[Document]:
    """Read and validate corpus files (JSON Lines, or CoNLL BIO for entity-only data); refuse to continue on any problem."""
    if not paths:
        return []
    from .corpus import validate_document
    from .formats import read_conll

    conll = [p for p in paths if str(p).endswith(CONLL_SUFFIXES)]
    docs, problems = load_and_validate([p for p in paths if p not in conll])
    for path in conll:
        for doc in read_conll(path):
            found = validate_document(doc.to_dict(), str(path))
            problems.extend(found)
            if not found:
                docs.append(doc)
    if problems:
        raise CorpusError(problems)
    if not docs:
        raise ValueError(f"{what} data {paths} holds no documents")
    return docs


@dataclass
class Example:
    """One window with its word labels and relation pairs, ready to batch."""

    input_ids: list[int]
    word_pos: list[int]
    word_labels: list[int]
    pairs: list[list[int]]  # head start, head end, tail start, tail end, head type, tail type, label


def window_examples(enc: EncodedDocument) -> list[Example]:
    assert enc.labels is not None
    gold_rel: dict[tuple[str, str], str] = {}
    for r in enc.doc.relations:
        gold_rel.setdefault((r.head, r.tail), r.type)
    relations_annotated = not enc.doc.meta.get("entity_only", False)
    out = []
    for w in enc.windows:
        pos = [w.first_subword[i - w.word_start] for i in range(w.own_start, w.own_end)]
        labels = [enc.labels[i] for i in range(w.own_start, w.own_end)]
        spans = w.owned_spans(enc.gold_spans)
        pairs = []
        for a, b in candidate_pairs([(s[0], s[1], s[2]) for s in spans], enc.sentence_of_word) if relations_annotated else []:
            (h0, h1, ht, hid), (t0, t1, tt, tid) = spans[a], spans[b]
            label = gold_rel.get((hid, tid), "NONE")
            pairs.append([*w.span_positions(h0, h1), *w.span_positions(t0, t1), TYPE2ID[ht], TYPE2ID[tt], REL2ID[label]])
        out.append(Example(w.input_ids, pos, labels, pairs))
    return out


def collate(batch: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    word_index, labels, pairs = [], [], []
    for r, e in enumerate(batch):
        ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[r, : len(e.input_ids)] = 1
        word_index.extend([r, p] for p in e.word_pos)
        labels.extend(e.word_labels)
        pairs.extend([r, *p[:6], p[6]] for p in e.pairs)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "word_index": torch.tensor(word_index, dtype=torch.long).reshape(-1, 2),
        "word_labels": torch.tensor(labels, dtype=torch.long),
        "pairs": torch.tensor(pairs, dtype=torch.long).reshape(-1, 8),
    }


def joint_loss(model: JointModel, batch: dict[str, torch.Tensor], relation_weight: float) -> tuple[torch.Tensor, float, float]:
    hidden = model.encode(batch["input_ids"], batch["attention_mask"])
    tag_logits = model.tag_logits(hidden, batch["word_index"])
    tag_loss = torch.nn.functional.cross_entropy(tag_logits.float(), batch["word_labels"], ignore_index=IGNORE)
    pairs = batch["pairs"]
    if pairs.numel():
        labels = pairs[:, 7]
        rel_logits = model.relation_logits(hidden, pairs).float()
        rel_loss = torch.nn.functional.cross_entropy(rel_logits, labels)
    else:
        rel_loss = tag_loss.new_zeros(())
    return tag_loss + relation_weight * rel_loss, float(tag_loss.detach()), float(rel_loss.detach())


# --------------------------------------------------------------------------- encoder and tokenizer


def train_tiny_tokenizer(texts: list[str], prep: Preprocessing, vocab_size: int):
    """A WordPiece-style BPE tokenizer trained on the (normalised) training corpus, for ``encoder: random``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from .text import normalize

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  min_frequency=1, show_progress=False)
    tok.train_from_iterator((normalize(t, tones=prep.normalize_tones).text for t in texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")


class EncoderLoadError(RuntimeError):
    pass


def resolve_encoder(cfg: Config, train_texts: list[str], *, say=print):
    """Return (cfg actually used, encoder module, tokenizer, encoder name) — falling back offline if needed."""
    from transformers import AutoTokenizer

    prep = preprocessing_of(cfg)
    name = cfg.model.encoder
    if name == "random":
        tokenizer = train_tiny_tokenizer(train_texts, prep, int(cfg.model.random_init.get("vocab_size", 3000)))
        init = dict(cfg.model.random_init)
        init.update(vocab_size=len(tokenizer), max_position_embeddings=prep.max_length + 2,
                    pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        return cfg, build_encoder("random", random_init_config=init, attention_dropout=cfg.model.attention_dropout), tokenizer, "random"
    try:
        path = encoders.resolve(name)
        if cfg.model.prune_vocabulary:
            from .text import normalize

            path = str(encoders.pruned(path, [normalize(t, tones=prep.normalize_tones).text for t in train_texts], progress=say))
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        encoder = build_encoder(path, attention_dropout=cfg.model.attention_dropout)
        return cfg, encoder, tokenizer, name
    except (OSError, ValueError, ImportError) as exc:
        if not cfg.model.fallback_config:
            raise EncoderLoadError(f"encoder {name!r} cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                                     "set model.encoder to a local directory, or allow model.fallback_config") from exc
        # the user's --set overrides still apply, except those that chose the encoder
        kept = [o for o in cfg.overrides if not o.split("=", 1)[0].strip().startswith(("model.encoder", "model.fallback_config"))]
        fallback = load_config(cfg.model.fallback_config, kept)
        fallback.data = cfg.data
        say(f"vnpol: encoder {name!r} is not available offline ({type(exc).__name__}); "
            f"falling back to {fallback.model.encoder!r} with {cfg.model.fallback_config}")
        fallback.model.fallback_config = None
        return resolve_encoder(fallback, train_texts, say=say)


def preprocessing_of(cfg: Config) -> Preprocessing:
    p = cfg.preprocessing
    return Preprocessing(normalize_tones=p.normalize_tones, segmenter=p.segmenter, max_length=p.max_length, context=p.context)


# --------------------------------------------------------------------------- checkpoints (no pickle)


def _save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
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


def _load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path / "optimizer.safetensors"))
    meta = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
    state: dict[int, dict[str, Any]] = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _atomic_dir(final: Path, write) -> None:
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


# --------------------------------------------------------------------------- the loop


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: Config, output: str | Path, *, resume: bool = False, say=print) -> dict[str, Any]:
    """Train, select on dev, save the best model to ``output`` and evaluate it on test."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    output = Path(output)
    work = output.with_name(output.name + ".work")

    # 1. data (refuse to start on any corpus problem)
    train_docs = load_corpus(cfg.data.train, "training")
    if cfg.data.limit_train:
        train_docs = train_docs[: cfg.data.limit_train]
    dev_docs = load_corpus(cfg.data.dev, "development")
    test_docs = load_corpus(cfg.data.test, "test")
    train_texts = {d.text for d in train_docs}
    leaked = [d.id for d in test_docs if d.text in train_texts]
    say(f"vnpol: {len(train_docs)} training, {len(dev_docs)} dev, {len(test_docs)} test documents")

    # 2. encoder, tokenizer, model
    set_seed(cfg.training.seed)  # a randomly initialised encoder (tiny config) must be reproducible too
    cfg, encoder, hf_tokenizer, encoder_name = resolve_encoder(cfg, [d.text for d in train_docs], say=say)
    t = cfg.training  # after resolution: a fallback recipe brings its own training settings
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    prep = preprocessing_of(cfg)
    tokenizer = SubwordTokenizer(hf_tokenizer)
    set_seed(t.seed)  # the heads' initialisation must not depend on what loading the encoder consumed
    model = JointModel(encoder, dropout=cfg.model.dropout, relation_hidden=cfg.model.relation_hidden, type_dim=cfg.model.type_dim)
    if cfg.model.freeze_embeddings:
        freeze_embeddings(model)

    examples = [ex for d in train_docs for ex in window_examples(encode_document(d, tokenizer, prep, with_labels=True))]
    say(f"vnpol: {len(examples)} training windows of at most {prep.max_length} positions")

    mp = t.mixed_precision
    if mp == "auto":
        mp = {"fp16": "fp16", "bf16": "bf16"}.get(resolve_precision("auto", torch.device("cuda" if torch.cuda.is_available() else "cpu")), "no")
    accelerator = Accelerator(mixed_precision=mp, gradient_accumulation_steps=t.gradient_accumulation_steps, cpu=not torch.cuda.is_available())

    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.") and p.requires_grad]
    enc_params = [p for n, p in model.named_parameters() if n.startswith("encoder.") and p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": enc_params, "lr": t.learning_rate, "weight_decay": t.weight_decay},
        {"params": head_params, "lr": t.head_learning_rate, "weight_decay": 0.0},
    ])
    steps_per_epoch = max(1, -(-len(examples) // (t.batch_size * t.gradient_accumulation_steps * accelerator.num_processes)))
    total_steps = steps_per_epoch * t.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(t.warmup_ratio * total_steps), total_steps)

    state: dict[str, Any] = {"epoch": 0, "global_step": 0, "best_score": None, "best_epoch": 0, "bad_epochs": 0}
    if resume:
        ckpt = latest_checkpoint(work)
        if ckpt is None:
            say(f"vnpol: --resume: no complete checkpoint in {work}; starting from scratch")
        else:
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
            _load_optimizer(optimizer, ckpt)
            state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
            for _ in range(state["global_step"]):
                scheduler.step()
            say(f"vnpol: resumed from {ckpt} (epoch {state['epoch']}, best dev score {state['best_score']})")
    elif work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)

    model, optimizer = accelerator.prepare(model, optimizer)
    metrics_log = work / "metrics.jsonl"
    started = time.time()

    def save_model(tmp: Path, extra: dict[str, Any]) -> None:
        save(accelerator.unwrap_model(model), hf_tokenizer, prep, tmp, encoder_name=encoder_name, extra=extra)
        (tmp / "training_config.json").write_text(json.dumps(cfg.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        if metrics_log.exists():
            shutil.copy(metrics_log, tmp / "metrics.jsonl")
            plot_curves(tmp / "metrics.jsonl", tmp / "curves.png")

    for epoch in range(state["epoch"] + 1, t.epochs + 1):
        if state["bad_epochs"] >= t.early_stopping_patience:
            break
        set_seed(t.seed + epoch)  # same order and dropout after --resume
        order = list(range(len(examples)))
        random.Random(t.seed + epoch).shuffle(order)
        loader = torch.utils.data.DataLoader([examples[i] for i in order], batch_size=t.batch_size, shuffle=False,
                                             collate_fn=lambda b: collate(b, tokenizer.pad_id))
        loader = accelerator.prepare_data_loader(loader)
        model.train()
        epoch_start = time.time()
        sums = np.zeros(3)
        bar = tqdm(loader, desc=f"epoch {epoch}/{t.epochs}", disable=not accelerator.is_local_main_process, leave=False)
        for batch in bar:
            with accelerator.accumulate(model):
                loss, tag_l, rel_l = joint_loss(model, batch, t.relation_loss_weight)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                    state["global_step"] += 1
                optimizer.zero_grad()
            sums += (float(loss.detach()), tag_l, rel_l)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        n = max(1, len(loader))
        train_seconds = time.time() - epoch_start

        extractor = Extractor(accelerator.unwrap_model(model), hf_tokenizer, prep, device=accelerator.device,
                              precision="bf16" if mp == "bf16" else "fp32")  # never cast the weights being trained
        dev_report = evaluate_model(extractor, dev_docs, given_gold=False) if dev_docs else None
        dev = headline(dev_report) if dev_report else {}
        score = (dev["entity_f1"] + dev["relation_f1"]) / 2 if dev else -float(sums[0] / n)
        row = {"epoch": epoch, "loss": sums[0] / n, "tag_loss": sums[1] / n, "relation_loss": sums[2] / n,
               "train_seconds": round(train_seconds, 1), **{f"dev_{k}": v for k, v in dev.items()}, "dev_score": score}
        improved = state["best_score"] is None or score > state["best_score"]
        state.update(epoch=epoch)
        if improved:
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
        elif dev and state["best_score"] <= 0:
            pass  # patience starts once the model scores on dev at all: small data needs a few epochs to get there
        else:
            state["bad_epochs"] += 1
        if accelerator.is_main_process:
            with open(metrics_log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            say("vnpol: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            if improved:
                _atomic_dir(output, lambda tmp: save_model(tmp, {"best_epoch": epoch, "dev": dev_report and headline(dev_report)}))
            ckpt = work / "checkpoints" / f"epoch-{epoch}"

            def write_ckpt(tmp: Path) -> None:
                from safetensors.torch import save_file

                tmp.mkdir(parents=True)
                save_file({k: v.detach().cpu().contiguous() for k, v in accelerator.unwrap_model(model).state_dict().items()},
                          str(tmp / "model.safetensors"))
                _save_optimizer(optimizer, tmp)
                (tmp / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")

            _atomic_dir(ckpt, write_ckpt)
            for old in (work / "checkpoints").glob("epoch-*"):
                if old != ckpt:
                    shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

    # 3. final evaluation of the best model, written into the model directory
    result: dict[str, Any] = {"best_epoch": state["best_epoch"], "dev_score": state["best_score"],
                              "train_seconds_total": round(time.time() - started, 1), "encoder": encoder_name,
                              "mixed_precision": mp}
    if accelerator.is_main_process:
        from .predict import load as load_extractor

        best = load_extractor(output, device=str(accelerator.device))
        if dev_docs:
            rep = evaluate_model(best, dev_docs)
            write_report(rep, output, "dev_evaluation", "Development set")
            result["dev"] = headline(rep)
        if test_docs and leaked:
            say(f"vnpol: NOT evaluating on test: {len(leaked)} test document(s) were in the training data ({leaked[:3]})")
            result["test"] = None
        elif test_docs:
            rep = evaluate_model(best, test_docs)
            write_report(rep, output, "test_evaluation", "Held-out test set")
            result["test"] = headline(rep)
            result["test_report"] = rep
        if metrics_log.exists():  # the full log, also the epochs after the best one
            shutil.copy(metrics_log, output / "metrics.jsonl")
            plot_curves(output / "metrics.jsonl", output / "curves.png")
        meta_path = output / "vnpol.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["metrics"] = {k: v for k, v in result.items() if k != "test_report"}
        meta["trained_on"] = sorted({str(p) for p in cfg.data.train})
        meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        shutil.rmtree(work, ignore_errors=True)
    return result


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

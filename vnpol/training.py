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
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import encoders
from .augment import with_uppercase_copies
from .config import Config, load_config
from .corpus import Document
from .encoding import Preprocessing, SubwordTokenizer
from .batches import Example, collate, joint_loss, training_examples
from .checkpoints import atomic_dir, latest_checkpoint, load_optimizer, plot_curves, save_optimizer
from .evaluation import evaluate_model, headline, write_report
from .formats import load_corpus, read_corpus
from .inference import Extractor
from .model import JointModel, build_encoder, cpu_trains_faster_in_bf16, freeze_embeddings
from .saving import save
from .schema import Scheme, resolve as resolve_scheme

log = logging.getLogger("vnpol.training")


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
        return cfg, build_encoder("random", random_init_config=init, attention_dropout=cfg.model.attention_dropout,
                                  layers=cfg.model.encoder_layers), tokenizer, "random"
    try:
        path = encoders.resolve(name)
        if cfg.model.prune_vocabulary:
            from .text import normalize

            path = str(encoders.pruned(path, [normalize(t, tones=prep.normalize_tones).text for t in train_texts], progress=say))
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        encoder = build_encoder(path, attention_dropout=cfg.model.attention_dropout, layers=cfg.model.encoder_layers)
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


# --------------------------------------------------------------------------- the loop


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Corpus:
    train: list[Document]
    dev: list[Document]
    test: list[Document]
    scheme: Scheme
    leaked: list[str]  # test documents whose text is also in the training data


def prepare_data(cfg: Config, say=print) -> Corpus:
    """Step 1: the scheme (``auto``: from the training data), and the corpus validated against it."""
    spec = cfg.scheme
    if spec == "auto":
        scheme = resolve_scheme("auto", read_corpus(cfg.data.train))
        say(f"vnpol: scheme auto: {scheme.describe()}")
    else:
        scheme = resolve_scheme(spec)
    train_docs = load_corpus(cfg.data.train, "training", scheme)
    if cfg.data.limit_train:
        train_docs = train_docs[: cfg.data.limit_train]
    if cfg.training.uppercase_copies:
        train_docs = with_uppercase_copies(train_docs, cfg.training.uppercase_copies, cfg.training.seed)
        say(f"vnpol: {len(train_docs)} training documents with capitalised copies (training.uppercase_copies)")
    dev_docs = load_corpus(cfg.data.dev, "development", scheme)
    test_docs = load_corpus(cfg.data.test, "test", scheme)
    texts = {d.text for d in train_docs}
    say(f"vnpol: {len(train_docs)} training, {len(dev_docs)} dev, {len(test_docs)} test documents")
    return Corpus(train_docs, dev_docs, test_docs, scheme, [d.id for d in test_docs if d.text in texts])


def build_model(cfg: Config, corpus: Corpus, say=print):
    """Step 2: encoder (with its offline fallback), tokenizer and heads; returns (cfg used, model, tokenizer, name)."""
    set_seed(cfg.training.seed)  # a randomly initialised encoder (tiny config) must be reproducible too
    cfg, encoder, hf_tokenizer, encoder_name = resolve_encoder(cfg, [d.text for d in corpus.train], say=say)
    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)
    set_seed(cfg.training.seed)  # the heads' initialisation must not depend on what loading the encoder consumed
    m = cfg.model
    model = JointModel(encoder, corpus.scheme, dropout=m.dropout, relation_hidden=m.relation_hidden, type_dim=m.type_dim,
                       relation_features=m.relation_features, crf=m.crf)
    if m.freeze_embeddings:
        freeze_embeddings(model)
    return cfg, model, hf_tokenizer, encoder_name


def _mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "fp16"
    return "bf16" if cpu_trains_faster_in_bf16() else "no"


def make_optimizer(model: JointModel, t, n_examples: int, processes: int):
    """Step 3: AdamW with one learning rate for the encoder and one for the heads, linear warm-up and decay."""
    from transformers import get_linear_schedule_with_warmup

    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.") and p.requires_grad]
    enc = [p for n, p in model.named_parameters() if n.startswith("encoder.") and p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": enc, "lr": t.learning_rate, "weight_decay": t.weight_decay},
        {"params": head, "lr": t.head_learning_rate, "weight_decay": 0.0},
    ])
    steps_per_epoch = max(1, -(-n_examples // (t.batch_size * t.gradient_accumulation_steps * processes)))
    total = steps_per_epoch * t.epochs
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(t.warmup_ratio * total), total)


def _resume_state(model, optimizer, scheduler, work: Path, resume: bool, say) -> dict[str, Any]:
    state: dict[str, Any] = {"epoch": 0, "global_step": 0, "best_score": None, "best_epoch": 0, "bad_epochs": 0}
    if resume:
        ckpt = latest_checkpoint(work)
        if ckpt is None:
            say(f"vnpol: --resume: no complete checkpoint in {work}; starting from scratch")
        else:
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
            load_optimizer(optimizer, ckpt)
            state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
            for _ in range(state["global_step"]):
                scheduler.step()
            say(f"vnpol: resumed from {ckpt} (epoch {state['epoch']}, best dev score {state['best_score']})")
    elif work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    return state


@dataclass
class Run:
    """What the epoch loop needs: the prepared model, data and where to write."""

    cfg: Config
    model: Any
    optimizer: Any
    scheduler: Any
    accelerator: Any
    examples: list[Example]
    corpus: Corpus
    tokenizer: Any  # the Hugging Face tokenizer, saved with the model
    prep: Preprocessing
    encoder_name: str
    output: Path
    work: Path
    precision: str

    def save_model(self, tmp: Path, extra: dict[str, Any]) -> None:
        save(self.accelerator.unwrap_model(self.model), self.tokenizer, self.prep, tmp, encoder_name=self.encoder_name, extra=extra)
        (tmp / "training_config.json").write_text(json.dumps(self.cfg.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        log = self.work / "metrics.jsonl"
        if log.exists():
            shutil.copy(log, tmp / "metrics.jsonl")
            plot_curves(tmp / "metrics.jsonl", tmp / "curves.png")


def train_epoch(run: Run, epoch: int) -> dict[str, float]:
    """Step 4a: one pass over the training windows in a seeded order (the same after ``--resume``)."""
    from tqdm.auto import tqdm

    t, acc, model = run.cfg.training, run.accelerator, run.model
    set_seed(t.seed + epoch)
    order = list(range(len(run.examples)))
    random.Random(t.seed + epoch).shuffle(order)
    pad = SubwordTokenizer(run.tokenizer).pad_id
    loader = torch.utils.data.DataLoader([run.examples[i] for i in order], batch_size=t.batch_size, shuffle=False,
                                         collate_fn=lambda b: collate(b, pad))
    loader = acc.prepare_data_loader(loader)
    model.train()
    started, sums = time.time(), np.zeros(3)
    bar = tqdm(loader, desc=f"epoch {epoch}/{t.epochs}", disable=not acc.is_local_main_process, leave=False)
    for batch in bar:
        with acc.accumulate(model):
            loss, tag_l, rel_l = joint_loss(model, batch, t.relation_loss_weight)  # autocast: accelerate wraps forward
            acc.backward(loss)
            if acc.sync_gradients:
                acc.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            run.optimizer.step()
            if acc.sync_gradients:
                run.scheduler.step()
            run.optimizer.zero_grad()
        sums += (float(loss.detach()), tag_l, rel_l)
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    n = max(1, len(loader))
    return {"loss": sums[0] / n, "tag_loss": sums[1] / n, "relation_loss": sums[2] / n,
            "train_seconds": round(time.time() - started, 1), "steps": len(loader)}


def score_on_dev(run: Run, losses: dict[str, float]) -> tuple[float, dict | None]:
    """Step 4b: the dev score that selects the best epoch: mean of entity and relation F1."""
    extractor = Extractor(run.accelerator.unwrap_model(run.model), run.tokenizer, run.prep, device=run.accelerator.device,
                          precision="bf16" if run.precision == "bf16" else "fp32")  # never cast the weights being trained
    report = evaluate_model(extractor, run.corpus.dev, given_gold=False) if run.corpus.dev else None
    if not report:
        return -losses["loss"], None
    dev = headline(report)
    return (dev["entity_f1"] + dev["relation_f1"]) / 2, dev


def write_checkpoint(run: Run, state: dict[str, Any], epoch: int) -> None:
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        weights = run.accelerator.unwrap_model(run.model).state_dict()
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
        save_optimizer(run.optimizer, tmp)
        (tmp / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")

    ckpt = run.work / "checkpoints" / f"epoch-{epoch}"
    atomic_dir(ckpt, write)
    for old in (run.work / "checkpoints").glob("epoch-*"):
        if old != ckpt:
            shutil.rmtree(old, ignore_errors=True)


def run_epochs(run: Run, state: dict[str, Any], say=print) -> None:
    """Step 4: train, score on dev, keep the best model (atomically), checkpoint every epoch, stop early."""
    t = run.cfg.training
    for epoch in range(state["epoch"] + 1, t.epochs + 1):
        if state["bad_epochs"] >= t.early_stopping_patience:
            break
        losses = train_epoch(run, epoch)
        state["global_step"] += losses["steps"]  # optimizer steps this process took (kept in the metrics row)
        score, dev = score_on_dev(run, losses)
        row = {"epoch": epoch, **losses, **{f"dev_{k}": v for k, v in (dev or {}).items()}, "dev_score": score}
        improved = state["best_score"] is None or score > state["best_score"]
        state.update(epoch=epoch)
        if improved:
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
        elif not (dev and state["best_score"] <= 0):  # patience starts once the model scores on dev at all
            state["bad_epochs"] += 1
        if run.accelerator.is_main_process:
            with open(run.work / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            say("vnpol: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            if improved:
                atomic_dir(run.output, lambda tmp: run.save_model(tmp, {"best_epoch": epoch, "dev": dev}))
            write_checkpoint(run, state, epoch)
        run.accelerator.wait_for_everyone()


def finish(run: Run, state: dict[str, Any], started: float, say=print) -> dict[str, Any]:
    """Step 5: thresholds chosen on dev, the best model's reports on dev and test, written into the model directory."""
    from .inference import Extractor as _Extractor
    from .saving import load_model
    from .thresholds import choose_thresholds, write_threshold_report

    result: dict[str, Any] = {"best_epoch": state["best_epoch"], "dev_score": state["best_score"],
                              "train_seconds_total": round(time.time() - started, 1), "encoder": run.encoder_name,
                              "mixed_precision": run.precision}
    corpus, output = run.corpus, run.output
    model, tok, prep, meta = load_model(output, device=str(run.accelerator.device))
    best = _Extractor(model, tok, prep, meta, device=run.accelerator.device)
    if corpus.dev:
        thresholds, curve = choose_thresholds(best, corpus.dev)
        write_threshold_report(curve, thresholds, output)
        best.entity_threshold, best.relation_threshold = thresholds["entity"], thresholds["relation"]
        result["thresholds"] = thresholds
        rep = evaluate_model(best, corpus.dev)
        write_report(rep, output, "dev_evaluation", "Development set")
        result["dev"] = headline(rep)
    if corpus.test and corpus.leaked:
        say(f"vnpol: NOT evaluating on test: {len(corpus.leaked)} test document(s) were in the training data ({corpus.leaked[:3]})")
        result["test"] = None
    elif corpus.test:
        rep = evaluate_model(best, corpus.test)
        write_report(rep, output, "test_evaluation", "Held-out test set")
        result["test"] = headline(rep)
        result["test_report"] = rep
    log = run.work / "metrics.jsonl"
    if log.exists():  # the full log, also the epochs after the best one
        shutil.copy(log, output / "metrics.jsonl")
        plot_curves(output / "metrics.jsonl", output / "curves.png")
    meta_path = output / "vnpol.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["metrics"] = {k: v for k, v in result.items() if k not in ("test_report", "thresholds")}
    if "thresholds" in result:
        meta["thresholds"] = result["thresholds"]
    meta["trained_on"] = sorted({str(p) for p in run.cfg.data.train})
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    shutil.rmtree(run.work, ignore_errors=True)
    return result


def train(cfg: Config, output: str | Path, *, resume: bool = False, say=print) -> dict[str, Any]:
    """Train, select on dev, save the best model to ``output`` and evaluate it on test."""
    from accelerate import Accelerator, DistributedDataParallelKwargs

    output = Path(output)
    corpus = prepare_data(cfg, say)
    cfg, model, hf_tokenizer, encoder_name = build_model(cfg, corpus, say)
    prep = preprocessing_of(cfg)
    tokenizer = SubwordTokenizer(hf_tokenizer)
    cache = cfg.data.cache_dir
    examples = training_examples(corpus.train, tokenizer, prep, corpus.scheme, say=say,
                                 cache_dir=encoders.cache_dir() / "windows" if cache == "auto" else cache)
    say(f"vnpol: {len(examples)} training windows of at most {prep.max_length} positions")
    mp = _mixed_precision(cfg.training.mixed_precision)
    # accelerate keeps one state per process and refuses a second training in it (scripts/ablate.py, a notebook)
    # with another precision; clearing its precision state keeps the process group (PartialState) intact
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    # a batch without candidate pairs leaves the relation head without gradients: DDP must not wait for them
    accelerator = Accelerator(mixed_precision=mp, gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
                              cpu=not torch.cuda.is_available(),
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    optimizer, scheduler = make_optimizer(model, cfg.training, len(examples), accelerator.num_processes)
    work = output.with_name(output.name + ".work")
    state = _resume_state(model, optimizer, scheduler, work, resume, say)
    model, optimizer = accelerator.prepare(model, optimizer)
    run = Run(cfg, model, optimizer, scheduler, accelerator, examples, corpus, hf_tokenizer, prep, encoder_name, output, work, mp)
    started = time.time()
    run_epochs(run, state, say)
    if not accelerator.is_main_process:
        return {}
    return finish(run, state, started, say)

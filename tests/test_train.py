"""Tests of training, the release it writes, and the training script."""

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, call_main, write_npz
from mnist_sum_keras.cli import train as train_cli
from mnist_sum_keras.config import Config
from mnist_sum_keras.train import run


def test_run_releases_a_version_with_its_files(tiny_release, tiny_datasets):
    config, metrics = tiny_release
    base = os.path.join(config.output_dir, "mnist_sum")
    assert metrics["version"] == 1
    assert sorted(os.listdir(base)) == [
        "1", "v1.config.json", "v1.history.csv", "v1.keras", "v1.logs", "v1.metrics.json"]
    # TensorBoard's event files, for `tensorboard --logdir`.
    assert any(name.startswith("events.out.tfevents")
               for _, _, names in os.walk(os.path.join(base, "v1.logs")) for name in names)
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    assert Config.from_json(os.path.join(base, "v1.config.json")) == config
    with open(os.path.join(base, "v1.metrics.json")) as f:
        saved = json.load(f)
    figures = saved["test_pairs"]
    assert figures == metrics["test_pairs"]
    assert figures["pairs"] == 10 * len(tiny_datasets["test"][0])
    assert set(figures) == {"pairs", "digit_accuracy", "sum_accuracy",
                            "both_correct", "consistency"}
    with open(os.path.join(base, "v1.history.csv")) as f:
        assert len(f.read().strip().splitlines()) == 1 + config.epochs

    # The released .keras file is the model whose figures were reported.
    model = keras.models.load_model(os.path.join(base, "v1.keras"))
    images, digits = tiny_datasets["test"]
    from mnist_sum_keras.evaluate import evaluate
    assert evaluate(model, images, digits) == figures


def test_the_next_run_adds_a_version(tiny_release, tiny_datasets, trained_fit, tmp_path):
    released, _ = tiny_release
    config = dataclasses.replace(released, output_dir=str(tmp_path))
    base = os.path.join(config.output_dir, "mnist_sum")
    shutil.copytree(os.path.join(released.output_dir, "mnist_sum"), base)
    before = {name: os.path.getmtime(os.path.join(base, name)) for name in os.listdir(base)}
    assert run(config, datasets=tiny_datasets, verbose=0)["version"] == 2
    assert sorted(os.listdir(base)) == sorted([*before, "2", "v2.config.json", "v2.history.csv",
                                               "v2.keras", "v2.logs", "v2.metrics.json"])
    # Version 1 is left alone.
    assert {name: os.path.getmtime(os.path.join(base, name)) for name in before} == before


def _script(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.large
def test_script_trains_from_data_option(tmp_path):
    data = write_npz(tmp_path / "mnist.npz", train=240, test=30)
    out = tmp_path / "out"
    result = _script("--data", data, "--epochs", "1", "--validation-size", "40",
                     "--output-dir", str(out), "--verbose", "0")
    assert result.returncode == 0, result.stderr
    assert "(300 pairs)" in result.stdout and "digit_accuracy" in result.stdout
    assert "on 1 replica(s)" in result.stdout
    assert os.path.isdir(out / "mnist_sum" / "1")
    # Where the data came from, not this machine's path.
    saved = json.loads((out / "mnist_sum" / "v1.config.json").read_text())
    with open(data, "rb") as f:
        assert saved["data"] == {"source": "mnist.npz",
                                 "sha256": hashlib.sha256(f.read()).hexdigest()}
    assert saved["data_path"] is None
    assert not os.path.exists(out / "mnist_sum" / "training")


def test_script_missing_data_file_fails_clearly(tmp_path):
    out = tmp_path / "out"
    code, _, stderr = call_main(train_cli.main, "--data", tmp_path / "missing.npz",
                                "--output-dir", out)
    assert code == 2
    assert "missing.npz" in stderr and "not found" in stderr
    assert not out.exists()


def test_script_malformed_data_file_fails_clearly(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 28, 28), np.uint8))
    code, _, stderr = call_main(train_cli.main, "--data", bad, "--output-dir", tmp_path / "out")
    assert code == 2
    assert "bad.npz" in stderr and "lacks the keys" in stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "epochs must be a positive integer"),
    (["--optimizer", "adam"], "optimizer must be one of"),
    (["--dropout", "1.5"], "dropout must be in [0, 1)"),
    (["--label-smoothing", "1"], "label_smoothing must be in [0, 1)"),
    (["--max-zoom", "1"], "max_zoom must be in [0, 1)"),
    (["--max-shear", "-0.1"], "max_shear must be >= 0"),
    (["--elastic-sigma", "0"], "elastic_sigma must be > 0"),
    (["--max-stroke", "1.5"], "max_stroke must be in [0, 1]"),
    (["--test-zoom", "3"], "test_zoom must be in [0.5, 2]"),
    (["--conv-filters", "8", "x"], "invalid int value: 'x'"),
    (["--stage-blocks", "0"], "stage_blocks must hold 1 to len(conv_filters) integers"),
    (["--stem", "patches"], "stem must be one of ('full_resolution', 'space_to_depth')"),
    (["--conv-filters", "4", "8", "16", "32", "64", "128"], "conv_filters must hold 1 to"),
    (["--strategy", "tpu"], "invalid choice: 'tpu'"),
])
def test_script_rejects_bad_option_values(tmp_path, args, message):
    code, stdout, stderr = call_main(train_cli.main, *args, "--output-dir", tmp_path / "out")
    assert code == 2 and message in stderr
    assert stdout == "" and not (tmp_path / "out").exists()


def test_every_config_field_is_a_flag():
    args = train_cli.parse_args(["--conv-filters", "8", "16", "--no-fused-batch-norm",
                                 "--sum-merge", "features", "--data", "x.npz",
                                 "--ema-momentum", "0.99"])
    assert {f.name for f in dataclasses.fields(Config)} <= set(vars(args))
    assert args.conv_filters == [8, 16] and args.fused_batch_norm is False
    assert (args.sum_merge, args.data_path, args.ema_momentum) == ("features", "x.npz", 0.99)
    # Unset flags keep Config's defaults.
    defaults = train_cli.parse_args([])
    for field in dataclasses.fields(Config):
        assert getattr(defaults, field.name) == getattr(Config(), field.name), field.name


def test_ema_weights_are_the_ones_released(tiny_config, tiny_datasets, tiny_release, tmp_path):
    from mnist_sum_keras.model import build_model
    from mnist_sum_keras.train import train

    keras.utils.set_random_seed(tiny_config.seed)
    initial = [w.numpy() for w in build_model(tiny_config).trainable_weights]

    def moved(weights):
        return max(np.abs(a.numpy() - b).max() for a, b in zip(weights, initial))

    # An average with a horizon of a million steps has barely left the start;
    config = dataclasses.replace(tiny_config, ema_momentum=0.999999)
    model, _ = train(config, str(tmp_path / "training"), datasets=tiny_datasets, verbose=0)
    assert moved(model.trainable_weights) < 1e-4
    # the raw weights of the same run, without the average, have moved.
    _, metrics = tiny_release
    assert not tiny_config.ema_momentum
    assert moved(keras.models.load_model(metrics["keras_model"]).trainable_weights) > 1e-2

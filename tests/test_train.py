"""Tests of training, the release it writes, and the training script."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

from conftest import write_npz
from mnist_sum_keras.config import Config
from mnist_sum_keras.train import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_run_releases_a_version_with_its_files(tiny_config, tiny_datasets):
    metrics = run(tiny_config, datasets=tiny_datasets, verbose=0)
    base = os.path.join(tiny_config.output_dir, "mnist_sum")
    assert metrics["version"] == 1
    assert sorted(os.listdir(base)) == [
        "1", "v1.config.json", "v1.history.csv", "v1.keras", "v1.metrics.json"]
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    assert Config.from_json(os.path.join(base, "v1.config.json")) == tiny_config
    with open(os.path.join(base, "v1.metrics.json")) as f:
        saved = json.load(f)
    figures = saved["test_pairs"]
    assert figures["pairs"] == 10 * len(tiny_datasets["test"][0])
    assert set(figures) == {"pairs", "digit_accuracy", "sum_accuracy",
                            "both_correct", "consistency"}
    with open(os.path.join(base, "v1.history.csv")) as f:
        assert len(f.read().strip().splitlines()) == 1 + tiny_config.epochs

    # The released .keras file is the model whose figures were reported.
    model = keras.models.load_model(os.path.join(base, "v1.keras"))
    images, digits = tiny_datasets["test"]
    from mnist_sum_keras.evaluate import evaluate
    assert evaluate(model, images, digits) == figures

    # A second run adds version 2 and leaves version 1 alone.
    assert run(tiny_config, datasets=tiny_datasets, verbose=0)["version"] == 2
    assert os.path.isfile(os.path.join(base, "v1.keras"))


def _script(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600)


def test_script_trains_from_data_option(tmp_path):
    data = write_npz(tmp_path / "mnist.npz", train=240, test=30)
    out = tmp_path / "out"
    result = _script("--data", data, "--epochs", "1", "--validation-size", "40",
                     "--output-dir", str(out), "--verbose", "0")
    assert result.returncode == 0, result.stderr
    assert "(300 pairs)" in result.stdout and "digit_accuracy" in result.stdout
    assert "on 1 replica(s)" in result.stdout
    assert os.path.isdir(out / "mnist_sum" / "1")
    assert not os.path.exists(out / "mnist_sum" / "training")


def test_script_missing_data_file_fails_clearly(tmp_path):
    out = tmp_path / "out"
    result = _script("--data", str(tmp_path / "missing.npz"), "--output-dir", str(out))
    assert result.returncode != 0
    assert "missing.npz" in result.stderr and "not found" in result.stderr
    assert not out.exists()


def test_script_malformed_data_file_fails_clearly(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 28, 28), np.uint8))
    result = _script("--data", str(bad), "--output-dir", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "bad.npz" in result.stderr and "lacks the keys" in result.stderr
    assert not (tmp_path / "out").exists()


def test_script_rejects_bad_option_values(tmp_path):
    result = _script("--epochs", "0", "--output-dir", str(tmp_path / "out"))
    assert result.returncode != 0 and "epochs must be a positive integer" in result.stderr


def test_ema_weights_are_the_ones_released(tiny_config, tiny_datasets, tmp_path):
    import dataclasses

    from mnist_sum_keras.model import build_model
    from mnist_sum_keras.train import train

    keras.utils.set_random_seed(tiny_config.seed)
    initial = [w.numpy() for w in build_model(tiny_config).trainable_weights]

    def trained(ema_momentum):
        config = dataclasses.replace(tiny_config, epochs=1, ema_momentum=ema_momentum)
        model, _ = train(config, str(tmp_path / str(ema_momentum)), datasets=tiny_datasets,
                         verbose=0)
        return [w.numpy() for w in model.trainable_weights]

    # An average with a horizon of a million steps has barely left the start;
    # the raw weights of the same run have moved.
    moved = lambda weights: max(np.abs(a - b).max() for a, b in zip(weights, initial))
    assert moved(trained(0.999999)) < 1e-4
    assert moved(trained(0.0)) > 1e-2

"""Interrupted training resumes; the same seed gives the same model."""

import csv
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, wait_for_file, write_npz
from mnist_sum_keras.train import latest_checkpoint

TINY = ["--epochs", "4", "--batch-size", "16", "--validation-size", "40", "--verbose", "2"]


def _train_command(data, out, *extra):
    return [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--data", data,
            "--output-dir", str(out), *TINY, *extra]


@pytest.mark.large
def test_killed_training_resumes_from_backup(tmp_path):
    data = write_npz(tmp_path / "mnist.npz", train=1200, test=30)
    out = tmp_path / "out"
    command = _train_command(data, out)
    backup = out / "mnist_sum" / "training" / "backup" / "training_metadata.json"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_file(backup, first)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, "the first run ended before the kill"
    assert not (out / "mnist_sum" / "1").exists()

    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "Epoch 1/4" not in second.stdout  # Resumed after the backed-up epoch.
    assert "Epoch 4/4" in second.stdout
    base = out / "mnist_sum"
    with open(base / "v1.history.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1, 2, 3]
    assert not (base / "training").exists()
    keras.models.load_model(base / "v1.keras")


@pytest.mark.large
def test_ctrl_c_exits_cleanly_with_a_good_checkpoint(tmp_path):
    data = write_npz(tmp_path / "mnist.npz", train=1200, test=30)
    out = tmp_path / "out"
    work = out / "mnist_sum" / "training"
    # 40 epochs: the interrupt must land in training, not after a short run ends.
    # SIGINT back to its default in the child, as for a job in a terminal: a shell
    # starts background jobs with SIGINT ignored, the child inherits that, and
    # Python then never raises KeyboardInterrupt (how CI runs can look).
    process = subprocess.Popen(_train_command(data, out, "--epochs", "40"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for_file(work / "backup" / "training_metadata.json", process)
        assert process.poll() is None, "training ended before its first backup"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "run the same command again" in stderr
    assert "Traceback" not in stderr
    best = latest_checkpoint(str(work))  # The last good checkpoint.
    assert best and keras.models.load_model(best)
    assert not (out / "mnist_sum" / "1").exists()


@pytest.mark.large
def test_same_seed_gives_identical_weights(tmp_path):
    data = write_npz(tmp_path / "mnist.npz", train=400, test=30)
    weights = []
    for name in ("a", "b"):
        result = subprocess.run(_train_command(data, tmp_path / name, "--epochs", "2"),
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        model = keras.models.load_model(tmp_path / name / "mnist_sum" / "v1.keras")
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    with open(tmp_path / "a" / "mnist_sum" / "v1.history.csv") as fa, \
            open(tmp_path / "b" / "mnist_sum" / "v1.history.csv") as fb:
        assert fa.read() == fb.read()


def test_latest_checkpoint_skips_a_file_cut_short(tmp_path, tiny_config):
    from mnist_sum_keras.model import build_model

    model = build_model(tiny_config)
    model.save(tmp_path / "best-001.keras")
    model.save(tmp_path / "best-004.keras")
    whole = (tmp_path / "best-004.keras").read_bytes()
    (tmp_path / "best-007.keras").write_bytes(whole[: len(whole) // 2])  # Killed mid-save.
    (tmp_path / "notes.keras").write_bytes(whole)
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "best-004.keras")
    assert latest_checkpoint(str(tmp_path / "missing")) is None

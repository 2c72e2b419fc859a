"""Training under tf.distribute: MirroredStrategy and MultiWorkerMirroredStrategy.

The multi-worker tests start two `scripts/train.py` workers on 127.0.0.1 with
free ports; every wait is bounded, so a hang fails the test instead of CI.
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, write_npz
from mnist_sum_keras import multi_worker_shim
from mnist_sum_keras.distribute import is_chief, local_cluster, make_strategy
from mnist_sum_keras.model import IntegerCheck  # noqa: F401 (registers it for loading)

TRAIN = os.path.join(ROOT, "scripts", "train.py")
TINY = ["--batch-size", "16", "--validation-size", "40", "--verbose", "2"]
TIMEOUT = 300  # Seconds any one multi-worker run may take before the test fails.


def _digest(stdout):
    return re.search(r"Weights sha256 ([0-9a-f]{64})", stdout).group(1)


@pytest.fixture
def data(tmp_path):
    return write_npz(tmp_path / "mnist.npz", train=400, test=30)


def test_make_strategy_errors(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi-worker")
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_strategy("tpu")
    assert is_chief(make_strategy("default"))


def test_local_cluster_gives_each_worker_its_task():
    configs = [json.loads(c) for c in local_cluster(3)]
    hosts = configs[0]["cluster"]["worker"]
    assert len(set(hosts)) == 3 and all(h.startswith("127.0.0.1:") for h in hosts)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)


def _train_mirrored(data, out, epochs):
    result = subprocess.run(
        [sys.executable, TRAIN, "--data", data, "--output-dir", str(out),
         "--strategy", "mirrored", "--devices", "/cpu:0", "/cpu:1", "--epochs", str(epochs),
         *TINY], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.large
def test_mirrored_strategy_on_two_logical_cpus(tmp_path, data):
    stdout = _train_mirrored(data, tmp_path / "out", epochs=1)
    assert "on 2 replica(s)" in stdout
    # 360 training images, 16 per replica x 2 replicas: 12 steps per epoch.
    assert "12/12" in stdout
    model = keras.models.load_model(tmp_path / "out" / "mnist_sum" / "v1.keras")
    images = np.zeros((2, 28, 28), np.uint8)
    out_probs = model.predict([images, np.array([1, 2], np.int32)], verbose=0)
    assert out_probs["sum"].shape == (2, 19)


class Workers:
    """Two `train.py --strategy multi-worker` processes on loopback, always reaped."""

    def __init__(self, tmp_path, data, epochs):
        self.tmp_path = tmp_path
        self.args = ["--data", data, "--epochs", str(epochs), *TINY]
        # Non-chief workers keep their state in the system's temporary folder.
        self.temp = tmp_path / "tmp"
        self.temp.mkdir(exist_ok=True)
        self.processes = []

    def start(self):
        for index, tf_config in enumerate(local_cluster(2)):
            env = dict(os.environ, TMPDIR=str(self.temp), TF_CONFIG=tf_config)
            self.processes.append(subprocess.Popen(
                [sys.executable, TRAIN, "--output-dir", str(self.tmp_path / f"out{index}"),
                 "--strategy", "multi-worker", *self.args],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return self

    def finish(self):
        """Waits for both; returns their `(returncode, stdout, stderr)`."""
        try:
            outputs = [p.communicate(timeout=TIMEOUT) for p in self.processes]
        finally:
            self.kill()
        return [(p.returncode, out, err) for p, (out, err) in zip(self.processes, outputs)]

    def kill(self):
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.communicate(timeout=30)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


def _assert_released_in_sync(results, tmp_path):
    for returncode, _, stderr in results:
        assert returncode == 0, stderr[-3000:]
    (_, chief_out, _), (_, worker_out, _) = results
    assert "Released version 1" in chief_out
    assert "Worker done" in worker_out
    # Trainable weights and batch-norm statistics alike.
    assert _digest(chief_out) == _digest(worker_out)
    # The non-chief worker wrote nothing outside its temporary folder, and
    # removed that too (a killed process may leave autograph's files there).
    assert not (tmp_path / "out1").exists()
    assert not list((tmp_path / "tmp").glob("mnist_sum_*"))
    keras.models.load_model(tmp_path / "out0" / "mnist_sum" / "v1.keras")
    return _digest(chief_out)


@pytest.mark.large
def test_multi_worker_equals_mirrored(tmp_path, data):
    with Workers(tmp_path, data, epochs=2) as workers:
        digest = _assert_released_in_sync(workers.finish(), tmp_path)
    # Same global batch (2 x 16) and seed over two logical devices of one process.
    assert _digest(_train_mirrored(data, tmp_path / "mirrored", epochs=2)) == digest


def _backup_epoch(folder):
    """The epoch recorded by a `BackupAndRestore` under `folder`, or None."""
    for path in folder.glob("**/backup/training_metadata.json"):
        try:
            return json.loads(path.read_text())["epoch"]
        except (ValueError, OSError):  # Being written.
            return None
    return None


def _wait_for(condition, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s")


@pytest.mark.large
def test_multi_worker_resumes_after_the_workers_are_killed(tmp_path, data):
    epochs = 6
    workers = Workers(tmp_path, data, epochs=epochs).start()
    chief_dir, worker_dir = tmp_path / "out0", workers.temp
    try:
        # A worker dies once it has backed up an epoch. The chief cannot finish
        # the next step without it, so it stops at the same backup; it is
        # killed once that is written.
        _wait_for(lambda: (_backup_epoch(worker_dir) or 0) >= 1)
        workers.processes[1].send_signal(signal.SIGKILL)
        workers.processes[1].communicate(timeout=30)
        epoch = _backup_epoch(worker_dir)
        _wait_for(lambda: _backup_epoch(chief_dir) == epoch)
    finally:
        workers.kill()
    assert 1 <= epoch < epochs

    # The same command again on both machines.
    with Workers(tmp_path, data, epochs=epochs) as again:
        results = again.finish()
    for _, stdout, stderr in results:
        # Resumed: the first epoch run is the one after the backup.
        assert re.search(r"^Epoch (\d+)/", stdout, re.M).group(1) == str(epoch + 1), stderr[-3000:]
    _assert_released_in_sync(results, tmp_path)


def test_shim_refuses_an_untested_keras_version():
    multi_worker_shim.check_keras_version(multi_worker_shim.TESTED_KERAS_VERSIONS[0])
    with pytest.raises(RuntimeError, match=r"tested on Keras .*Received: Keras 3\.99\.0"):
        multi_worker_shim.check_keras_version("3.99.0")


def test_shim_leaves_other_strategies_alone():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    trainer = multi_worker_shim._trainer  # Keras' module that the shim patches.
    before = trainer.reduce_per_replica
    for strategy in (tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(["/cpu:0"])):
        multi_worker_shim.apply(model, strategy)
    assert "_maybe_symbolic_build" not in vars(model)
    assert trainer.reduce_per_replica is before


def test_only_the_shim_imports_keras_internals():
    importers = set()
    for folder in ("mnist_sum_keras", "scripts", "bench", "tests"):
        for path in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True):
            with open(path) as f:
                if re.search(r"^\s*(from|import) keras\.src", f.read(), re.M):
                    importers.add(os.path.relpath(path, ROOT))
    assert importers == {os.path.join("mnist_sum_keras", "multi_worker_shim.py")}

"""A training folder belongs to one run: resume, refuse, restart, one process at a time."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys

import keras
import pytest

from conftest import ROOT, call_main, wait_for_file, write_npz
from mnist_sum_keras import export
from mnist_sum_keras.cli import train as train_cli
from mnist_sum_keras.config import Config
from mnist_sum_keras.run_folder import RunFolderError, claim, run_identity
from mnist_sum_keras.train import run, train

TINY = ["--epochs", "3", "--batch-size", "16", "--validation-size", "40",
        "--conv-filters", "4", "8", "--feature-units", "16", "--sum-units", "16",
        "--verbose", "0"]


def _listing(folder):
    """Every path under `folder` with its size and modification time, but the lock
    (which names the process holding the folder, whoever that is now)."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if path == os.path.join(folder, "lock"):
                continue
            found[os.path.relpath(path, folder)] = (os.path.getsize(path),
                                                    os.stat(path).st_mtime_ns)
    return found


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    """Interrupts `fit` once the first epoch's backup is written (as a kill would)."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def _config(data, out, **changes):
    """The Config that `train.py --data data --output-dir out` with TINY builds."""
    config = Config(data_path=data, output_dir=str(out), epochs=3, batch_size=16,
                    validation_size=40, conv_filters=(4, 8), feature_units=16,
                    sum_units=(16,))
    return dataclasses.replace(config, **changes)


@pytest.fixture(scope="session")
def _interrupted_once(tmp_path_factory):
    """A seed-1 run of TINY stopped after its first epoch: `(folder, data, out)`."""
    folder = tmp_path_factory.mktemp("interrupted")
    data = write_npz(folder / "mnist.npz", train=240, test=30)
    out = folder / "out"
    work = os.path.join(out, "mnist_sum", "training")
    with pytest.raises(KeyboardInterrupt):
        train(_config(data, out), work, verbose=0, callbacks=[_StopAfterFirstEpoch()])
    assert os.path.isdir(os.path.join(work, "backup"))
    return folder


@pytest.fixture
def interrupted(_interrupted_once, tmp_path):
    """`(data, out, work_dir)`: a copy, in tmp_path, of the interrupted run's data
    file and output folder (a run's identity holds no paths)."""
    shutil.copytree(_interrupted_once, tmp_path, dirs_exist_ok=True)
    out = tmp_path / "out"
    return str(tmp_path / "mnist.npz"), out, os.path.join(out, "mnist_sum", "training")


def _cli(data, out, *extra):
    return call_main(train_cli.main, "--data", data, "--output-dir", out, *TINY, *extra)


@pytest.mark.parametrize("extra,lines", [
    (["--seed", "2", "--learning-rate", "0.01"],
     ["seed: 1 in the interrupted run, 2 now",
      "learning_rate: 0.003 in the interrupted run, 0.01 now"]),
    (["--conv-filters", "8", "16", "32"],
     ["conv_filters: [4, 8] in the interrupted run, [8, 16, 32] now"]),
])
def test_a_different_command_is_refused_before_touching_anything(interrupted, extra, lines):
    data, out, work = interrupted
    before = _listing(work)
    code, _, err = _cli(data, out, *extra)
    assert code == 2, err
    assert f"The training folder {work} holds an interrupted run" in err
    for line in lines:
        assert f"\n  {line}" in err
    assert "rerun the command that started it" in err and "--restart" in err
    assert "Traceback" not in err and "could not be loaded" not in err
    assert _listing(work) == before
    assert export.existing_versions(os.path.join(out, "mnist_sum")) == []


def test_changed_data_is_refused(interrupted, tmp_path):
    data, out, work = interrupted
    other = write_npz(tmp_path / "other.npz", train=241, test=30)
    code, _, err = _cli(other, out)
    assert code == 2 and "\n  data_sha256: \"" in err and "in the interrupted run" in err
    assert err.count("\n  ") == 1, err  # Only the data differs, not its path.


def test_the_same_command_resumes_and_releases_what_it_ran(interrupted):
    data, out, work = interrupted
    code, out_text, err = _cli(data, out)
    assert code == 0, err
    base = os.path.join(out, "mnist_sum")
    with open(os.path.join(base, "v1.history.csv")) as f:
        epochs = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    assert epochs == ["0", "1", "2"]  # Epoch 0 from the interrupted run, once.
    assert Config.from_json(os.path.join(base, "v1.config.json")) == _config(None, out)
    with open(os.path.join(base, "v1.metrics.json")) as f:
        assert json.load(f)["config"]["seed"] == 1
    assert not os.path.exists(work)


@pytest.mark.large  # A real fit and release.
def test_restart_discards_the_other_run(interrupted):
    data, out, work = interrupted
    code, _, err = _cli(data, out, "--seed", "2", "--restart")
    assert code == 0, err
    base = os.path.join(out, "mnist_sum")
    with open(os.path.join(base, "v1.history.csv")) as f:
        assert len(f.read().splitlines()) == 1 + 3  # All three epochs of this run.
    with open(os.path.join(base, "v1.config.json")) as f:
        assert json.load(f)["seed"] == 2


def test_files_without_a_recorded_identity_are_refused(tmp_path, tiny_config):
    work = tmp_path / "training"
    (work / "backup").mkdir(parents=True)
    (work / "best-001.keras").write_bytes(b"an older version's checkpoint")
    identity = {"seed": 1}
    with pytest.raises(RunFolderError, match="did not record its settings "
                                             r"\(backup, best-001.keras\)"):
        with claim(str(work), identity):
            pass
    with claim(str(work), identity, restart=True) as resumed:
        assert resumed is False
        assert sorted(os.listdir(work)) == ["lock", "run.json"]


def test_the_same_run_with_nothing_to_resume_starts_clean(tmp_path):
    work = tmp_path / "training"
    with claim(str(work), {"seed": 1}):
        (work / "best-001.keras").write_bytes(b"killed before its first backup")
        (work / "history.csv").write_text("epoch\n0\n")
    with claim(str(work), {"seed": 1}) as resumed:
        assert resumed is False
        assert sorted(os.listdir(work)) == ["lock", "run.json"]
    with claim(str(work), {"seed": 1}):
        (work / "backup").mkdir()
    with claim(str(work), {"seed": 1}) as resumed:
        assert resumed is True and (work / "backup").is_dir()


def test_identity_ignores_where_files_go_but_not_the_data(tiny_config, tiny_datasets):
    moved = dataclasses.replace(tiny_config, output_dir="elsewhere", data_path="x.npz")
    assert run_identity(tiny_config, tiny_datasets) == run_identity(moved, tiny_datasets)
    images, digits = tiny_datasets["train"]
    changed = dict(tiny_datasets, train=(images, (digits + 1) % 10))
    assert (run_identity(tiny_config, tiny_datasets)["data_sha256"]
            != run_identity(tiny_config, changed)["data_sha256"])
    assert run_identity(tiny_config, tiny_datasets, replicas=2)["replicas"] == 2


def test_a_folder_in_use_is_refused_naming_the_process(tmp_path):
    work = str(tmp_path / "training")
    with claim(work, {"seed": 1}):
        with pytest.raises(RunFolderError, match=f"in use by process {os.getpid()} on "):
            with claim(work, {"seed": 1}):
                pass
    with claim(work, {"seed": 1}):  # Free again once released.
        pass


HOLDER = """
import sys, time
from mnist_sum_keras.run_folder import claim
with claim(sys.argv[1], {"seed": 1}):
    print("held", flush=True)
    time.sleep(300)
"""


@pytest.mark.large
def test_a_lock_left_by_a_killed_process_blocks_nothing(tmp_path):
    work = str(tmp_path / "training")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, work], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"  # Bounded by the sleep.
        with pytest.raises(RunFolderError, match=f"in use by process {holder.pid} "):
            with claim(work, {"seed": 1}):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert os.path.isfile(os.path.join(work, "lock"))  # Left behind by the kill.
    with claim(work, {"seed": 1}) as resumed:
        assert resumed is False


@pytest.mark.large
def test_a_second_run_is_refused_while_the_first_finishes_and_releases(tmp_path):
    data = write_npz(tmp_path / "mnist.npz", train=1200, test=30)
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--data", data,
               "--output-dir", str(out), *TINY]
    backup = out / "mnist_sum" / "training" / "backup"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_file(backup, first)
            # Paused, the first run holds its folder for as long as the second takes.
            first.send_signal(signal.SIGSTOP)
            try:
                second = subprocess.run(command, capture_output=True, text=True, timeout=300)
            finally:
                first.send_signal(signal.SIGCONT)
            first.wait(timeout=600)
        finally:
            first.kill()
    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    assert f"is in use by process {first.pid} on " in second.stderr
    assert "Epoch" not in second.stdout
    assert first.returncode == 0, (tmp_path / "first.log").read_text()[-3000:]
    base = out / "mnist_sum"
    assert sorted(os.listdir(base)) == ["1", "v1.config.json", "v1.history.csv", "v1.keras",
                                        "v1.logs", "v1.metrics.json"]


@pytest.mark.parametrize("step", [".keras", ".metrics.json", "version rename"])
def test_a_release_cut_short_leaves_no_version(tiny_config, tiny_datasets, trained_fit,
                                               monkeypatch, step):
    base = os.path.join(tiny_config.output_dir, "mnist_sum")
    # `trained_fit` stands in for training in both runs; `failing` patches only the failure.
    with monkeypatch.context() as failing:
        if step == "version rename":  # The very last step of a release.
            rename = os.rename

            def rename_or_fail(source, target):
                if target == os.path.join(base, "1"):
                    raise OSError("killed")
                return rename(source, target)
            failing.setattr(export.os, "rename", rename_or_fail)
        else:
            def release_failing_at(model, base_dir, files, version=None):
                return export.release(model, base_dir, dict(files, **{step: _fail}), version)
            failing.setattr("mnist_sum_keras.train.release", release_failing_at)
        with pytest.raises(OSError, match="killed"):
            run(tiny_config, datasets=tiny_datasets, verbose=0)
    assert os.listdir(base) == ["training"]  # No version, no v1.* file, no staging.
    # The rerun starts over in the same training folder and releases version 1.
    assert run(tiny_config, datasets=tiny_datasets, verbose=0)["version"] == 1
    assert sorted(os.listdir(base)) == ["1", "v1.config.json", "v1.history.csv", "v1.keras",
                                        "v1.logs", "v1.metrics.json"]


def _fail(*args, **kwargs):
    raise OSError("killed")


def test_the_next_release_removes_what_a_killed_one_left(tiny_config, tmp_path):
    from mnist_sum_keras.model import build_model

    base = tmp_path / "mnist_sum"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    staging = base / f".release-1-{dead.pid}-{'0' * 32}"
    (staging / "1").mkdir(parents=True)
    (base / "v1.keras").write_bytes(b"left between the renames")
    (base / "v1.logs").mkdir()
    live = base / f".release-7-{os.getpid()}-{'1' * 32}"  # Another release, under way.
    live.mkdir()
    model = build_model(tiny_config)
    export.release(model, str(base), {".keras": model.save})
    assert sorted(os.listdir(base)) == [live.name, "1", "v1.keras"]
    keras.models.load_model(base / "v1.keras")

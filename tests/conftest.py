"""Shared test pieces: tiny synthetic MNIST-like data, a small config, runners."""

import contextlib
import dataclasses
import io
import os
import shutil
import struct
import threading
import time
import zlib

import numpy as np
import pytest

from mnist_sum_keras.config import Config
from mnist_sum_keras.export import latest_version

# The repository root (scripts/, saved_models/).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The released model's base folder, and its SavedModel (the highest version;
# `test_export` checks there is exactly one).
RELEASED = os.path.join(ROOT, "saved_models", "mnist_sum")
RELEASE = latest_version(RELEASED)


def call_main(main, *args):
    """Runs a command line's `main(argv)` in this process.

    Returns:
        `(returncode, stdout, stderr)`, as `subprocess.run` would give, argparse's
        exits included.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def synthetic_digits(count, seed=0):
    """uint8 (count, 28, 28) images whose class k is a bright bar on row 2k+4.

    Learnable in a few steps, so a smoke fit can show the loss falling.
    """
    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 10, size=count).astype(np.uint8)
    images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
    for i, d in enumerate(digits):
        row = 2 * int(d) + 4
        images[i, row:row + 2, 4:24] = 255
    return images, digits


def write_npz(path, train=200, test=50, **overrides):
    """Writes a small npz in the keras.datasets.mnist layout."""
    x_train, y_train = synthetic_digits(train, seed=1)
    x_test, y_test = synthetic_digits(test, seed=2)
    arrays = {"x_train": x_train, "y_train": y_train,
              "x_test": x_test, "y_test": y_test}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return str(path)


class Running:
    """`mnist_sum_keras.server` on a free loopback port, in a thread, stopped on exit."""

    def __init__(self, **kwargs):
        from mnist_sum_keras.server import make_server  # Imports TensorFlow.

        self.server = make_server(host="127.0.0.1", port=0, log=False, **kwargs)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def png_claiming(width, height):
    """A tiny PNG whose header claims width x height (1-bit gray), and no pixels."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def gif_of_frames(frame, count):
    """A GIF of `count` copies of one picture's frame (uint8 (h, w)), each the full
    screen: what giflib decodes frame by frame (~h*w bytes each) however few
    bytes the copies take."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).convert("P").save(buffer, "GIF")
    data = buffer.getvalue()
    at = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while data[at] == 0x21:   # Extensions before the frame: kept once.
        at += 2
        while data[at]:
            at += data[at] + 1
        at += 1
    start = at
    flags = data[at + 9]
    at += 11 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while data[at]:
        at += data[at] + 1
    return data[:start] + data[start:at + 1] * count + b"\x3b"


def jpeg_of_scans(pixels, count):
    """A progressive JPEG of `pixels` (uint8 (h, w, c)) holding `count` scans: its
    smallest scan repeated, which libjpeg decodes again each time over all of the
    picture's coefficients (a CPU bomb in a few hundred bytes per thousand scans)."""
    import tensorflow as tf

    data = tf.io.encode_jpeg(pixels, progressive=True).numpy()
    starts = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\xff\xda"]
    ends = starts[1:] + [data.rindex(b"\xff\xd9")]
    start, end = min(zip(starts, ends), key=lambda se: se[1] - se[0])
    return data[:start] + data[start:end] * (count - len(starts) + 1) + data[end:]


def wait_for_file(path, process, timeout=300):
    """Waits until `path` exists or `process` (a `Popen`) has ended, at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and process.poll() is None:
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


def assert_refuses_bad_files(load, error, folder, suffix, missing, directory, garbage):
    """`load(path)` raises `error` for a missing file, a folder and a file of text.

    Args:
        load: the loader under test, called with a path string.
        error: the exception class it raises.
        folder: an empty scratch folder (pytest's `tmp_path`).
        suffix: the files' extension, e.g. ".png".
        missing, directory, garbage: the patterns each message must match;
            `{name}` stands for the file's name.
    """
    with pytest.raises(error, match=missing.format(name=f"missing{suffix}")):
        load(str(folder / f"missing{suffix}"))
    with pytest.raises(error, match=directory):
        load(str(folder))
    text = folder / f"notes{suffix}"
    text.write_text("not a model, not an image")
    with pytest.raises(error, match=garbage.format(name=f"notes{suffix}")):
        load(str(text))


# A small, fast model configuration (output_dir set by each fixture): one network,
# whose layer names the architecture tests read; committees (the default's
# `members`) have their own tests, each asking for `members` by name.
TINY_CONFIG = dataclasses.replace(
    Config(), epochs=2, batch_size=32, conv_filters=(4, 8), feature_units=16,
    sum_units=(32,), warmup_epochs=0.5, learning_rate=3e-3, validation_size=40,
    members=1, data_path=None)


@pytest.fixture
def tiny_config(tmp_path):
    """`TINY_CONFIG` writing under tmp_path."""
    return dataclasses.replace(TINY_CONFIG, output_dir=str(tmp_path / "out"))


def _tiny_datasets():
    images, digits = synthetic_digits(400, seed=3)
    return {"train": (images[:300], digits[:300]),
            "validation": (images[300:340], digits[300:340]),
            "test": (images[340:], digits[340:])}


@pytest.fixture
def tiny_datasets():
    """Train/validation/test splits of synthetic digits (the same at every call)."""
    return _tiny_datasets()


@pytest.fixture(scope="session")
def tiny_served(tmp_path_factory):
    """An untrained tiny model exported once for the session (both signatures):
    `(model, base folder, version folder)`. Tests only read it."""
    from mnist_sum_keras.export import export_saved_model
    from mnist_sum_keras.model import build_model

    model = build_model(dataclasses.replace(Config(), conv_filters=(4,), feature_units=8,
                                            sum_units=(8,)))
    base = str(tmp_path_factory.mktemp("served") / "mnist_sum")
    return model, base, export_saved_model(model, base)


@pytest.fixture(scope="session")
def tiny_signatures(tiny_served):
    """`tiny_served`'s SavedModel loaded once for the session: `{key: signature}`
    (the benchmarks' own cache, so that their tests share it too)."""
    from bench.common import signatures

    return signatures(tiny_served[2])


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory):
    """One real `train.run` of `TINY_CONFIG` on `tiny_datasets`, shared by the session.

    Returns:
        `(config, metrics)`: the run's config (its output folder is the
        session's) and what `run` returned. Tests only read what it wrote.
    """
    from mnist_sum_keras.train import run

    config = dataclasses.replace(TINY_CONFIG,
                                 output_dir=str(tmp_path_factory.mktemp("release") / "out"))
    return config, run(config, datasets=_tiny_datasets(), verbose=0)


@pytest.fixture
def trained_fit(tiny_release, monkeypatch):
    """Makes `train.run` release the tiny release's model instead of fitting one.

    For tests of what happens around a release, which needs a trained model
    and its record (history, logs), not a fit. Yields that model.
    """
    import keras

    from mnist_sum_keras import train

    _, metrics = tiny_release
    stem = metrics["keras_model"][:-len(".keras")]
    model = keras.models.load_model(metrics["keras_model"])

    def fit(config, work_dir, *args, **kwargs):
        shutil.copyfile(f"{stem}.history.csv", os.path.join(work_dir, train.HISTORY_CSV))
        shutil.copytree(f"{stem}.logs", os.path.join(work_dir, train.TENSORBOARD_LOGS))
        return model, None

    monkeypatch.setattr(train, "_fit", fit)
    return model

"""Bad input at each door gets a clear error naming the input; never a silent answer.

The doors: the Python API (`predict_digits`, which checks images and numbers
before `model.predict`), the served signature (`serving_default` of the
SavedModel) and the scripts (exit code != 0, message on stderr, nothing written).
"""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import write_npz
from mnist_sum_keras.config import Config
from mnist_sum_keras.export import SIGNATURE_KEY, export_saved_model
from mnist_sum_keras.model import build_model
from mnist_sum_keras.predict import predict_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = np.zeros((3, 28, 28), np.uint8)


@pytest.fixture(scope="module")
def model():
    return build_model(dataclasses.replace(Config(), conv_filters=(4,), feature_units=8,
                                           sum_units=(8,)))


@pytest.fixture(scope="module")
def signature(model, tmp_path_factory):
    path = export_saved_model(model, str(tmp_path_factory.mktemp("bad") / "mnist_sum"))
    return tf.saved_model.load(path).signatures[SIGNATURE_KEY]


# (images, numbers, message): the Python API door.
API_BAD = {
    "number 10": (IMAGES[:1], [10], "number=10"),
    "number -1": (IMAGES[:1], [-1], "number=-1"),
    "number 3.5": (IMAGES[:1], [3.5], "number=3.5"),
    "number '7'": (IMAGES[:1], ["7"], "number='7'"),
    "number None": (IMAGES[:1], [None], "number=None"),
    "numbers of wrong length": (IMAGES, [1, 2], "one per image \\(3\\). Received: 2"),
    "one bad number in a batch": (IMAGES, [1, 12, 3], "number=12"),
    "image (28, 27)": (np.zeros((1, 28, 27), np.uint8), [1], r"shape=\(1, 28, 27\)"),
    "colour image": (np.zeros((1, 28, 28, 3), np.uint8), [1], r"shape=\(1, 28, 28, 3\)"),
    "extra axes": (np.zeros((1, 1, 28, 28), np.uint8), [1], r"shape=\(1, 1, 28, 28\)"),
    "float 0..1 image": (np.full((1, 28, 28), 0.5, np.float32), [1], "uint8.*float32"),
    "all-zero float image": (np.zeros((1, 28, 28)), [1], "uint8.*float64"),
    "NaN image": (np.full((1, 28, 28), np.nan, np.float32), [1], "uint8.*float32"),
    "empty batch": (np.zeros((0, 28, 28), np.uint8), [1], "empty"),
    "batch sizes differ": (IMAGES[:2], [1, 2, 3], "one per image \\(2\\). Received: 3"),
}


@pytest.mark.parametrize("case", sorted(API_BAD))
def test_python_api_refuses(model, case):
    images, numbers, message = API_BAD[case]
    with pytest.raises(ValueError, match=message):
        predict_digits(model, images, numbers)


# Legitimately convertible input is converted (documented in the README).
API_CONVERTED = {
    "int64 numbers": (IMAGES, np.array([1, 2, 3], np.int64)),
    "(N, 28, 28, 1) images": (np.zeros((3, 28, 28, 1), np.uint8), [1, 2, 3]),
    "batch of 1": (IMAGES[:1], [4]),
    "one number for all images": (IMAGES, [4]),
}


@pytest.mark.parametrize("case", sorted(API_CONVERTED))
def test_python_api_converts(model, case):
    images, numbers = API_CONVERTED[case]
    results = predict_digits(model, images, numbers)
    assert len(results) == len(images)
    assert all(0 <= r["sum"] <= 18 and 0 <= r["digit"] <= 9 for r in results)


# (image, number, error type, message): the served signature's door. A shape
# can be refused by the signature's own check (ValueError) or, as TF Serving
# does not check shapes, by the serving function's (InvalidArgument).
SHAPE_ERRORS = (tf.errors.InvalidArgumentError, TypeError, ValueError)
# A wrong dtype: refused by the signature's binding (TypeError) and the graph
# runtime (InvalidArgument, what TF Serving answers), both naming the dtype.
TYPE_ERRORS = (tf.errors.InvalidArgumentError, TypeError)
SIGNATURE_BAD = {
    "number 10": (IMAGES[:1], np.array([10], np.int32), tf.errors.InvalidArgumentError,
                  "number must be in 0..9"),
    "number -1": (IMAGES[:1], np.array([-1], np.int32), tf.errors.InvalidArgumentError,
                  "number must be in 0..9"),
    "one bad number in a batch": (IMAGES, np.array([1, 12, 3], np.int32),
                                  tf.errors.InvalidArgumentError, "number must be in 0..9"),
    "batch sizes differ": (IMAGES[:2], np.array([1, 2, 3], np.int32),
                           tf.errors.InvalidArgumentError, "same batch size"),
    "empty batch": (np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int32),
                    tf.errors.InvalidArgumentError, "image batch is empty"),
    "number 3.5": (IMAGES[:1], np.array([3.5], np.float32), TYPE_ERRORS, "int32"),
    "number '7'": (IMAGES[:1], np.array(["7"]), TYPE_ERRORS, "int32"),
    "int64 number": (IMAGES[:1], np.array([7], np.int64), TYPE_ERRORS, "int32"),
    "image (28, 27)": (np.zeros((1, 28, 27), np.uint8), np.array([1], np.int32),
                       SHAPE_ERRORS, r"28, 28"),
    "colour image": (np.zeros((1, 28, 28, 3), np.uint8), np.array([1], np.int32),
                     SHAPE_ERRORS, r"image must have shape \[batch, 28, 28\]"),
    "two numbers per image": (IMAGES[:1], np.array([[1, 2]], np.int32), SHAPE_ERRORS,
                              r"number must have shape \[batch\]"),
    "float image": (np.full((1, 28, 28), 0.5, np.float32), np.array([1], np.int32),
                    TYPE_ERRORS, "uint8"),
}


@pytest.mark.parametrize("case", sorted(SIGNATURE_BAD))
def test_served_signature_refuses(signature, case):
    image, number, error, message = SIGNATURE_BAD[case]
    with pytest.raises(error, match=message):
        signature(image=tf.constant(image), number=tf.constant(number))


def test_served_signature_answers_batch_of_one(signature):
    out = signature(image=tf.constant(IMAGES[:1]), number=tf.constant([4], tf.int32))
    assert out["sum"].shape == (1,)


def test_served_signature_converts_a_channel_axis_of_one(signature):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    number = tf.constant([4, 7], tf.int32)
    plain = signature(image=tf.constant(images), number=number)
    channel = signature(image=tf.constant(images[..., None]), number=number)
    np.testing.assert_array_equal(plain["sum_probabilities"], channel["sum_probabilities"])


def _run(script, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), *args],
                          capture_output=True, text=True, timeout=300)


def test_train_script_refuses_truncated_npz(tmp_path):
    good = write_npz(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    with open(good, "rb") as f:
        truncated.write_bytes(f.read()[:5000])
    result = _run("train.py", "--data", str(truncated), "--output-dir", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "truncated.npz" in result.stderr
    assert not (tmp_path / "out").exists()


def test_evaluate_script_refuses_keras_file_that_is_not_a_model(tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    result = _run("evaluate.py", str(fake), "--output-dir", str(tmp_path / "report"))
    assert result.returncode != 0
    assert "fake.keras" in result.stderr
    assert not (tmp_path / "report").exists()


def test_evaluate_script_refuses_missing_model(tmp_path):
    result = _run("evaluate.py", str(tmp_path / "nothing"), "--output-dir",
                  str(tmp_path / "report"))
    assert result.returncode != 0 and "Model not found" in result.stderr
    assert not (tmp_path / "report").exists()

"""Tests of MNIST loading and the tf.data pipeline."""

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from conftest import synthetic_digits, write_npz
from mnist_sum_keras import data
from mnist_sum_keras.config import DATA_ENV_VAR


def _numbers(dataset):
    return np.concatenate([x["number"].numpy() for x, _ in dataset])


@pytest.mark.parametrize("training", [True, False])
def test_elements_structure_and_dtypes(training):
    images, digits = synthetic_digits(50)
    ds = data.make_dataset(images, digits, batch_size=16, training=training, seed=0)
    x, y = next(iter(ds))
    assert set(x) == {"image", "number"} and set(y) == {"digit", "sum"}
    assert x["image"].dtype == tf.uint8 and x["image"].shape == (16, 28, 28)
    for t in (x["number"], y["digit"], y["sum"]):
        assert t.dtype == tf.int32 and t.shape == (16,)


@pytest.mark.parametrize("training", [True, False])
def test_sum_is_digit_plus_number_and_images_match_labels(training):
    images, digits = synthetic_digits(100)
    ds = data.make_dataset(images, digits, batch_size=32, training=training, seed=0)
    seen = 0
    lookup = {img.tobytes(): d for img, d in zip(images, digits)}
    for x, y in ds:
        np.testing.assert_array_equal(y["sum"], y["digit"] + x["number"])
        assert np.all((x["number"] >= 0) & (x["number"] <= 9))
        for img, d in zip(x["image"].numpy(), y["digit"].numpy()):
            assert lookup[img.tobytes()] == d
        seen += len(y["digit"])
    assert seen == 100


def test_training_numbers_cover_all_ten_values_uniformly():
    images, digits = synthetic_digits(5000)
    ds = data.make_dataset(images, digits, batch_size=500, training=True, seed=0)
    counts = np.bincount(_numbers(ds), minlength=10)
    assert len(counts) == 10 and counts.min() > 400, counts


def test_training_draws_fresh_numbers_every_epoch():
    images, digits = synthetic_digits(200)
    # No shuffle effect on numbers: compare the number streams themselves.
    ds = data.make_dataset(images, digits, batch_size=200, training=True, seed=0)
    first, second = _numbers(ds), _numbers(ds)
    assert not np.array_equal(first, second)


def test_training_pipeline_repeats_for_same_seed():
    images, digits = synthetic_digits(200)
    a = data.make_dataset(images, digits, batch_size=200, training=True, seed=7)
    b = data.make_dataset(images, digits, batch_size=200, training=True, seed=7)
    np.testing.assert_array_equal(_numbers(a), _numbers(b))


def test_evaluation_numbers_fixed_by_seed():
    images, digits = synthetic_digits(300)
    a = data.make_dataset(images, digits, batch_size=64, training=False, seed=5)
    b = data.make_dataset(images, digits, batch_size=64, training=False, seed=5)
    first = _numbers(a)
    np.testing.assert_array_equal(first, _numbers(b))
    np.testing.assert_array_equal(first, _numbers(a))  # Second pass, same numbers.
    assert set(first) == set(range(10))
    np.testing.assert_array_equal(first, data.fixed_numbers(300, 5))
    assert not np.array_equal(first, data.fixed_numbers(300, 6))


def test_make_dataset_rejects_mismatched_lengths():
    images, digits = synthetic_digits(10)
    with pytest.raises(ValueError, match="same length"):
        data.make_dataset(images, digits[:5], batch_size=4, training=False, seed=0)


def test_all_pairs_pairs_every_image_with_each_number():
    images, digits = synthetic_digits(3)
    pair_images, numbers, pair_digits, sums = data.all_pairs(images, digits)
    assert len(numbers) == 30
    np.testing.assert_array_equal(numbers[:10], np.arange(10))
    np.testing.assert_array_equal(pair_images[10], images[1])
    np.testing.assert_array_equal(sums, pair_digits + numbers)
    assert pair_digits[25] == digits[2]


def test_split_validation_holds_out_the_last_images():
    images, digits = synthetic_digits(100)
    (xt, yt), (xv, yv) = data.split_validation(images, digits, 30)
    assert len(xt) == 70 and len(xv) == 30
    np.testing.assert_array_equal(xv, images[70:])
    with pytest.raises(ValueError, match="validation_size"):
        data.split_validation(images, digits, 100)


def test_load_npz(tmp_path):
    path = write_npz(tmp_path / "mnist.npz")
    (x_train, y_train), (x_test, y_test) = data.load_mnist(path)
    assert x_train.shape == (200, 28, 28) and x_train.dtype == np.uint8
    assert y_test.shape == (50,)


def test_environment_variable_names_the_file(tmp_path, monkeypatch):
    path = write_npz(tmp_path / "env.npz", train=20)
    monkeypatch.setenv(DATA_ENV_VAR, path)
    (x_train, _), _ = data.load_mnist()
    assert len(x_train) == 20


def test_describe_source_names_the_file_and_its_digest(tmp_path, monkeypatch):
    path = write_npz(tmp_path / "mine.npz", train=20)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert data.describe_source(path) == {"source": "mine.npz", "sha256": digest}
    monkeypatch.setenv(DATA_ENV_VAR, path)
    assert data.describe_source() == {"source": "mine.npz", "sha256": digest}
    monkeypatch.delenv(DATA_ENV_VAR)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    assert data.describe_source() == {"source": "keras.datasets.mnist", "sha256": None}


def test_missing_file_error_names_file(tmp_path):
    missing = str(tmp_path / "nope.npz")
    with pytest.raises(data.DataError, match="not found.*nope.npz"):
        data.load_mnist(missing)


def test_directory_is_not_a_data_file(tmp_path):
    with pytest.raises(data.DataError, match="not found"):
        data.load_mnist(str(tmp_path))


def test_npz_missing_key(tmp_path):
    path = tmp_path / "bad.npz"
    x, y = synthetic_digits(5)
    np.savez(path, x_train=x, y_train=y, x_test=x)
    with pytest.raises(data.DataError, match=r"lacks the keys \['y_test'\]"):
        data.load_mnist(str(path))


@pytest.mark.parametrize("key,value,match", [
    ("x_train", np.zeros((10, 28, 27), np.uint8), "train images.*shape"),
    ("x_test", np.zeros((50, 28, 28), np.float32), "test images.*uint8"),
    ("y_train", np.zeros((7,), np.uint8), "train labels.*shape"),
    ("y_test", np.full((50,), 10, np.uint8), "test labels.*0..9"),
])
def test_npz_wrong_arrays(tmp_path, key, value, match):
    path = write_npz(tmp_path / "bad.npz", **{key: value})
    with pytest.raises(data.DataError, match=match):
        data.load_mnist(path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("hello")
    with pytest.raises(data.DataError, match="Could not read MNIST file"):
        data.load_mnist(str(path))


def test_failed_download_says_how_to_use_a_local_file(monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(data.keras.datasets.mnist, "load_data", offline)
    with pytest.raises(data.DataError, match=f"--data PATH.*{DATA_ENV_VAR}"):
        data.load_mnist()


def test_pipelines_do_not_autotune():
    # Autotuning stalled training for seconds each epoch (see make_dataset).
    images, digits = np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8)
    for training in (True, False):
        ds = data.make_dataset(images, digits, batch_size=2, training=training, seed=0)
        assert ds.options().autotune.enabled is False

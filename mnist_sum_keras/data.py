"""Loading MNIST and the tf.data pipeline that pairs images with numbers."""

import hashlib
import os

import keras
import numpy as np
import tensorflow as tf

from mnist_sum_keras.config import DATA_ENV_VAR, IMAGE_SHAPE, NUM_DIGITS

_SPLITS = {"x_train": "train images", "y_train": "train labels",
           "x_test": "test images", "y_test": "test labels"}


class DataError(ValueError):
    """The MNIST data could not be loaded or is not in the expected layout."""


def resolve_data_path(path=None):
    """Returns `path`, else `$MNIST_SUM_DATA`, else None (meaning: download)."""
    return path or os.environ.get(DATA_ENV_VAR) or None


def load_mnist(path=None):
    """Loads MNIST as `((x_train, y_train), (x_test, y_test))`.

    Args:
        path: A local npz in the `keras.datasets.mnist` layout. When None,
            `$MNIST_SUM_DATA` is used, and when that is unset too the data is
            downloaded and cached by `keras.datasets.mnist.load_data()`.

    Returns:
        uint8 images of shape (N, 28, 28) and uint8 labels of shape (N,).

    Raises:
        DataError: the file is missing or malformed, or the download failed.
    """
    path = resolve_data_path(path)
    if path is None:
        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as e:  # Network errors come in many types.
            raise DataError(
                f"Could not download MNIST with keras.datasets.mnist.load_data(): {e}. "
                f"Point at a local copy in the Keras npz layout with --data PATH "
                f"or the environment variable {DATA_ENV_VAR}=PATH."
            ) from e
        arrays = {"x_train": x_train, "y_train": y_train,
                  "x_test": x_test, "y_test": y_test}
        source = "keras.datasets.mnist"
    else:
        arrays = _read_npz(path)
        source = path
    _check_arrays(arrays, source)
    return ((arrays["x_train"], arrays["y_train"]),
            (arrays["x_test"], arrays["y_test"]))


def describe_source(path=None):
    """Where `load_mnist(path)` reads from, without a machine's path.

    Returns:
        `{"source": ..., "sha256": ...}`: the file's name (or
        "keras.datasets.mnist" for the download) and the SHA-256 of its bytes
        (of Keras' cached copy for the download; None if there is none).
    """
    path = resolve_data_path(path)
    source = os.path.basename(path) if path else "keras.datasets.mnist"
    if path is None:
        path = os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")),
                            "datasets", "mnist.npz")
    if not os.path.isfile(path):
        return {"source": source, "sha256": None}
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"source": source, "sha256": digest.hexdigest()}


def _read_npz(path):
    if not os.path.isfile(path):
        raise DataError(
            f"MNIST file not found: {path!r}. Expected an npz file with the keys "
            f"{sorted(_SPLITS)} (the keras.datasets.mnist layout)."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = sorted(set(_SPLITS) - set(npz.files))
            if missing:
                raise DataError(
                    f"MNIST file {path!r} lacks the keys {missing}. Expected the keys "
                    f"{sorted(_SPLITS)}; found {sorted(npz.files)}."
                )
            return {key: npz[key] for key in _SPLITS}
    except DataError:
        raise
    except Exception as e:  # zipfile, pickle and OS errors for a bad file.
        raise DataError(
            f"Could not read MNIST file {path!r} as an npz archive: {e}"
        ) from e


def _check_arrays(arrays, source):
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise DataError(
                f"MNIST {_SPLITS[f'x_{split}']} in {source!r} must be uint8 of shape "
                f"(N, 28, 28). Received: dtype={images.dtype}, shape={images.shape}"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(
                f"MNIST {_SPLITS[f'y_{split}']} in {source!r} must have shape "
                f"({images.shape[0]},). Received: shape={labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.size and (
                labels.min() < 0 or labels.max() >= NUM_DIGITS):
            raise DataError(
                f"MNIST {_SPLITS[f'y_{split}']} in {source!r} must be integers in "
                f"0..9. Received: dtype={labels.dtype}"
            )


def split_validation(images, digits, validation_size):
    """Holds out the last `validation_size` examples for model selection."""
    if not 0 <= validation_size < len(images):
        raise ValueError(
            f"validation_size must be in 0..{len(images) - 1}. "
            f"Received: validation_size={validation_size}"
        )
    cut = len(images) - validation_size
    return (images[:cut], digits[:cut]), (images[cut:], digits[cut:])


def fixed_numbers(count, seed):
    """The numbers 0..9 paired with a held-out set: the same for the same seed."""
    return np.random.default_rng(seed).integers(0, NUM_DIGITS, size=count, dtype=np.int32)


def _to_batch(pair, raw_numbers):
    images, digits = pair
    numbers = tf.cast(raw_numbers % NUM_DIGITS, tf.int32)
    digits = tf.cast(digits, tf.int32)
    return ({"image": images, "number": numbers},
            {"digit": digits, "sum": digits + numbers})


def make_dataset(images, digits, *, batch_size, training, seed):
    """The pipeline of `({"image", "number"}, {"digit", "sum"})` batches.

    Args:
        images: uint8 array (N, 28, 28).
        digits: integer labels (N,).
        batch_size: Examples per batch.
        training: If True, examples are reshuffled and paired with fresh
            random numbers on every pass (so the network cannot memorise
            pairs); if False, order and numbers are fixed by `seed`.
        seed: Seeds shuffling and numbers.

    Returns:
        A `tf.data.Dataset`; `number` and both labels are int32.
    """
    if len(images) != len(digits):
        raise ValueError(
            f"images and digits must have the same length. "
            f"Received: {len(images)} images and {len(digits)} digits"
        )
    pairs = tf.data.Dataset.from_tensor_slices((images, digits))
    if training:
        pairs = pairs.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        # A new stream of numbers on every iteration, i.e. every epoch; the
        # raw int64 draws become 0..9 in the batched map.
        numbers = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    else:
        numbers = tf.data.Dataset.from_tensor_slices(fixed_numbers(len(images), seed))
    # Batch, then one vectorised map per batch: per element only shuffle and
    # zip remain, which keeps the pipeline far ahead of training (bench/).
    dataset = tf.data.Dataset.zip(pairs, numbers).batch(batch_size).map(
        _to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # The pipeline starts from in-memory arrays, not files: under a
    # multi-worker strategy each worker takes its share of the elements.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    # No autotuning: Keras makes a new iterator every epoch and validation
    # pass, and destroying one whose autotune thread sleeps out its period
    # stalled training for 10-20 s at 0% CPU every few epochs (a native stack
    # showed ~RootDataset::Iterator waiting on it). Without it the parallel map
    # uses one thread per core and prefetch keeps one batch ready, which keeps
    # this pipeline far ahead of training (bench/); the batches are the same.
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def all_pairs(images, digits):
    """Every image with each number 0..9: 10 * N pairs, image-major.

    Returns:
        `(images, numbers, digits, sums)` numpy arrays of 10 * N rows.
    """
    n = len(images)
    numbers = np.tile(np.arange(NUM_DIGITS, dtype=np.int32), n)
    rep_digits = np.repeat(np.asarray(digits, dtype=np.int32), NUM_DIGITS)
    return (np.repeat(images, NUM_DIGITS, axis=0), numbers, rep_digits,
            rep_digits + numbers)

"""What every benchmark module shares: its command line, the data splits, bench/results.json."""

import argparse
import dataclasses
import functools
import json
import os

from mnist_sum_keras import data
from mnist_sum_keras.config import Config

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")


@functools.cache
def signatures(path):
    """A SavedModel's signatures, `{key: function}`, loaded once per process: a
    version folder never changes, and a load (about a second) and its first
    call (a few) cost more than most benchmark batches."""
    import tensorflow as tf

    return tf.saved_model.load(path).signatures


def parser(doc):
    """An argparse parser with the options every benchmark takes (--data, --quick, --output)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data", default=None, help="local MNIST npz (default: download "
                        "or $MNIST_SUM_DATA)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings, for the test that keeps this running")
    parser.add_argument("--output", default=RESULTS,
                        help="the results file; its other parts are kept")
    return parser


def config_and_splits(data_path, quick):
    """The default `Config` and MNIST as `{"train", "validation", "test"}` splits.

    `quick` shrinks both (a tiny network, 512 training images, 100 test
    images) to seconds: its figures mean nothing.
    """
    config = dataclasses.replace(Config(), data_path=data_path)
    (x, y), (x_test, y_test) = data.load_mnist(data_path)
    train_split, val_split = data.split_validation(x, y, config.validation_size)
    if quick:
        config = dataclasses.replace(config, epochs=1, conv_filters=(4, 8),
                                     feature_units=16, sum_units=(16,))
        train_split = tuple(a[:512] for a in train_split)
        val_split = tuple(a[:128] for a in val_split)
        x_test, y_test = x_test[:100], y_test[:100]
    return config, {"train": train_split, "validation": val_split, "test": (x_test, y_test)}


def save_parts(path, parts):
    """Writes `parts` (top-level keys) into the JSON file `path`, keeping its other keys."""
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    results.update(parts)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)


def parse_variant(spec):
    """`"name:field=value,..."` -> (name, Config changes)."""
    name, _, fields = spec.partition(":")
    changes = {}
    for item in filter(None, fields.split(",")):
        field, _, value = item.partition("=")
        kind = {f.name: f.type for f in dataclasses.fields(Config)}.get(field)
        if kind is None:
            raise ValueError(f"{field!r} is not a Config field (in {spec!r})")
        changes[field] = (tuple(int(v) for v in value.split("/")) if kind is tuple
                          else kind(value))
    return name, changes

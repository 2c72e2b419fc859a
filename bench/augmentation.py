"""Cost of the training-time augmentation: Keras' three layers against RandomDistortion.

    python -m bench.augmentation [--data PATH] [--batches 200]

Times one batch of augmentation (batch 128, compiled with `tf.function`, the
median of five rounds) for Keras' `RandomRotation` + `RandomZoom` +
`RandomTranslation` (three resamplings: the model's augmentation before
`RandomDistortion`) and for `RandomDistortion` with the default sizes, with and
without the elastic field, and prints milliseconds per batch.
"""

import argparse
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from mnist_sum_keras import data
from mnist_sum_keras.augment import RandomDistortion, distortion_sizes
from mnist_sum_keras.config import Config


def candidates(config):
    fill = {"fill_mode": "constant", "fill_value": 0.0}
    keras_layers = keras.Sequential([
        keras.layers.RandomRotation(config.max_rotation, seed=1, **fill),
        keras.layers.RandomZoom(config.max_zoom, seed=2, **fill),
        keras.layers.RandomTranslation(config.max_shift, config.max_shift, seed=3, **fill)])
    sizes = dict(distortion_sizes(config), elastic_alpha=0.0)
    return {
        "keras_three_layers": keras_layers,
        "random_distortion": RandomDistortion(**sizes, seed=1),
        "random_distortion_elastic": RandomDistortion(
            **dict(sizes, elastic_alpha=34.0), elastic_sigma=config.elastic_sigma, seed=1),
    }


def ms_per_batch(layer, images, batches, rounds=5):
    step = tf.function(lambda x: layer(x, training=True))
    step(images)  # Traces.
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(batches):
            step(images)
        times.append((time.perf_counter() - start) / batches * 1000)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="local MNIST npz")
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args(argv)
    config = Config()
    (x, _), _ = data.load_mnist(args.data)
    images = tf.constant((x[:config.batch_size] / 255).astype(np.float32)[..., None])
    for name, layer in candidates(config).items():
        print(f"{name:<28} {ms_per_batch(layer, images, args.batches):6.2f} ms per batch "
              f"of {config.batch_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The verifier: does a candidate, drawn as MNIST would, look like a digit?

A small network trained on what the front end draws from synthetic photos
(`synthetic.py`) of MNIST **train** digits and of pictures with no digit
(blank paper of every kind, a blank sheet on a table, noise, texture): its
input is the candidate's 28x28 picture and the numbers that describe it
(`stages.FEATURES`: its share of the ink, size, aspect, fill, darkness, how it
touches the frame). `python -m mnist_sum_keras.frontend.train_verifier`
trains it and writes `verifier.npz` beside this file; the front end runs it
with plain TensorFlow ops on those weights (`score`), so the served graph
holds them as constants and needs no Keras.
"""

import os

import numpy as np

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "verifier.npz")
# The layers, in the order their weights are stored (kernel, bias each).
CONV_FILTERS = (16, 32, 32)
HIDDEN = 32


def build(feature_count):
    """The verifier as a Keras model (for training): `{"image", "features"}` ->
    the logit that the candidate is a digit."""
    import keras
    from keras import layers

    image = keras.Input((28, 28), name="image")
    features = keras.Input((feature_count,), name="features")
    x = layers.Reshape((28, 28, 1))(image)
    x = layers.Rescaling(1 / 255)(x)
    for k, filters in enumerate(CONV_FILTERS):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        if k < len(CONV_FILTERS) - 1:
            x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Concatenate()([x, features])
    x = layers.Dense(HIDDEN, activation="relu")(x)
    logit = layers.Dense(1, name="logit")(x)
    return keras.Model({"image": image, "features": features}, logit, name="verifier")


def weights_of(model):
    """The Keras model's weights as the arrays `score` reads, in its order."""
    return [np.asarray(w, np.float32) for w in model.get_weights()]


def save(model, path=WEIGHTS):
    """Writes the weights (`weights_of`) to an npz, atomically."""
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, *weights_of(model))
    os.replace(tmp, path)


_LOADED = {}


def _weights(path):
    if path not in _LOADED:
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"The front end's verifier weights are missing: {path!r}. Train them with "
                "`python -m mnist_sum_keras.frontend.train_verifier`.")
        with np.load(path) as data:
            _LOADED[path] = [data[f"arr_{i}"] for i in range(len(data.files))]
    return _LOADED[path]


def score(images, features, weights=None):
    """The probability that each candidate is a digit: float (k,).

    The same computation as `build`'s model, in plain TensorFlow ops on
    constant weights (the served graph holds them).

    Args:
        images: uint8 (k, 28, 28) candidates.
        features: float (k, len(stages.FEATURES)).
        weights: arrays as `weights_of` gives; default: `WEIGHTS`' file.
    """
    import tensorflow as tf

    w = [tf.constant(a) for a in (weights if weights is not None else _weights(WEIGHTS))]
    x = tf.cast(images, tf.float32)[..., None] / 255.0
    for k in range(len(CONV_FILTERS)):
        x = tf.nn.relu(tf.nn.conv2d(x, w[2 * k], 1, "SAME") + w[2 * k + 1])
        if k < len(CONV_FILTERS) - 1:
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
    x = tf.reduce_max(x, axis=[1, 2])
    x = tf.concat([x, tf.cast(features, tf.float32)], axis=1)
    n = 2 * len(CONV_FILTERS)
    x = tf.nn.relu(tf.matmul(x, w[n]) + w[n + 1])
    return tf.sigmoid(tf.matmul(x, w[n + 2]) + w[n + 3])[:, 0]

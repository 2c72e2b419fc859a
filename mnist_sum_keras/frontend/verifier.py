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


def save(models, path=WEIGHTS):
    """Writes a committee's weights (`weights_of` of each model) to an npz, atomically."""
    arrays = {f"member{m}_{i}": w for m, model in enumerate(models)
              for i, w in enumerate(weights_of(model))}
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


_LOADED = {}


def committee(path=WEIGHTS):
    """The saved committee: a list of each member's arrays (`weights_of`)."""
    if path not in _LOADED:
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"The front end's verifier weights are missing: {path!r}. Train them with "
                "`python -m mnist_sum_keras.frontend.train_verifier`.")
        with np.load(path) as data:
            members = sorted({int(name.split("_")[0][len("member"):]) for name in data.files})
            _LOADED[path] = [[data[f"member{m}_{i}"] for i in range(
                sum(name.startswith(f"member{m}_") for name in data.files))] for m in members]
    return _LOADED[path]


def _member_score(x, features, w):
    import tensorflow as tf

    w = [tf.constant(a) for a in w]
    for k in range(len(CONV_FILTERS)):
        x = tf.nn.relu(tf.nn.conv2d(x, w[2 * k], 1, "SAME") + w[2 * k + 1])
        if k < len(CONV_FILTERS) - 1:
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
    x = tf.reduce_max(x, axis=[1, 2])
    x = tf.concat([x, features], axis=1)
    n = 2 * len(CONV_FILTERS)
    x = tf.nn.relu(tf.matmul(x, w[n]) + w[n + 1])
    return tf.sigmoid(tf.matmul(x, w[n + 2]) + w[n + 3])[:, 0]


def score(images, features, members=None):
    """The probability that each candidate is a digit: float (k,), the mean of the
    committee's members (each trained from its own seed: steadier on pictures
    unlike the training ones).

    Each member is `build`'s model, computed in plain TensorFlow ops on
    constant weights (the served graph holds them).

    Args:
        images: uint8 (k, 28, 28) candidates.
        features: float (k, len(stages.FEATURES)).
        members: a list of arrays as `weights_of` gives, one per member;
            default: `WEIGHTS`' file.
    """
    import tensorflow as tf

    x = tf.cast(images, tf.float32)[..., None] / 255.0
    features = tf.cast(features, tf.float32)
    members = committee() if members is None else members
    return tf.add_n([_member_score(x, features, w) for w in members]) / len(members)

"""Loading a trained model: a `.keras` file or a served SavedModel, one `predict`."""

import os

import keras
import numpy as np
import tensorflow as tf

from mnist_sum_keras.contract import SIGNATURE_KEY
from mnist_sum_keras.model import FusedBatchNormalization


class SavedModelPredictor:
    """A served SavedModel behind the `predict([images, numbers])` of Keras.

    Calls the `serving_default` signature, as TF Serving does, so evaluating
    it measures exactly what is served.
    """

    def __init__(self, path):
        self.path = path
        self._serve = tf.saved_model.load(path).signatures[SIGNATURE_KEY]

    def predict(self, inputs, batch_size=1000, verbose=0):
        images, numbers = inputs
        progress = keras.utils.Progbar(len(images), verbose=verbose or 0)
        digit, total = [], []
        for start in range(0, len(images), batch_size):
            stop = start + batch_size
            out = self._serve(image=tf.constant(images[start:stop]),
                              number=tf.constant(numbers[start:stop], tf.int32))
            digit.append(out["digit_probabilities"].numpy())
            total.append(out["sum_probabilities"].numpy())
            progress.update(min(stop, len(images)))
        return {"digit": np.concatenate(digit), "sum": np.concatenate(total)}


def load_any_model(path):
    """Loads a `.keras` file (safe mode) or a SavedModel directory for evaluation.

    Raises:
        ValueError: the path is missing or is neither kind of model.
    """
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ValueError(f"Not a SavedModel directory (no saved_model.pb): {path!r}")
        return SavedModelPredictor(path)
    if not os.path.isfile(path):
        raise ValueError(f"Model not found: {path!r}. Expected a .keras file or a "
                         "SavedModel directory.")
    if not path.endswith(".keras"):
        raise ValueError(f"Model file must end in .keras. Received: {path!r}")
    try:
        # safe_mode: a downloaded file cannot run arbitrary Python.
        return keras.models.load_model(
            path, safe_mode=True,
            custom_objects={"FusedBatchNormalization": FusedBatchNormalization})
    except Exception as e:
        raise ValueError(f"Could not load {path!r} as a Keras model: {e}") from e

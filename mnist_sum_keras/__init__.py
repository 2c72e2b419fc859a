"""Keras model that reads an MNIST digit and adds a number 0..9 to it."""

__version__ = "0.1.0"

# Importing the package registers its custom layer, so that
# `keras.saving.load_model` reads the package's `.keras` files.
from mnist_sum_keras.model import FusedBatchNormalization  # noqa: E402,F401

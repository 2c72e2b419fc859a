"""Keras model that reads an MNIST digit and adds a number 0..9 to it."""

__version__ = "0.1.0"

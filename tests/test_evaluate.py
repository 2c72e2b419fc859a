"""Tests of the evaluation figures."""

import numpy as np
import pytest

from conftest import synthetic_digits
from mnist_sum_keras.evaluate import evaluate, pair_figures


def test_pair_figures_counts_each_figure():
    numbers = np.array([0, 1, 2, 3])
    digits = np.array([5, 5, 5, 5])
    pred_digits = np.array([5, 5, 4, 4])
    pred_sums = np.array([5, 7, 6, 8])  # right, wrong, consistent-wrong, right
    figures = pair_figures(numbers, digits, pred_digits, pred_sums)
    assert figures == {"pairs": 4, "digit_accuracy": 0.5, "sum_accuracy": 0.5,
                       "both_correct": 0.25, "consistency": 0.5}


class _OracleModel:
    """Answers from the true labels, wrong on the sum whenever number == 9."""

    def __init__(self, images, digits):
        self.lookup = {img.tobytes(): int(d) for img, d in zip(images, digits)}
        self.calls = 0

    def predict(self, inputs, batch_size=None, verbose=0):
        images, numbers = inputs
        digits = np.array([self.lookup[img.tobytes()] for img in images])
        sums = np.where(numbers == 9, 0, digits + numbers)
        self.calls += 1
        return {"digit": np.eye(10)[digits], "sum": np.eye(19)[sums]}


def test_evaluate_uses_every_number_for_every_image():
    images, digits = synthetic_digits(20)
    figures = evaluate(_OracleModel(images, digits), images, digits)
    assert figures["pairs"] == 200
    assert figures["digit_accuracy"] == 1.0
    assert figures["sum_accuracy"] == pytest.approx(0.9)
    assert figures["consistency"] == pytest.approx(0.9)
    assert figures["both_correct"] == pytest.approx(0.9)

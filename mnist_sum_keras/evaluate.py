"""Figures of a trained model on held-out images: evaluate(...) -> dict."""

import numpy as np

from mnist_sum_keras.config import NUM_DIGITS
from mnist_sum_keras.data import all_pairs


def predict_classes(model, images, numbers, batch_size=1000, verbose=0):
    """Predicted digit and sum classes (argmax of each head) as int arrays."""
    probs = model.predict([images, numbers], batch_size=batch_size, verbose=verbose)
    return np.argmax(probs["digit"], axis=-1), np.argmax(probs["sum"], axis=-1)


def pair_figures(numbers, digits, pred_digits, pred_sums):
    """Accuracy figures of predictions on pairs, as fractions in [0, 1].

    Returns:
        dict with `pairs`, `digit_accuracy`, `sum_accuracy`, `both_correct`
        and `consistency` (share of pairs whose predicted sum minus the number
        equals the predicted digit).
    """
    digits = np.asarray(digits)
    digit_ok = pred_digits == digits
    sum_ok = pred_sums == digits + numbers
    return {
        "pairs": int(len(digits)),
        "digit_accuracy": float(np.mean(digit_ok)),
        "sum_accuracy": float(np.mean(sum_ok)),
        "both_correct": float(np.mean(digit_ok & sum_ok)),
        "consistency": float(np.mean(pred_sums - numbers == pred_digits)),
    }


def evaluate(model, images, digits, batch_size=1000, verbose=0):
    """Evaluates on every image paired with each number 0..9.

    Args:
        model: a model taking `[image, number]` and returning `{"digit", "sum"}`
            probabilities (a Keras model or anything with the same `predict`).
        images: uint8 (N, 28, 28).
        digits: labels (N,).
        batch_size: pairs per prediction batch.
        verbose: Keras progress-bar setting for `predict`.

    Returns:
        `pair_figures` over the `10 * N` pairs.
    """
    pair_images, numbers, pair_digits, _ = all_pairs(images, digits)
    pred_digits, pred_sums = predict_classes(
        model, pair_images, numbers, batch_size=batch_size, verbose=verbose)
    figures = pair_figures(numbers, pair_digits, pred_digits, pred_sums)
    assert figures["pairs"] == NUM_DIGITS * len(images)
    return figures

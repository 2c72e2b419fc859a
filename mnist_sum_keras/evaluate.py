"""Figures of a trained model on held-out images: evaluate(...) -> dict."""


import numpy as np

from mnist_sum_keras.config import NUM_DIGITS, NUM_SUMS
from mnist_sum_keras.data import all_pairs, fixed_numbers


def predict_classes(model, images, numbers, batch_size=1000, verbose=0):
    """Predicted classes and their probabilities of both heads.

    Returns:
        `(pred_digits, pred_sums, digit_confidence, sum_confidence)` arrays.
    """
    probs = model.predict([images, numbers], batch_size=batch_size, verbose=verbose)
    pred_digits = np.argmax(probs["digit"], axis=-1)
    pred_sums = np.argmax(probs["sum"], axis=-1)
    return (pred_digits, pred_sums, np.max(probs["digit"], axis=-1),
            np.max(probs["sum"], axis=-1))


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
    pred_digits, pred_sums, _, _ = predict_classes(
        model, pair_images, numbers, batch_size=batch_size, verbose=verbose)
    return pair_figures(numbers, pair_digits, pred_digits, pred_sums)


def _mean_or_none(values):
    # None, not NaN, for a class absent from the test set: metrics.json stays JSON.
    return float(np.mean(values)) if values.size else None


def _confusion(true, pred, classes):
    return np.bincount(true * classes + pred, minlength=classes * classes).reshape(
        classes, classes)


def evaluation_report(model, images, digits, seed=1, batch_size=1000, verbose=0):
    """The full report on a test set: exhaustive pairs and a single-number pass.

    Args:
        model: as for `evaluate`.
        images: uint8 (N, 28, 28).
        digits: labels (N,).
        seed: fixes the single-number pass' numbers (`data.fixed_numbers`).
        batch_size: pairs per prediction batch.
        verbose: Keras progress-bar setting for `predict`.

    Returns:
        A dict: `exhaustive` (`pair_figures` on all 10 * N pairs),
        `single_number` (`pair_figures` on N pairs, one number per image drawn
        with `seed`, the protocol published solutions use),
        `sum_accuracy_by_number` (10 values), `digit_accuracy_by_class`
        (10 values, None for a class absent from the set), `digit_confusion`
        (10 x 10) and `sum_confusion` (19 x 19)
        count matrices (rows true, columns predicted) over all pairs, and
        `predictions`: the per-pair arrays behind them (image-major, number
        fastest), for plots.
    """
    digits = np.asarray(digits, dtype=np.int32)
    pair_images, numbers, pair_digits, sums = all_pairs(images, digits)
    pred_digits, pred_sums, digit_conf, sum_conf = predict_classes(
        model, pair_images, numbers, batch_size=batch_size, verbose=verbose)
    # The single-number pass is a subset of the exhaustive pairs: image i with
    # number chosen[i] is row 10 * i + chosen[i].
    chosen = fixed_numbers(len(images), seed)
    rows = np.arange(len(images)) * NUM_DIGITS + chosen
    single = pair_figures(chosen, digits, pred_digits[rows], pred_sums[rows])
    sum_ok = pred_sums == sums
    digit_ok = pred_digits == pair_digits
    return {
        "exhaustive": pair_figures(numbers, pair_digits, pred_digits, pred_sums),
        "single_number": {**single, "seed": int(seed)},
        "sum_accuracy_by_number": [_mean_or_none(sum_ok[numbers == n])
                                   for n in range(NUM_DIGITS)],
        "digit_accuracy_by_class": [_mean_or_none(digit_ok[pair_digits == d])
                                    for d in range(NUM_DIGITS)],
        "digit_confusion": _confusion(pair_digits, pred_digits, NUM_DIGITS).tolist(),
        "sum_confusion": _confusion(sums, pred_sums, NUM_SUMS).tolist(),
        "predictions": {"numbers": numbers, "digits": pair_digits,
                        "pred_digits": pred_digits, "pred_sums": pred_sums,
                        "digit_confidence": digit_conf, "sum_confidence": sum_conf},
    }

"""Answers for user images: the front end's 28x28 pictures through a model.

The pictures come from `mnist_sum_keras.frontend` (the same TensorFlow code
the served `predict_image` signature runs); this module turns the model's
probabilities into answers.
"""

import numpy as np

from mnist_sum_keras import contract

# An answer whose digit probability is below this is marked unsure (by
# `predict_digits`, scripts/predict.py and the page). Chosen on the photo
# benchmark (`python -m bench.photos --json`, docs/serving.md) as the highest
# threshold that marks at most 2% of the right answers.
UNSURE_BELOW = 0.9


def predict_digits(model, images, numbers):
    """Predictions for preprocessed images.

    Args:
        model: anything with `predict([images, numbers])` returning
            `{"digit", "sum"}` probabilities (Keras model or SavedModel wrapper).
        images: as accepted by `contract.check_images`.
        numbers: as accepted by `contract.check_numbers`.

    Returns:
        One dict per image: `number`, `digit`, `digit_probability`, `sum`,
        `sum_probability`, and `unsure` (the digit probability is below
        `UNSURE_BELOW`).
    """
    images = contract.check_images(images)
    numbers = contract.check_numbers(numbers, len(images))
    probs = model.predict([images, numbers], verbose=0)
    results = []
    for number, p_digit, p_sum in zip(numbers, probs["digit"], probs["sum"]):
        digit, total = int(np.argmax(p_digit)), int(np.argmax(p_sum))
        results.append({"number": int(number), "digit": digit,
                        "digit_probability": float(p_digit[digit]),
                        "sum": total, "sum_probability": float(p_sum[total]),
                        "unsure": bool(p_digit[digit] < UNSURE_BELOW)})
    return results

"""The front end's doors: encoded bytes or pixels -> MNIST's 28x28, in a graph or eagerly.

One implementation, in TensorFlow ops: the served `predict_image` signature
runs these functions inside the SavedModel, and `scripts/predict.py` runs the
same functions eagerly, so a photo gives the same 28x28 input either way.
"""

import os

import numpy as np
import tensorflow as tf

from mnist_sum_keras import contract
from mnist_sum_keras.config import IMAGE_SHAPE
from mnist_sum_keras.frontend import decode, stages
from mnist_sum_keras.frontend.stages import WORK_SIZE, to_mnist  # noqa: F401  The API.


class ImageError(ValueError):
    """A file or bytes that cannot be read as an image of a digit."""


class NoDigitError(ImageError):
    """A picture that was read but holds no digit (blank paper, noise): an outcome
    of reading, not a caller's mistake. `words` says why, for people."""

    def __init__(self, message, words):
        super().__init__(message)
        self.words = words


@tf.autograph.experimental.do_not_convert
def read_image(image_bytes):
    """One encoded image (a string scalar) -> MNIST-style uint8 (28, 28)."""
    return stages.to_mnist(decode.decode(image_bytes, shrink_to=WORK_SIZE))


def no_digit_reason(found, likelihood, extent):
    """Why a picture has no digit, in `contract.NO_DIGIT_WORDS`' words (a string
    scalar); empty when it has one. The graph twin of `contract.no_digit_words`."""
    words = contract.NO_DIGIT_WORDS
    return tf.where(found, "", tf.where(
        likelihood <= 0.0, words["blank"],
        tf.where(extent < contract.SMALL_MARK, words["small"], words["unlike"])))


@tf.autograph.experimental.do_not_convert
def _candidates(image_bytes):
    """One encoded image -> its candidates for the digit (`stages.drawn_candidates`)."""
    return stages.traced_candidates(decode.decode(image_bytes, shrink_to=WORK_SIZE))


# A tf.function of its own: traced once per process and called from the
# signature's graph (and saved there as one library function), so an export
# does not trace the front end again for each of its traces.
@tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
def read_images(image_bytes):
    """Encoded images (string [batch]) -> `(images, found, reason)`: uint8 (batch,
    28, 28), bool (batch,) and string (batch,), one outcome per picture (the
    served `predict_image`). Bytes that are not an image still raise.

    Each picture's candidates are found on their own (pictures differ in
    size), then the verifier judges all of the batch's candidates at once.
    """
    images, features, valid = tf.map_fn(_candidates, image_bytes, fn_output_signature=(
        tf.TensorSpec([stages.CANDIDATES, *IMAGE_SHAPE], tf.uint8),
        tf.TensorSpec([stages.CANDIDATES, len(stages.FEATURES)], tf.float32),
        tf.TensorSpec([stages.CANDIDATES], tf.bool)))
    image, found, likelihood, extent = stages.choose(images, features, valid)
    return image, found, no_digit_reason(found, likelihood, extent)


_from_bytes = tf.function(read_image, input_signature=[tf.TensorSpec([], tf.string)])


@tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
def _from_pixels(pixels):
    return stages.to_mnist(pixels)


def preprocess(image):
    """One user image -> MNIST-style uint8 (28, 28), eagerly.

    Args:
        image: encoded bytes (PNG, JPEG, GIF or BMP), or a uint8 array of
            shape (height, width) or (height, width, channels), channels 1..4
            (gray, gray + alpha, RGB, RGBA).

    Raises:
        ImageError: the bytes do not decode, are too large, or the picture is
            blank (no digit to find).
    """
    try:
        if isinstance(image, bytes):
            return _from_bytes(tf.constant(image)).numpy()
        pixels = np.asarray(image)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or not 1 <= pixels.shape[-1] <= 4 \
                or min(pixels.shape[:2]) < 1:
            raise ImageError("Expected uint8 pixels of shape (height, width) or (height, "
                             "width, 1..4 channels). Received: "
                             f"dtype={pixels.dtype}, shape={pixels.shape}")
        return _from_pixels(tf.constant(pixels)).numpy()
    except tf.errors.InvalidArgumentError as e:
        text = contract.error_text(e)
        words = contract.no_digit_words(text)
        if words is None:
            raise ImageError(text) from None
        # A person reads the words first; the rule and its figures follow.
        raise NoDigitError(f"{words} ({text})", words) from None


def load_image(path):
    """Reads an image file's bytes and preprocesses them (`preprocess`).

    Raises:
        ImageError: naming the file, when it is missing, a folder, not an image
            or blank.
    """
    if not os.path.exists(path):
        raise ImageError(f"Image file not found: {path!r}")
    if os.path.isdir(path):
        raise ImageError(f"Expected an image file, got a directory: {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        return preprocess(data)
    except NoDigitError as e:
        raise NoDigitError(f"No digit in {path!r}: {e}", e.words) from None
    except ImageError as e:
        raise ImageError(f"Could not read {path!r} as an image of a digit: {e}") from None

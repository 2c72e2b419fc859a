"""User images -> model inputs, with the preprocessing MNIST itself used."""

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnist_sum_keras.config import IMAGE_SHAPE, NUM_DIGITS

# MNIST fits each digit's longer side into 20 px and centres its mass in 28x28.
DIGIT_BOX = 20


class ImageError(ValueError):
    """A file that cannot be read as an image of a digit."""


def load_image(path):
    """Reads an image file with Pillow (its decompression-bomb limit stays on).

    Raises:
        ImageError: naming the file, when it is missing, a folder or not an image.
    """
    if not os.path.exists(path):
        raise ImageError(f"Image file not found: {path!r}")
    if os.path.isdir(path):
        raise ImageError(f"Expected an image file, got a directory: {path!r}")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except Image.DecompressionBombError as e:
        raise ImageError(f"Image {path!r} is too large to decode safely: {e}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"Could not read {path!r} as an image: {e}") from e


def _grayscale(image):
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and
                                              "transparency" in image.info):
        # Transparent pixels are background: flatten onto white.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32)


def preprocess(image):
    """Turns any picture of one digit into an MNIST-style 28x28 uint8 array.

    As the dataset was made: grayscale; inverted when the digit is dark on a
    light background; cropped to the digit's bounding box; longer side scaled
    to 20 px keeping the aspect ratio; pasted into 28x28 with its centre of
    mass at the centre. Result: a white digit on black, 0..255.

    Args:
        image: a `PIL.Image.Image`, or a 2-D array of gray levels.

    Raises:
        ImageError: the picture is blank (no digit to find).
    """
    gray = (_grayscale(image) if isinstance(image, Image.Image)
            else np.asarray(image, dtype=np.float32))
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise ImageError(f"Expected a 2-D image. Received: shape={gray.shape}")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 127:  # Dark ink on light paper: MNIST is light on dark.
        gray, background = 255.0 - gray, 255.0 - background
    ink = np.clip(gray - background, 0, None)
    if ink.max() <= 0:
        raise ImageError("The image is blank: no digit stands out from the background")
    rows = np.flatnonzero(ink.max(axis=1) > 0.1 * ink.max())
    cols = np.flatnonzero(ink.max(axis=0) > 0.1 * ink.max())
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    crop = crop * (255.0 / crop.max())

    height, width = crop.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(crop.astype(np.float32)).resize(
        size, Image.Resampling.LANCZOS), dtype=np.float32)
    small = np.clip(small, 0, 255)

    total = small.sum()
    ys, xs = np.indices(small.shape)
    cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    out = np.zeros(IMAGE_SHAPE, np.float32)
    top = int(np.clip(round(IMAGE_SHAPE[0] / 2 - cy), 0, IMAGE_SHAPE[0] - small.shape[0]))
    left = int(np.clip(round(IMAGE_SHAPE[1] / 2 - cx), 0, IMAGE_SHAPE[1] - small.shape[1]))
    out[top:top + small.shape[0], left:left + small.shape[1]] = small
    return np.round(out).astype(np.uint8)


def check_numbers(numbers, count):
    """One number for all images or one per image, each an integer in 0..9.

    Returns:
        int32 array of `count` numbers.
    """
    numbers = list(numbers)
    if len(numbers) not in (1, count):
        raise ValueError(f"Give one number for all images or one per image ({count}). "
                         f"Received: {len(numbers)} numbers")
    for n in numbers:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not (
                0 <= n < NUM_DIGITS):
            raise ValueError(f"number must be an integer in 0..9. Received: number={n!r}")
    return np.array(numbers * count if len(numbers) == 1 else numbers, np.int32)


def check_images(images):
    """A batch of raw MNIST-style images, checked; returns uint8 (N, 28, 28).

    A trailing channel axis of 1, (N, 28, 28, 1), is dropped. Anything else
    that is not uint8 pixels 0..255 in (N, 28, 28) with N >= 1 is refused
    rather than guessed at: float images 0..1 would be read as near-black.

    Raises:
        ValueError: naming the input, what was received and what is expected.
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError("image must have shape (batch, 28, 28) (or (batch, 28, 28, 1)). "
                         f"Received: shape={images.shape}")
    if len(images) == 0:
        raise ValueError("image batch is empty. Received: shape=(0, 28, 28)")
    if images.dtype != np.uint8:
        raise ValueError("image must be uint8 pixels 0..255, as MNIST stores them. "
                         f"Received: dtype={images.dtype}")
    return images


def predict_digits(model, images, numbers):
    """Predictions for preprocessed images.

    Args:
        model: anything with `predict([images, numbers])` returning
            `{"digit", "sum"}` probabilities (Keras model or SavedModel wrapper).
        images: as accepted by `check_images`.
        numbers: as accepted by `check_numbers`.

    Returns:
        One dict per image: `number`, `digit`, `digit_probability`, `sum`,
        `sum_probability`.
    """
    images = check_images(images)
    numbers = check_numbers(numbers, len(images))
    probs = model.predict([images, numbers], verbose=0)
    results = []
    for number, p_digit, p_sum in zip(numbers, probs["digit"], probs["sum"]):
        digit, total = int(np.argmax(p_digit)), int(np.argmax(p_sum))
        results.append({"number": int(number), "digit": digit,
                        "digit_probability": float(p_digit[digit]),
                        "sum": total, "sum_probability": float(p_sum[total])})
    return results

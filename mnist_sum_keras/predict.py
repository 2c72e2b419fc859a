"""User images -> model inputs, with the preprocessing MNIST itself used.

One implementation, in TensorFlow ops: the served `predict_image` signature
runs these functions inside the SavedModel, and `scripts/predict.py` runs the
same functions eagerly, so a photo gives the same 28x28 input either way.
"""

import os
import re

import numpy as np
import tensorflow as tf

from mnist_sum_keras import contract
from mnist_sum_keras.config import IMAGE_SHAPE

# MNIST fits each digit's longer side into 20 px and centres its mass in 28x28.
DIGIT_BOX = 20
# ITU-R 601-2 luma, the weights of Pillow's convert("L").
_LUMA = (0.299, 0.587, 0.114)


class ImageError(ValueError):
    """A file or bytes that cannot be read as an image of a digit."""


def _header_uint(image_bytes, start, count, dtype, little_endian):
    # Padded so that a file shorter than its header reads zeros, not an error;
    # decoding then refuses it.
    padded = tf.strings.join([image_bytes, tf.constant(b"\0" * 32)])
    values = tf.io.decode_raw(tf.strings.substr(padded, start, count * dtype.size), dtype,
                              little_endian=little_endian)
    return tf.abs(tf.cast(values, tf.int64))


def _claimed_pixels(image_bytes):
    """Width x height that the header claims (int64), -1 for an unknown format."""
    magic = tf.strings.substr(image_bytes, 0, 8)
    return tf.case([
        (tf.equal(magic, b"\x89PNG\r\n\x1a\n"),   # IHDR: big-endian width, height
         lambda: tf.reduce_prod(_header_uint(image_bytes, 16, 2, tf.int32, False))),
        (tf.io.is_jpeg(image_bytes),              # the SOF marker, parsed by TF
         lambda: tf.reduce_prod(tf.cast(tf.io.extract_jpeg_shape(image_bytes)[:2],
                                        tf.int64))),
        (tf.equal(tf.strings.substr(magic, 0, 3), b"GIF"),  # logical screen size
         lambda: tf.reduce_prod(_header_uint(image_bytes, 6, 2, tf.uint16, True))),
        (tf.equal(tf.strings.substr(magic, 0, 2), b"BM"),   # BITMAPINFOHEADER
         lambda: tf.reduce_prod(_header_uint(image_bytes, 18, 2, tf.int32, True))),
    ], default=lambda: tf.constant(-1, tf.int64), exclusive=True)


def decode(image_bytes):
    """Decodes one PNG, JPEG, GIF (first frame) or BMP to uint8 (height, width, channels).

    The header's pixel count is checked against `contract.MAX_IMAGE_PIXELS`
    before decoding, so a decompression bomb never allocates its pixels.

    Raises:
        tf.errors.InvalidArgumentError: an unknown format, a bomb, or bytes
            that do not decode.
    """
    pixels = _claimed_pixels(image_bytes)
    checks = [
        tf.debugging.Assert(pixels >= 0, [contract.refusal(
            contract.IMAGE_BYTES_FORMAT_RULE, "bytes starting with"),
            tf.strings.substr(image_bytes, 0, 8)]),
        tf.debugging.Assert(pixels <= contract.MAX_IMAGE_PIXELS, [contract.refusal(
            contract.IMAGE_BYTES_SIZE_RULE, "a header claiming"), pixels, "pixels"]),
    ]
    with tf.control_dependencies(checks):
        image = tf.io.decode_image(image_bytes, expand_animations=False)
    image.set_shape([None, None, None])
    return image


def _gray_on_white(pixels):
    """uint8 (h, w, c) with c in 1..4 -> float32 (h, w) gray levels.

    Colour becomes luma; transparent pixels become background (white), as
    Pillow's `alpha_composite` onto white followed by `convert("L")` does.
    """
    x = tf.cast(pixels, tf.float32)
    channels = tf.shape(x)[-1]
    gray = tf.cond(channels >= 3,
                   lambda: tf.tensordot(x[..., :3], tf.constant(_LUMA), axes=1),
                   lambda: x[..., 0])
    alpha = tf.cond(tf.equal(channels % 2, 0),   # LA or RGBA
                    lambda: x[..., -1] / 255.0, lambda: tf.ones_like(gray))
    return gray * alpha + 255.0 * (1.0 - alpha)


def _median(values):
    # numpy.median: the mean of the two middle values of an even count.
    values = tf.sort(values)
    n = tf.size(values)
    return 0.5 * (values[(n - 1) // 2] + values[n // 2])


def to_mnist(pixels):
    """Turns any picture of one digit into an MNIST-style 28x28 uint8 array.

    As the dataset was made: grayscale (transparent pixels count as
    background); inverted when the digit is dark on a light background (the
    median of the border decides); cropped to the digit's bounding box (ink
    above 10% of the darkest stroke); longer side scaled to 20 px keeping the
    aspect ratio (Lanczos, antialiased); pasted into 28x28 with its centre of
    mass at the centre. Result: a white digit on black, 0..255.

    Args:
        pixels: uint8 tensor (height, width, channels), 1 to 4 channels.

    Raises:
        tf.errors.InvalidArgumentError: the picture is blank.
    """
    gray = _gray_on_white(pixels)
    border = tf.concat([gray[0], gray[-1], gray[:, 0], gray[:, -1]], axis=0)
    background = _median(border)
    light_paper = background > 127.0   # Dark ink on light paper: MNIST is light on dark.
    gray = tf.where(light_paper, 255.0 - gray, gray)
    background = tf.where(light_paper, 255.0 - background, background)
    ink = tf.maximum(gray - background, 0.0)
    peak = tf.reduce_max(ink)
    # Everything below reads `ink` through this identity, so nothing slices an
    # empty crop before the check has refused a blank picture.
    with tf.control_dependencies([tf.debugging.Assert(
            peak > 0, [contract.refusal(contract.BLANK_RULE, "peak ink"), peak])]):
        ink = tf.identity(ink)
    rows = tf.where(tf.reduce_max(ink, axis=1) > 0.1 * peak)[:, 0]
    cols = tf.where(tf.reduce_max(ink, axis=0) > 0.1 * peak)[:, 0]
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    crop = crop * (255.0 / tf.reduce_max(crop))

    size = tf.cast(tf.shape(crop), tf.float32)
    scale = DIGIT_BOX / tf.reduce_max(size)
    new_size = tf.maximum(1, tf.cast(tf.round(size * scale), tf.int32))
    small = tf.image.resize(crop[..., None], new_size, method="lanczos3",
                            antialias=True)[..., 0]
    small = tf.clip_by_value(small, 0.0, 255.0)

    total = tf.reduce_sum(small)
    ys = tf.cast(tf.range(new_size[0]), tf.float32)[:, None]
    xs = tf.cast(tf.range(new_size[1]), tf.float32)[None, :]
    centre = tf.stack([tf.reduce_sum(ys * small), tf.reduce_sum(xs * small)]) / total
    room = tf.constant(IMAGE_SHAPE) - new_size
    top_left = tf.clip_by_value(
        tf.cast(tf.round(tf.constant(IMAGE_SHAPE, tf.float32) / 2 - centre), tf.int32),
        0, room)
    out = tf.pad(small, tf.stack([top_left, room - top_left], axis=1))
    out = tf.cast(tf.round(out), tf.uint8)
    out.set_shape(IMAGE_SHAPE)
    return out


def read_image(image_bytes):
    """One encoded image (a string scalar) -> MNIST-style uint8 (28, 28)."""
    return to_mnist(decode(image_bytes))


def images_from_bytes(image_bytes):
    """Encoded images (string [batch]) -> MNIST-style uint8 (batch, 28, 28)."""
    return tf.map_fn(read_image, image_bytes,
                     fn_output_signature=tf.TensorSpec(IMAGE_SHAPE, tf.uint8))


_from_bytes = tf.function(read_image, input_signature=[tf.TensorSpec([], tf.string)])


@tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
def _from_pixels(pixels):
    return to_mnist(pixels)


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
        raise ImageError(error_text(e)) from None


def error_text(error):
    """The message of a graph's InvalidArgument without TensorFlow's trace lines."""
    noise = ("Graph execution error", "Detected at node", "<stack", "[[", "File ")
    lines = [line.strip() for line in error.message.splitlines()]
    for line in lines:
        if line.startswith("assertion failed:"):
            # "[<rule>. Received: x=] [10]" -> "<rule>. Received: x=[10]"
            text = line[len("assertion failed:"):].strip()
            return re.sub(r"^\[(.*Received: [^\]]*?)\] ?",
                          lambda m: m[1] if m[1].endswith("=") else m[1] + " ", text)
    return next((line for line in lines if line and not line.startswith(noise)),
                error.message)


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
    except ImageError as e:
        raise ImageError(f"Could not read {path!r} as an image of a digit: {e}") from None


def predict_digits(model, images, numbers):
    """Predictions for preprocessed images.

    Args:
        model: anything with `predict([images, numbers])` returning
            `{"digit", "sum"}` probabilities (Keras model or SavedModel wrapper).
        images: as accepted by `contract.check_images`.
        numbers: as accepted by `contract.check_numbers`.

    Returns:
        One dict per image: `number`, `digit`, `digit_probability`, `sum`,
        `sum_probability`.
    """
    images = contract.check_images(images)
    numbers = contract.check_numbers(numbers, len(images))
    probs = model.predict([images, numbers], verbose=0)
    results = []
    for number, p_digit, p_sum in zip(numbers, probs["digit"], probs["sum"]):
        digit, total = int(np.argmax(p_digit)), int(np.argmax(p_sum))
        results.append({"number": int(number), "digit": digit,
                        "digit_probability": float(p_digit[digit]),
                        "sum": total, "sum_probability": float(p_sum[total])})
    return results

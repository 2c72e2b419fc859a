"""Encoded bytes -> pixels: the size guard, the decoders, and gray levels."""

import tensorflow as tf

from mnist_sum_keras import contract

# ITU-R 601-2 luma, the weights of Pillow's convert("L").
_LUMA = (0.299, 0.587, 0.114)


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


def decode(image_bytes, shrink_to=None):
    """Decodes one PNG, JPEG, GIF (first frame) or BMP to uint8 (height, width, channels).

    The header's pixel count is checked against `contract.MAX_IMAGE_PIXELS`
    before decoding, so a decompression bomb never allocates its pixels.

    Args:
        image_bytes: a string scalar.
        shrink_to: for a JPEG, decode at 1/2, 1/4 or 1/8 of its size (libjpeg's
            DCT scaling: a 12 MP photo costs a fraction of its full decode) as
            long as its longer side stays at least this long. None: full size.

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
        if shrink_to is None:
            image = tf.io.decode_image(image_bytes, expand_animations=False)
        else:
            image = tf.cond(tf.io.is_jpeg(image_bytes),
                            lambda: _decode_jpeg_shrunk(image_bytes, shrink_to),
                            lambda: tf.io.decode_image(image_bytes, expand_animations=False))
    image.set_shape([None, None, None])
    return image


def _decode_jpeg_shrunk(image_bytes, shrink_to):
    longer = tf.reduce_max(tf.io.extract_jpeg_shape(image_bytes)[:2])
    return tf.case([(longer >= ratio * shrink_to,
                     lambda ratio=ratio: tf.io.decode_jpeg(image_bytes, ratio=ratio))
                    for ratio in (8, 4, 2)],
                   default=lambda: tf.io.decode_jpeg(image_bytes))


def gray_on_white(pixels):
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

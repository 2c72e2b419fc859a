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
        (_is_gif(image_bytes),   # the logical screen (its first frame: `decode`)
         lambda: tf.reduce_prod(_header_uint(image_bytes, 6, 2, tf.uint16, True))),
        (tf.equal(tf.strings.substr(magic, 0, 2), b"BM"),   # BITMAPINFOHEADER
         lambda: tf.reduce_prod(_header_uint(image_bytes, 18, 2, tf.int32, True))),
    ], default=lambda: tf.constant(-1, tf.int64), exclusive=True)


def jpeg_scans(image_bytes):
    """How many scans a JPEG holds (int32): its start-of-scan markers, 0xFF 0xDA.

    In a JPEG's entropy-coded data every 0xFF byte is followed by 0x00 or a
    restart marker, so the pair marks a scan and nothing else (an EXIF
    thumbnail's scan counts too). 0 for bytes that are not a JPEG.
    """
    codes = tf.io.decode_raw(tf.strings.join([image_bytes, b"\0"]), tf.uint8)
    marks = tf.logical_and(tf.equal(codes[:-1], 0xFF), tf.equal(codes[1:], 0xDA))
    return tf.where(tf.io.is_jpeg(image_bytes), tf.reduce_sum(tf.cast(marks, tf.int32)), 0)


def _is_gif(image_bytes):
    return tf.equal(tf.strings.substr(image_bytes, 0, 3), b"GIF")


# Blocks walked to find the end of a GIF's first frame, at most: its data
# comes in sub-blocks of up to 255 bytes, so this covers any GIF of up to
# ~16 MB (bytes beyond are left for the decoder to refuse).
GIF_BLOCKS = 1 << 16


def _first_gif_frame(image_bytes):
    """A GIF cut after its first frame: `(bytes, pixels)`, the header, the
    extensions before the frame and the frame itself followed by the trailer,
    and the pixel count its image descriptor claims (int64).

    Walks the GIF's blocks (GIF89a: extensions 0x21 and the image descriptor
    0x2C, each followed by sub-blocks of a length byte and that many bytes,
    ending with a zero length) with tensor ops. A GIF that ends early or holds
    something else is cut where the walk stopped, and the decoder refuses it.
    """
    codes = tf.cast(tf.io.decode_raw(tf.strings.join([image_bytes, b"\0" * 16]), tf.uint8),
                    tf.int32)
    last = tf.size(codes) - 1

    def at(i):
        return tf.gather(codes, tf.minimum(i, last))

    def table(flags):  # Bytes of a colour table its flags announce.
        return tf.where(flags >= 128, 3 * tf.bitwise.left_shift(2, flags % 8), 0)

    start = 13 + table(at(10))
    # mode 0: at a block; 1: in an extension's sub-blocks; 2: in the frame's; 3: done.
    def step(at_, mode, pixels):
        byte = at(at_)
        block = tf.where(byte == 0x21, 1, tf.where(byte == 0x2C, 2, 3))
        frame_pixels = tf.cast((at(at_ + 5) + 256 * at(at_ + 6)) * (at(at_ + 7) + 256 * at(
            at_ + 8)), tf.int64)
        after_block = tf.where(byte == 0x21, at_ + 2, at_ + 11 + table(at(at_ + 9)))
        after_sub_block = at_ + byte + 1
        ended = byte == 0
        return (tf.where(mode == 0, tf.where(block == 3, at_, after_block), after_sub_block),
                tf.where(mode == 0, block,
                         tf.where(ended, tf.where(mode == 2, 3, 0), mode)),
                tf.where((mode == 0) & (block == 2), frame_pixels, pixels))

    end, _, pixels = tf.while_loop(lambda at_, mode, _: (mode != 3) & (at_ <= last), step,
                                   (start, tf.constant(0), tf.constant(0, tf.int64)),
                                   maximum_iterations=GIF_BLOCKS)
    return tf.strings.join([tf.strings.substr(image_bytes, 0, end), b"\x3b"]), pixels


def decode(image_bytes, shrink_to=None):
    """Decodes one PNG, JPEG, GIF (first frame) or BMP to uint8 (height, width, channels),
    upright: a JPEG's EXIF orientation is applied (`exif_orientation`).

    The header's pixel count is checked against `contract.MAX_IMAGE_PIXELS`
    before decoding, so a decompression bomb never allocates its pixels, and a
    JPEG's scans against `contract.MAX_JPEG_SCANS`, so one never costs minutes.

    Args:
        image_bytes: a string scalar.
        shrink_to: for a JPEG, decode at 1/2, 1/4 or 1/8 of its size (libjpeg's
            DCT scaling: a 12 MP photo costs a fraction of its full decode) as
            long as its longer side stays at least this long. None: full size.

    Raises:
        tf.errors.InvalidArgumentError: an unknown format, a bomb, or bytes
            that do not decode.
    """
    # giflib reads every frame of a GIF into memory (~17 MB each at 4096x4096,
    # hundreds in a few MB of bytes) before TF keeps the first: a GIF is cut
    # after its first frame, whose own size counts as the screen's does.
    image_bytes, frame_pixels = tf.cond(
        _is_gif(image_bytes), lambda: _first_gif_frame(image_bytes),
        lambda: (image_bytes, tf.constant(-1, tf.int64)))
    pixels = tf.maximum(_claimed_pixels(image_bytes), frame_pixels)
    scans = jpeg_scans(image_bytes)
    checks = [
        tf.debugging.Assert(pixels >= 0, [contract.refusal(
            contract.IMAGE_BYTES_FORMAT_RULE, "bytes starting with"),
            tf.strings.substr(image_bytes, 0, 8)]),
        tf.debugging.Assert(pixels <= contract.MAX_IMAGE_PIXELS, [contract.refusal(
            contract.IMAGE_BYTES_SIZE_RULE, "a header claiming"), pixels, "pixels"]),
        tf.debugging.Assert(scans <= contract.MAX_JPEG_SCANS, [
            contract.refusal(contract.IMAGE_BYTES_SCANS_RULE, "a JPEG of"), scans, "scans"]),
    ]
    with tf.control_dependencies(checks):
        if shrink_to is None:
            image = tf.io.decode_image(image_bytes, expand_animations=False)
        else:
            image = tf.cond(tf.io.is_jpeg(image_bytes),
                            lambda: _decode_jpeg_shrunk(image_bytes, shrink_to),
                            lambda: tf.io.decode_image(image_bytes, expand_animations=False))
    return upright(image, exif_orientation(image_bytes))


# A JPEG's EXIF block (APP1) follows the start of the file and at most a JFIF
# header: its "Exif" header is looked for within this many bytes, and its
# first directory within this many bytes of the block.
EXIF_SEARCH = 1024
EXIF_BLOCK = 4096
# Entries of the first image file directory read, at most.
EXIF_ENTRIES = 64


def _bytes_of(image_bytes, start, length):
    """`length` bytes of a string from `start` as int32, zeros past its end."""
    start = tf.minimum(start, tf.strings.length(image_bytes))
    padded = tf.strings.join([tf.strings.substr(image_bytes, start, length),
                              tf.constant(b"\0" * length)])
    return tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int32)[:length]


def exif_orientation(image_bytes):
    """The EXIF orientation tag of a JPEG (int32 1..8), 1 when it has none.

    A phone stores a portrait photo as landscape pixels plus this tag (TIFF
    tag 0x0112 in the first directory of the APP1 segment); TensorFlow's
    decoders ignore it. Read with tensor ops: the "Exif" header, the TIFF
    block's byte order, and its first directory's entries.
    """
    head = _bytes_of(image_bytes, 0, EXIF_SEARCH + 6)
    marker = tf.constant([ord(c) for c in "Exif"] + [0, 0], tf.int32)
    windows = tf.stack([head[i:i + EXIF_SEARCH] for i in range(6)], axis=1)
    hits = tf.cast(tf.where(tf.reduce_all(tf.equal(windows, marker), axis=1))[:, 0], tf.int32)
    found = tf.io.is_jpeg(image_bytes) & (tf.size(hits) > 0)
    block = _bytes_of(image_bytes, tf.concat([hits, [0]], 0)[0] + 6, EXIF_BLOCK)
    little = tf.equal(block[0], ord("I")) & tf.equal(block[1], ord("I"))

    def numbers(offsets, size):  # Unsigned integers at `offsets` (int32 [n]) of the block.
        at = tf.clip_by_value(offsets[:, None] + tf.range(size)[None, :], 0, EXIF_BLOCK - 1)
        shift = 8 * tf.where(little, tf.range(size), size - 1 - tf.range(size))
        return tf.reduce_sum(tf.bitwise.left_shift(tf.gather(block, at), shift[None, :]), 1)

    directory = numbers(tf.constant([4]), 4)[0]
    entries = tf.minimum(numbers(directory[None], 2)[0], EXIF_ENTRIES)
    starts = directory + 2 + 12 * tf.range(EXIF_ENTRIES)
    wanted = tf.equal(numbers(starts, 2), 0x0112) & (tf.range(EXIF_ENTRIES) < entries)
    value = tf.reduce_max(tf.where(wanted, numbers(starts + 8, 2), 0))
    return tf.where(found & (value >= 1) & (value <= 8), value, 1)


def upright(pixels, orientation):
    """Pixels (h, w, c) as stored -> as the photographer saw them, for an EXIF
    orientation 1..8 (what Pillow's `ImageOps.exif_transpose` does)."""
    def mirrored(x):
        return tf.reverse(x, [1])

    def transposed(x):
        return tf.transpose(x, [1, 0, 2])

    image = tf.switch_case(orientation - 1, [
        lambda: pixels,                                   # 1: as stored
        lambda: mirrored(pixels),                         # 2: mirror
        lambda: tf.reverse(pixels, [0, 1]),               # 3: turn half round
        lambda: tf.reverse(pixels, [0]),                  # 4: flip upside down
        lambda: transposed(pixels),                       # 5: transpose
        lambda: mirrored(transposed(pixels)),             # 6: turn a quarter clockwise
        lambda: tf.reverse(transposed(pixels), [0, 1]),   # 7: transverse
        lambda: tf.reverse(transposed(pixels), [0]),      # 8: turn a quarter anticlockwise
    ])
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

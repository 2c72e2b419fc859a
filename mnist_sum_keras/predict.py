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
# An answer whose digit probability is below this is marked unsure (by
# `predict_digits`, scripts/predict.py and the page). Chosen on the photo
# benchmark (`python -m bench.photos --json`, docs/serving.md) as the highest
# threshold that marks at most 2% of the right answers.
UNSURE_BELOW = 0.9
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


# Pictures are read at most this many pixels on their longer side: a phone's
# 12 MP photo is shrunk (averaging, which also cuts its sensor noise) before
# any other work. Smaller pictures are read as they are.
WORK_SIZE = 384
# The skew of a picture's detail that tells dark marks on light ground from
# light on dark (`_dark_ink_on_light_paper`).
CLEAR_SKEW = 1.0
# A border whose median absolute deviation is at most this many grey levels is
# clean (a drawing, a scan), not a photo's.
CLEAN_BORDER = 2.0
# The paper is estimated with a window a third of the picture's longer side,
# and never narrower than this (in a small picture a stroke is a large share).
MIN_PAPER_WINDOW = 15
# Ink is what stands out from the paper by more than this many robust standard
# deviations of the paper's own variation (noise, texture, JPEG) ...
NOISE_SIGMAS = 5.0
# ... and by more than this fraction of the strongest ink.
INK_FLOOR = 0.1
# Marks are grouped into objects on a grid of this many cells a side (nearby
# strokes of one digit join); a ruled line is a thin mark at least this long and this share
# of the width.
COMPONENT_GRID = 64
LINE_LENGTH = (0.6, 64)  # share of the width, and pixels
LINE_SLOPES = (-0.18, -0.09, 0.0, 0.09, 0.18)
# A digit is at least this share of the picture's shorter side, has at least as
# many marked pixels as it is long, and holds at least this share of all the
# ink in the picture; its strokes are solid (at least this share of its marked
# pixels have all 8 neighbours marked: not a cloud of specks) and darker than
# the paper by at least this fraction (what paper's texture and light never
# are).
MIN_DIGIT_SIZE = 0.08
# A detached part of the digit is at least this share as dark as its main part
# (what is left of a shadow's edge or a stain beside a digit is fainter).
MIN_PART_DARKNESS = 0.5
# Marks of the digit fainter than this share of its strokes' level are kept
# only within 2 px of stronger ones (a stroke's soft edge, a pencil's grain).
FAINT_INK = 0.35
MIN_INK_SHARE = 0.3
MIN_SOLID = 0.45
MIN_DARKNESS = 0.2


def _percentile(sorted_values, q):
    """The q-th percentile (0..100) of an ascending vector, nearest rank."""
    n = tf.size(sorted_values)
    index = tf.cast(tf.round(q / 100.0 * tf.cast(n - 1, tf.float32)), tf.int32)
    return sorted_values[index]


def _fraction_quantile(values, q, bins=4096):
    """The q-quantile (0..1) of values in [0, 1], to 1/bins, in one pass (no sort).

    Returns the lower edge of the bin where the cumulative count reaches q, so
    a value that most pixels share exactly (0 in a clean picture) comes out
    exactly.
    """
    counts = tf.histogram_fixed_width(tf.reshape(values, [-1]), [0.0, 1.0], nbins=bins)
    cumulative = tf.cumsum(counts)
    needed = tf.cast(tf.math.ceil(q * tf.cast(tf.size(values), tf.float32)), tf.int32)
    index = tf.argmax(tf.cast(cumulative >= tf.maximum(needed, 1), tf.int32))
    return tf.cast(index, tf.float32) / bins


def _median(values):
    # numpy.median: the mean of the two middle values of an even count.
    values = tf.sort(tf.reshape(values, [-1]))
    n = tf.size(values)
    return 0.5 * (values[(n - 1) // 2] + values[n // 2])


def _running(x, window, axis, kind):
    """Max, min or sum over a centred window along `axis` of a 2-D tensor, same
    size out (the window cut at the edges).

    Args:
        window: an int, or an int32 scalar tensor at most 4096.
    """
    if axis == 1:
        return tf.transpose(_running(tf.transpose(x), window, 0, kind))
    length, columns = tf.shape(x)[0], tf.shape(x)[1]
    if kind == "sum":
        total = tf.cumsum(tf.pad(x, [[window // 2 + 1, window - window // 2], [0, 0]]))
        return total[window:window + length] - total[:length]
    op, fill = (tf.maximum, -1e30) if kind == "max" else (tf.minimum, 1e30)
    x = tf.concat([tf.fill([window // 2, columns], fill), x,
                   tf.fill([window, columns], fill)], axis=0)
    rows = tf.shape(x)[0]
    if isinstance(window, int):  # Doubling with fixed steps: x[i] then covers [i, i + span).
        span = 1
        while 2 * span <= window:
            x = op(x[:-span], x[span:])
            span *= 2
        return op(x[:length], x[window - span:window - span + length])

    def ahead(v, step):  # v[i + step], the padding's fill past the end.
        return tf.gather(v, tf.minimum(tf.range(rows) + step, rows - 1))

    def double(x, span):  # The same doubling, in a loop: a window known only at run time.
        return op(x, ahead(x, span)), 2 * span

    x, span = tf.while_loop(lambda x, span: 2 * span <= window, double, (x, tf.constant(1)),
                            maximum_iterations=12)
    return op(x, ahead(x, window - span))[:length]


def _pool(image, window, kind):
    """Max, min or mean over a `window` x `window` neighbourhood, same size out
    (the window cut at the edges: means over the part inside the picture)."""
    if kind == "mean":
        ones = tf.ones_like(image)
        return _pool(image, window, "sum") / _pool(ones, window, "sum")
    for axis in (0, 1):
        image = _running(image, window, axis, kind)
    return image


def _resize(image, size, method="area"):
    return tf.image.resize(image[..., None], size, method=method)[..., 0]


def _working_gray(pixels):
    """uint8 (h, w, c) -> float32 gray levels, shrunk to at most `WORK_SIZE` a side."""
    gray = _gray_on_white(pixels)
    size = tf.shape(gray)[:2]
    longer = tf.reduce_max(size)
    scaled = tf.maximum(1, tf.cast(tf.round(
        tf.cast(size, tf.float32) * WORK_SIZE / tf.cast(longer, tf.float32)), tf.int32))
    return tf.cond(longer > WORK_SIZE, lambda: _resize(gray, scaled), lambda: gray)


def _dark_ink_on_light_paper(gray):
    """True when the marks are darker than the ground (pen on paper), False when
    lighter (chalk, a drawing on a black canvas, MNIST itself).

    The skew of the picture's detail (the picture minus a blur of it) decides
    when it is clear: sparse marks make one tail long, while light falling
    off, shadows, texture and noise are about as much lighter as darker. When
    it is not (bold marks filling the frame, no marks at all), a clean
    picture's border is its ground (dark when its median is in the lower half
    of the picture's range, as in MNIST); a noisy one (a photo) is taken to be
    pen on paper.
    """
    size = tf.shape(gray)
    window = tf.maximum(3, tf.reduce_max(size) // 8)
    small = tf.maximum(1, size // window)
    detail = gray - _resize(_resize(gray, small), size, "bilinear")
    detail -= tf.reduce_mean(detail)
    skew = tf.reduce_mean(detail ** 3) / tf.maximum(tf.reduce_mean(detail ** 2), 1e-6) ** 1.5
    border = tf.concat([gray[0], gray[-1], gray[:, 0], gray[:, -1]], axis=0)
    ground = _median(border)
    clean = _median(tf.abs(border - ground)) <= CLEAN_BORDER
    steady = _pool(gray, 3, "mean")  # The range of the picture, not of its noise.
    dark_ground = ground < 0.5 * (tf.reduce_min(steady) + tf.reduce_max(steady))
    return tf.cond(tf.abs(skew) >= CLEAR_SKEW, lambda: skew < 0.0,
                   lambda: tf.logical_not(clean & dark_ground))


def _paper(gray):
    """The paper's brightness at every point of a dark-ink picture.

    A grey-level closing (dilation then erosion) with a window a third of the
    picture's longer side (at least `MIN_PAPER_WINDOW` pixels), wider than any
    stroke, removes the strokes and keeps what is wider: light falling off
    and the edges of shadows (each exactly, however sharp: a closing keeps
    any change that runs one way through its window; where the two cross,
    approximately) and large stains.
    """
    size = tf.shape(gray)
    window = tf.maximum(tf.reduce_max(size) // 6 * 2 + 1, MIN_PAPER_WINDOW)
    pad = tf.minimum(window // 2, size - 1)
    extended = _point_reflected(gray, pad)

    def closing(x):
        return _pool(_pool(x, window, "max"), window, "min")

    # The lower of the closings of the picture and of its 3x3 mean: the first's
    # maximum rides on the noise, the second smears a sharp shadow's edge by a
    # pixel (which the first keeps).
    closed = tf.minimum(closing(extended), closing(_pool(extended, 3, "mean")))
    return tf.maximum(closed[pad[0]:pad[0] + size[0], pad[1]:pad[1] + size[1]], 1.0)


def _point_reflected(image, pad):
    """`image` extended by `pad` (rows, columns) past each edge as a point reflection
    through the edge (2 * edge - mirror): light falling off towards an edge goes
    on falling, where a mirror would make the edge a valley that a closing fills."""
    size = tf.shape(image)
    rows = tf.range(-pad[0], size[0] + pad[0])
    cols = tf.range(-pad[1], size[1] + pad[1])

    def mirror(at, n):
        return tf.where(at < 0, -at, tf.where(at >= n, 2 * n - 2 - at, at))

    mirrored = tf.gather(tf.gather(image, mirror(rows, size[0])), mirror(cols, size[1]),
                         axis=1)
    edge = tf.gather(tf.gather(image, tf.clip_by_value(rows, 0, size[0] - 1)),
                     tf.clip_by_value(cols, 0, size[1] - 1), axis=1)
    outside = ((rows < 0) | (rows >= size[0]))[:, None] | (
        (cols < 0) | (cols >= size[1]))[None, :]
    return tf.where(outside, 2 * edge - mirrored, mirrored)


def _ink(pixels):
    """Flat-fielded ink: 0 where the paper is, up to 1 for black ink, float (h, w).

    Light ink on dark ground (a drawing on a black canvas, MNIST itself) is
    inverted first, so that everything after sees pen on paper.
    """
    gray = _working_gray(pixels)
    gray = tf.where(_dark_ink_on_light_paper(gray), gray, 255.0 - gray)
    # Light falls on paper and ink alike: darkness is relative to the paper.
    return tf.clip_by_value(1.0 - gray / _paper(gray), 0.0, 1.0)


def _sheared(image, slope):
    """Row y + round(slope * (x - centre)) of column x, at (y, x) (edges repeated)."""
    size = tf.shape(image)
    xs = tf.range(size[1])
    offsets = tf.cast(tf.round(slope * tf.cast(xs - size[1] // 2, tf.float32)), tf.int32)
    rows = tf.clip_by_value(tf.range(size[0])[:, None] + offsets[None, :], 0, size[0] - 1)
    return tf.transpose(tf.gather(tf.transpose(image), tf.transpose(rows), batch_dims=1))


def _window_sum(values, length):
    """Sum of `values` (h, w) over a window of `length` along each row, centred."""
    padded = tf.pad(values, [[0, 0], [length // 2 + 1, length - length // 2]])
    total = tf.cumsum(padded, axis=1)
    width = tf.shape(values)[1]
    return total[:, length + 1:length + 1 + width] - total[:, 1:1 + width]


def _ruled_lines(mask):
    """Thin marks that run straight across the frame (ruled paper, a table's edge):
    bool (h, w). A digit's strokes are shorter, or thicker.

    Looked for at half resolution, along a few slopes (a photo is rarely
    level): a line is a run of marks covering 80% of a window `LINE_LENGTH`
    long; its pixels are dropped where the marks are thin (gone after a
    vertical erosion of 7 px), so a stroke that crosses it stays.
    """
    marks = tf.cast(mask, tf.float32)
    half = tf.nn.max_pool2d(marks[None, ..., None], 2, 2, "SAME")[0, ..., 0]
    width = tf.shape(half)[1]
    length = tf.maximum(tf.cast(LINE_LENGTH[0] * tf.cast(width, tf.float32), tf.int32),
                        LINE_LENGTH[1] // 2)
    slopes = tf.constant(LINE_SLOPES)

    def along_slope(i, lines):  # A loop, not unrolled: a graph of a fifth the size.
        along = _sheared(half, slopes[i])
        # Centres of windows mostly on a mark, then every marked pixel of such a window.
        centres = _window_sum(along, length) >= 0.8 * tf.cast(length, tf.float32)
        covered = tf.cast(_window_sum(tf.cast(centres, tf.float32), length) > 0,
                          tf.float32) * along
        return i + 1, tf.maximum(lines, _sheared(covered, -slopes[i]))

    _, lines = tf.while_loop(lambda i, _: i < len(LINE_SLOPES), along_slope,
                             (0, tf.zeros_like(half)))
    lines = _resize(lines, tf.shape(mask), "nearest") > 0
    thin = tf.logical_not(_running(marks, 7, 0, "min") > 0)
    return lines & thin & mask


def _components(mask, max_steps=256):
    """Labels of the 8-connected components of a small bool mask: float (h, w), 0 off.

    Every pixel starts with its own number and takes the largest of its
    neighbourhood's until nothing changes (at most `max_steps` rounds: a
    longer component would stay split, never merged with another).
    """
    size = tf.shape(mask)
    ids = tf.reshape(tf.range(1, size[0] * size[1] + 1, dtype=tf.float32), size)
    labels = tf.where(mask, ids, 0.0)

    def spread(step, labels, _):
        grown = tf.where(mask, _pool(labels, 3, "max"), 0.0)
        return step + 1, grown, tf.reduce_any(tf.not_equal(grown, labels))

    def going(step, _, changed):
        return tf.logical_and(step < max_steps, changed)

    _, labels, _ = tf.while_loop(going, spread, (0, labels, True))
    return labels


def _digit(ink, mask):
    """The marks that make the digit: bool (h, w), and the check that refuses a blank.

    Marks are grouped into objects on a grid of at most `COMPONENT_GRID`
    cells a side, where nearby strokes of one digit join. The digit is the
    object with the most ink, favouring the middle of the frame over its
    border (a shadow's edge, the table), together with the objects whose
    centres fall inside its box and that are about as dark (a detached stroke
    of a 5, not what is left of a shadow's edge beside it). A picture is
    refused when that digit is tiny, or holds too little of the picture's ink
    (noise, texture: nothing stands out).
    """
    size = tf.shape(ink)
    grid = (COMPONENT_GRID, COMPONENT_GRID)
    coarse_ink = _resize(tf.where(mask, ink, 0.0), grid)
    coarse = _resize(tf.cast(mask, tf.float32), grid) > 0
    labels = _components(_pool(tf.cast(coarse, tf.float32), 3, "max") > 0)
    names, index = tf.unique(tf.reshape(labels, [-1]))
    count = tf.size(names)
    ys, xs = tf.meshgrid(tf.range(COMPONENT_GRID), tf.range(COMPONENT_GRID), indexing="ij")
    ys = tf.cast(tf.reshape(ys, [-1]), tf.float32)
    xs = tf.cast(tf.reshape(xs, [-1]), tf.float32)
    weights = tf.reshape(coarse_ink, [-1])

    def total(values):
        return tf.math.unsorted_segment_sum(values, index, count)

    mass = total(weights)
    # How dark each object's marks are on average (its ink over its marked area).
    darkness = mass / tf.maximum(total(tf.reshape(_resize(tf.cast(mask, tf.float32), grid),
                                                  [-1])), 1e-9)
    centre_y = total(ys * weights) / tf.maximum(mass, 1e-9)
    centre_x = total(xs * weights) / tf.maximum(mass, 1e-9)
    top = tf.math.unsorted_segment_min(ys, index, count)
    bottom = tf.math.unsorted_segment_max(ys, index, count)
    left = tf.math.unsorted_segment_min(xs, index, count)
    right = tf.math.unsorted_segment_max(xs, index, count)
    rows = cols = float(COMPONENT_GRID)
    marked = tf.logical_and(tf.not_equal(names, 0.0), mass > 0)
    border = (top <= 0) | (left <= 0) | (bottom >= rows - 1) | (right >= cols - 1)
    off_centre = (tf.square((centre_y + 0.5) / rows - 0.5)
                  + tf.square((centre_x + 0.5) / cols - 0.5))
    score = mass * tf.exp(-2.0 * off_centre) * tf.where(border, 0.25, 1.0)
    best = tf.argmax(tf.where(marked, score, -1.0))
    margin_y = 0.2 * (bottom[best] - top[best] + 1)
    margin_x = 0.2 * (right[best] - left[best] + 1)
    inside = (marked & (darkness >= MIN_PART_DARKNESS * darkness[best])
              & (centre_y >= top[best] - margin_y)
              & (centre_y <= bottom[best] + margin_y)
              & (centre_x >= left[best] - margin_x) & (centre_x <= right[best] + margin_x))
    chosen = tf.cast(tf.reshape(tf.gather(inside, index), grid), tf.float32)
    # Back to the picture's pixels: the marks in the chosen cells.
    cells = _resize(chosen, size, "nearest") > 0
    digit = tf.logical_and(cells, mask)

    share = (tf.reduce_sum(tf.where(inside, mass, 0.0))
             / tf.maximum(tf.reduce_sum(tf.where(marked, mass, 0.0)), 1e-9))
    def span(marked):  # From the first marked row (or column) to the last; 0 if none.
        at = tf.cast(tf.where(marked)[:, 0], tf.float32)
        return tf.reduce_max(tf.concat([at + 1.0, [0.0]], 0)) - tf.reduce_min(
            tf.concat([at, [0.0]], 0)) * tf.cast(tf.size(at) > 0, tf.float32)

    extent = tf.maximum(span(tf.reduce_any(digit, axis=1)), span(tf.reduce_any(digit, axis=0)))
    relative = extent / tf.reduce_min(tf.cast(size, tf.float32))
    pixels = tf.reduce_sum(tf.cast(digit, tf.float32))
    found = ((share >= MIN_INK_SHARE) & (relative >= MIN_DIGIT_SIZE) & (pixels >= extent))
    check = tf.debugging.Assert(found, [contract.refusal(
        contract.BLANK_RULE, "the likeliest digit holds"), share,
        "of the ink and spans", relative, "of the shorter side"])
    return digit, check


def _mnist_box(ink):
    """A white-on-black picture of the digit alone (float 0..255) -> MNIST's layout.

    Cropped to the digit (ink above 10% of the strongest), longer side scaled
    to 20 px keeping the aspect ratio (Lanczos, antialiased), pasted into 28x28
    with its centre of mass at the centre.
    """
    peak = tf.reduce_max(ink)
    rows = tf.where(tf.reduce_max(ink, axis=1) > 0.1 * peak)[:, 0]
    cols = tf.where(tf.reduce_max(ink, axis=0) > 0.1 * peak)[:, 0]
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

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


# Plain TensorFlow ops with explicit tf.cond / tf.while_loop: autograph has nothing
# to convert, and skipping it halves the time to trace the front end (every export).
@tf.autograph.experimental.do_not_convert
def to_mnist(pixels):
    """Finds the digit in any picture of one and draws it as MNIST would: 28x28 uint8.

    As a careful person would: grayscale (transparent pixels count as paper);
    shrunk to at most `WORK_SIZE` a side; light ink on a dark ground inverted
    to pen on paper; the paper's brightness estimated at every point and
    divided out (uneven light, shadows); ink is what stands out from the paper
    by more than its noise (`NOISE_SIGMAS`) and a tenth of the strongest ink,
    everything else exactly 0; thin lines across the frame (ruled paper)
    dropped; the digit is the most inked object away from the border, with
    its detached parts (`_digit`), less faint smudges beyond 2 px of its strokes
    (`FAINT_INK`); then MNIST's layout (`_mnist_box`). A clean
    picture (even paper, no noise) gives what cropping its ink directly
    gives. Result: a white digit on black, 0..255.

    Args:
        pixels: uint8 tensor (height, width, channels), 1 to 4 channels.

    Raises:
        tf.errors.InvalidArgumentError: the picture is blank: nothing in it
            stands out as a digit (blank paper, noise, texture).
    """
    ink = _ink(pixels)
    smooth = _pool(ink, 3, "mean")
    # The paper's level and noise, from the pixels themselves: ink is a minority
    # of them even in a digit that fills its frame (a blur would spread it).
    paper = _fraction_quantile(ink, 0.5)
    # Taken as the noise of the 3x3 mean too: a photo's noise is mostly not
    # independent from pixel to pixel (JPEG, grain), and a mean hardly lowers it.
    spread = 1.4826 * _fraction_quantile(tf.abs(ink - paper), 0.5)
    strongest = tf.reduce_max(smooth)
    threshold = paper + tf.maximum(NOISE_SIGMAS * spread, INK_FLOOR * (strongest - paper))
    mask = smooth > tf.maximum(threshold, paper + 1e-3)
    mask = tf.logical_and(mask, tf.logical_not(_ruled_lines(mask)))
    digit, check = _digit(ink, mask)
    # With its anti-aliased edge (a ring of one pixel), less the paper's level.
    keep = _pool(tf.cast(digit, tf.float32), 3, "max") > 0
    marks = tf.where(keep, tf.maximum(ink - paper, 0.0), 0.0)
    strokes = tf.sort(tf.boolean_mask(marks, digit))
    count = tf.size(strokes)
    # The strokes' level becomes 255: their darkest pixel, less what the paper's
    # noise can add to one pixel (nothing in a clean picture), but never below
    # the 99th percentile.
    level = tf.cond(count > 0, lambda: tf.maximum(_percentile(strokes, 99),
                                                  strokes[-1] - 12.0 * spread), lambda: 0.0)
    solid = tf.reduce_sum(tf.cast(_pool(tf.cast(digit, tf.float32), 2, "min") > 0,
                                  tf.float32)) / tf.maximum(tf.cast(count, tf.float32), 1.0)
    inked = tf.debugging.Assert((level >= MIN_DARKNESS) & (solid >= MIN_SOLID), [
        contract.refusal(contract.BLANK_RULE, "strokes darker than the paper by"), level,
        "and solid for", solid])
    # Hysteresis: faint marks of the digit's object farther than 2 px from its
    # strong strokes (what is left of a shadow's edge touching the digit) go.
    strong = tf.logical_and(digit, marks >= FAINT_INK * level)
    marks = tf.where(_pool(tf.cast(strong, tf.float32), 5, "max") > 0, marks, 0.0)
    with tf.control_dependencies([check, inked]):
        return _mnist_box(tf.minimum(marks * (255.0 / level), 255.0))


@tf.autograph.experimental.do_not_convert
def read_image(image_bytes):
    """One encoded image (a string scalar) -> MNIST-style uint8 (28, 28)."""
    return to_mnist(decode(image_bytes, shrink_to=WORK_SIZE))


# A tf.function of its own: traced once per process and called from the
# signature's graph (and saved there as one library function), so an export
# does not trace the front end again for each of its traces.
@tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
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

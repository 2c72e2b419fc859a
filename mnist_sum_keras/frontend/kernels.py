"""Tensor kernels of the front end: quantiles, running windows, resizing, components.

Plain TensorFlow ops on 2-D float tensors, each checked against a by-hand
version in tests/test_frontend.py.
"""

import tensorflow as tf


def percentile(sorted_values, q):
    """The q-th percentile (0..100) of an ascending vector, nearest rank."""
    n = tf.size(sorted_values)
    index = tf.cast(tf.round(q / 100.0 * tf.cast(n - 1, tf.float32)), tf.int32)
    return sorted_values[index]


def cumulative_sum(counts):
    """`tf.cumsum` of an int32 vector whose length is a square of a power of two
    times 2 or 1 (a histogram's bins), exactly (counts below 2**24), by two
    small matrix products: TF's Cumsum kernel costs ~130 us even on a short
    vector, a product of a few thousand numbers a fraction of that."""
    n = counts.shape[0]
    rows = 1 << ((n.bit_length() - 1) // 2)
    grid = tf.reshape(tf.cast(counts, tf.float32), [rows, n // rows])
    # Triangles of ones (built in the graph: constants would fill the SavedModel).
    within = tf.matmul(grid, tf.linalg.band_part(tf.ones([n // rows, n // rows]), 0, -1))
    before = tf.matmul(tf.linalg.band_part(tf.ones([rows, rows]), -1, 0) - tf.eye(rows),
                       tf.reduce_sum(grid, 1, keepdims=True))
    return tf.cast(tf.reshape(within + before, [-1]), tf.int32)


def fraction_quantile(values, q, bins=4096):
    """The q-quantile (0..1) of values in [0, 1], to 1/bins, in one pass (no sort).

    Returns the lower edge of the bin where the cumulative count reaches q, so
    a value that most pixels share exactly (0 in a clean picture) comes out
    exactly.
    """
    counts = tf.histogram_fixed_width(tf.reshape(values, [-1]), [0.0, 1.0], nbins=bins)
    cumulative = cumulative_sum(counts)
    needed = tf.cast(tf.math.ceil(q * tf.cast(tf.size(values), tf.float32)), tf.int32)
    index = tf.argmax(tf.cast(cumulative >= tf.maximum(needed, 1), tf.int32))
    return tf.cast(index, tf.float32) / bins


def signed_quantile(values, q, bins=8192):
    """The q-quantile (0..1) of values in [-1, 1] (beyond are counted at the ends),
    to 2/bins, in one pass (`fraction_quantile`)."""
    return 2.0 * fraction_quantile(0.5 * (values + 1.0), q, bins) - 1.0


def median(values):
    # numpy.median: the mean of the two middle values of an even count.
    values = tf.sort(tf.reshape(values, [-1]))
    n = tf.size(values)
    return 0.5 * (values[(n - 1) // 2] + values[n // 2])


def _along(x, start, cut, axis):
    """A 2-D tensor along `axis` from `start`, less `cut` entries at its end (ints:
    one slice with constant bounds)."""
    stop = -cut if cut else None
    return x[start:stop] if axis == 0 else x[:, start:stop]


def running(x, window, axis, kind):
    """Max, min or sum over a centred window along `axis` of a 2-D tensor, same
    size out (the window cut at the edges): out[i] covers x[i - window // 2]
    to x[i + (window - 1 - window // 2)].

    Along the axis itself (slices, never a transpose), from sums and extremes
    over blocks of 1, 2, 4 ... entries (a fixed window), or one convolution or
    a doubling loop (a window known only at run time). No cumulative sum: TF's
    Cumsum costs ~50 us even on a 28x28 picture.

    Args:
        window: an int, or an int32 scalar tensor at most 4096.
    """
    before = window // 2
    after = window - 1 - before
    fill = {"sum": 0.0, "max": -1e30, "min": 1e30}[kind]
    x = tf.pad(x, [[before, after], [0, 0]] if axis == 0 else [[0, 0], [before, after]],
               constant_values=fill)
    op = {"sum": tf.add, "max": tf.maximum, "min": tf.minimum}[kind]
    if isinstance(window, int):
        # blocks[k][i] covers x[i:i + 2**k] (padded), and has window - 2**k more
        # entries than the answer.
        blocks, span = [x], 1
        while 2 * span <= window:
            blocks.append(op(_along(blocks[-1], 0, span, axis), _along(blocks[-1], span, 0, axis)))
            span *= 2
        if kind != "sum":  # Two blocks that overlap cover the window.
            return op(_along(blocks[-1], 0, window - span, axis),
                      _along(blocks[-1], window - span, 0, axis))
        out, offset = None, 0  # Blocks of the window's binary digits, one after another.
        for k in reversed(range(len(blocks))):
            if window & (1 << k):
                part = _along(blocks[k], offset, window - (1 << k) - offset, axis)
                out = part if out is None else out + part
                offset += 1 << k
        return out
    if kind == "sum":
        shape = tf.stack([window, 1, 1, 1] if axis == 0 else [1, window, 1, 1])
        return tf.nn.conv2d(x[None, :, :, None], tf.ones(shape), 1, "VALID")[0, :, :, 0]
    padded = tf.shape(x)[axis]
    length = padded - window + 1

    def ahead(v, step):  # v[i + step], the padding's fill past the end.
        return tf.gather(v, tf.minimum(tf.range(padded) + step, padded - 1), axis=axis)

    def double(x, span):  # x[i] then covers [i, i + 2 * span).
        return op(x, ahead(x, span)), 2 * span

    x, span = tf.while_loop(lambda x, span: 2 * span <= window, double, (x, tf.constant(1)),
                            maximum_iterations=12)
    out = op(x, ahead(x, window - span))
    return out[:length] if axis == 0 else out[:, :length]


def _inside(n, window):
    """How many entries of a centred window (`running`) lie inside, at each of n."""
    at = tf.range(n)
    return tf.cast(tf.minimum(at + (window - 1 - window // 2), n - 1)
                   - tf.maximum(at - window // 2, 0) + 1, tf.float32)


def pool(image, window, kind):
    """Max, min or mean over a `window` x `window` neighbourhood, same size out
    (the window cut at the edges: means over the part inside the picture)."""
    if kind == "mean":
        size = tf.shape(image)
        return pool(image, window, "sum") / (_inside(size[0], window)[:, None]
                                             * _inside(size[1], window)[None, :])
    for axis in (0, 1):
        image = running(image, window, axis, kind)
    return image


def resize(image, size, method="area"):
    return tf.image.resize(image[..., None], size, method=method)[..., 0]


def point_reflected(image, pad):
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


def sheared(image, slope):
    """Row y + round(slope * (x - centre)) of column x, at (y, x) (edges repeated)."""
    size = tf.shape(image)
    xs = tf.range(size[1])
    offsets = tf.cast(tf.round(slope * tf.cast(xs - size[1] // 2, tf.float32)), tf.int32)
    rows = tf.clip_by_value(tf.range(size[0])[:, None] + offsets[None, :], 0, size[0] - 1)
    return tf.gather(tf.reshape(image, [-1]), rows * size[1] + xs[None, :])


def border(image):
    """The values along the four edges of a 2-D tensor, as one vector."""
    return tf.concat([image[0], image[-1], image[:, 0], image[:, -1]], axis=0)


def components(mask, max_steps=256):
    """Labels of the 8-connected components of a small bool mask: float (h, w), 0 off.

    Every pixel starts with its own number and takes the largest of its
    neighbourhood's, then the label that the pixel so numbered has reached
    (pointer jumping: that pixel lies in the same component, so labels cross
    a long component in a few rounds), until nothing changes (at most
    `max_steps` rounds: a longer component would stay split, never merged
    with another). Each component ends labelled with its largest number.
    """
    size = tf.shape(mask)
    ids = tf.reshape(tf.range(1, size[0] * size[1] + 1, dtype=tf.float32), size)
    labels = tf.where(mask, ids, 0.0)

    def spread(step, labels, _):
        grown = tf.where(mask, pool(labels, 3, "max"), 0.0)
        at = tf.cast(tf.maximum(grown, 1.0), tf.int32) - 1
        jumped = tf.reshape(tf.gather(tf.reshape(grown, [-1]), tf.reshape(at, [-1])), size)
        grown = tf.where(mask, tf.maximum(grown, jumped), 0.0)
        return step + 1, grown, tf.reduce_any(tf.not_equal(grown, labels))

    def going(step, _, changed):
        return tf.logical_and(step < max_steps, changed)

    _, labels, _ = tf.while_loop(going, spread, (0, labels, True))
    return labels

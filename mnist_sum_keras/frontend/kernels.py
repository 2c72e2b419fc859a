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


def fraction_quantile(values, q, bins=4096):
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


def signed_quantile(values, q, bins=8192):
    """The q-quantile (0..1) of values in [-1, 1] (beyond are counted at the ends),
    to 2/bins, in one pass (`fraction_quantile`)."""
    return 2.0 * fraction_quantile(0.5 * (values + 1.0), q, bins) - 1.0


def median(values):
    # numpy.median: the mean of the two middle values of an even count.
    values = tf.sort(tf.reshape(values, [-1]))
    n = tf.size(values)
    return 0.5 * (values[(n - 1) // 2] + values[n // 2])


def running(x, window, axis, kind):
    """Max, min or sum over a centred window along `axis` of a 2-D tensor, same
    size out (the window cut at the edges).

    Args:
        window: an int, or an int32 scalar tensor at most 4096.
    """
    if axis == 1:
        return tf.transpose(running(tf.transpose(x), window, 0, kind))
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


def pool(image, window, kind):
    """Max, min or mean over a `window` x `window` neighbourhood, same size out
    (the window cut at the edges: means over the part inside the picture)."""
    if kind == "mean":
        ones = tf.ones_like(image)
        return pool(image, window, "sum") / pool(ones, window, "sum")
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
    return tf.transpose(tf.gather(tf.transpose(image), tf.transpose(rows), batch_dims=1))


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

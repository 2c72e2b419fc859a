"""Training-time distortion of digit images: one random affine + elastic warp."""

import math

import keras
import tensorflow as tf
from keras import layers


def _gaussian_matrix(size, sigma):
    """`(size, size)` matrix whose product with a vector blurs it (zero padded)."""
    x = tf.range(size, dtype=tf.float32)
    d = x[:, tf.newaxis] - x[tf.newaxis, :]
    weights = tf.exp(-0.5 * tf.square(d / sigma))
    # Normalised as the full, untruncated kernel: sum over all integer offsets.
    radius = tf.range(-4 * size, 4 * size + 1, dtype=tf.float32)
    return weights / tf.reduce_sum(tf.exp(-0.5 * tf.square(radius / sigma)))


def _smooth(fields, sigma):
    """Gaussian-blurs `(n, height, width)` fields (zero padded), as two matmuls."""
    rows = _gaussian_matrix(fields.shape[1], sigma)
    cols = _gaussian_matrix(fields.shape[2], sigma)
    return tf.einsum("ij,njk,lk->nil", rows, fields, cols)


def bilinear_sample(images, rows, cols):
    """Samples `(batch, h, w)` images at float coordinates, zero outside.

    Args:
        images: float `(batch, h, w)`.
        rows, cols: float `(batch, h', w')` source coordinates in pixels.

    Returns:
        float `(batch, h', w')`.
    """
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    # One pixel of zeros around the image: a coordinate clipped into that
    # border reads zeros, so anything outside the image is black.
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1]])
    rows = tf.clip_by_value(rows + 1.0, 0.0, height + 1.0)
    cols = tf.clip_by_value(cols + 1.0, 0.0, width + 1.0)
    r0, c0 = tf.floor(rows), tf.floor(cols)
    fr, fc = rows - r0, cols - c0
    r0, c0 = tf.cast(r0, tf.int32), tf.cast(c0, tf.int32)
    r1 = tf.minimum(r0 + 1, height + 1)
    c1 = tf.minimum(c0 + 1, width + 1)
    stride = width + 2
    base = tf.reshape(tf.range(batch) * (height + 2) * stride, (-1, 1, 1))
    flat = tf.reshape(padded, (-1,))

    def at(r, c):
        return tf.gather(flat, base + r * stride + c)

    top = at(r0, c0) * (1 - fc) + at(r0, c1) * fc
    bottom = at(r1, c0) * (1 - fc) + at(r1, c1) * fc
    return top * (1 - fr) + bottom * fr


def _centred_grid(height, width):
    """`((rows, cols), (centre_r, centre_c))`: each pixel's float coordinates,
    `(height, width)`, relative to the image's centre, and that centre."""
    centre_r, centre_c = (height - 1) / 2, (width - 1) / 2
    grid = tf.meshgrid(tf.range(height, dtype=tf.float32) - centre_r,
                       tf.range(width, dtype=tf.float32) - centre_c, indexing="ij")
    return grid, (centre_r, centre_c)


# The `Config` fields that size the distortion (all 0: no distortion layer).
SIZE_FIELDS = ("max_rotation", "max_zoom", "max_aspect", "max_shear", "max_shift",
               "elastic_alpha", "max_stroke", "box_fill")

# The most `box_fill` stretches a digit's shorter side (a stroke-thin 1 would
# otherwise become a block).
MAX_FILL_STRETCH = 3.0
# Ink, on the 0..1 scale, that counts toward a digit's bounding box.
BOX_INK = 0.2


def distortion_sizes(config):
    """`{field: value}` of `SIZE_FIELDS` in `config`, the layer's keyword arguments."""
    return {name: getattr(config, name) for name in SIZE_FIELDS}


def vary_stroke(images, share):
    """`(batch, h, w, 1)` images with thicker (`share > 0`) or thinner strokes.

    Blends each image toward its grey-level dilation (the 3x3 maximum) by
    `share` when it is positive and toward its erosion (the 3x3 minimum) by
    `-share` when it is negative; `share` broadcasts against the images.
    """
    thick = tf.nn.max_pool2d(images, 3, 1, "SAME")
    thin = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
    return (images + tf.nn.relu(share) * (thick - images)
            + tf.nn.relu(-share) * (thin - images))


@keras.saving.register_keras_serializable(package="mnist_sum_keras")
class RandomDistortion(layers.Layer):
    """Randomly rotates, scales, shears, shifts, elastically bends and thickens digits.

    Each training image gets its own affine map (rotation, zoom, aspect,
    shear, shift) plus a smooth random displacement field (Simard et al.,
    2003: uniform noise blurred by a Gaussian of `elastic_sigma` pixels and
    scaled by `elastic_alpha`); both become one set of source coordinates and
    the image is resampled once, bilinearly, with black outside. With
    `box_fill`, a share of the digits is first stretched to fill a square (the
    same resampling: the stretch is composed into the source coordinates). With
    `max_stroke`, the strokes then get a random width: a share `t` of
    `[-max_stroke, max_stroke]` blends the image toward its grey-level
    dilation (3x3 maximum: one pixel wider on each side) when `t > 0`, or
    its erosion (3x3 minimum) when `t < 0`. Inference passes images through
    unchanged.

    Args:
        max_rotation: largest rotation, as a fraction of a full turn.
        max_zoom: largest zoom in or out, as a fraction of the size.
        max_aspect: largest extra stretch of the width against the height.
        max_shear: largest horizontal shear (x shift per pixel of y).
        max_shift: largest translation, as a fraction of the image side.
        elastic_alpha: displacement scale of the elastic field (0: none).
        elastic_sigma: smoothness of the elastic field, in pixels.
        max_stroke: largest blend toward the thickened or thinned strokes
            (0: none; 1: up to a full 3x3 dilation or erosion).
        box_fill: share of images whose digit is first stretched to fill a
            square: its ink's bounding box's shorter side scaled, about the
            box's centre, to the longer side's length (at most
            `MAX_FILL_STRETCH` times), as some scanners normalise digits.
        seed: seeds the random draws.

    Input and output: float `(batch, height, width, 1)`.
    """

    def __init__(self, max_rotation=0.0, max_zoom=0.0, max_aspect=0.0, max_shear=0.0,
                 max_shift=0.0, elastic_alpha=0.0, elastic_sigma=5.0, max_stroke=0.0,
                 box_fill=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.max_rotation, self.max_zoom = max_rotation, max_zoom
        self.max_aspect, self.max_shear, self.max_shift = max_aspect, max_shear, max_shift
        self.elastic_alpha, self.elastic_sigma = elastic_alpha, elastic_sigma
        self.max_stroke, self.box_fill = max_stroke, box_fill
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform(self, batch, limit):
        return keras.random.uniform((batch,), -limit, limit, seed=self.seed_generator)

    def call(self, images, training=None):
        if not training:
            return images
        x = images[..., 0]
        batch = tf.shape(x)[0]
        height, width = x.shape[1], x.shape[2]
        angle = self._uniform(batch, self.max_rotation * 2 * math.pi)
        zoom = 1.0 + self._uniform(batch, self.max_zoom)
        aspect = 1.0 + self._uniform(batch, self.max_aspect)
        shear = self._uniform(batch, self.max_shear)
        shift_r = self._uniform(batch, self.max_shift * height)
        shift_c = self._uniform(batch, self.max_shift * width)
        # Output pixel (r, c), centred, maps to the source pixel
        # R(angle) @ diag(zoom, zoom * aspect) @ [[1, 0], [shear, 1]] @ (r, c)
        # + centre + shift (as Keras' transform layers, output to source).
        cos, sin = tf.cos(angle), tf.sin(angle)
        sr, sc = zoom, zoom * aspect
        a = [[cos * sr + (-sin * sc) * shear, -sin * sc],
             [sin * sr + cos * sc * shear, cos * sc]]
        (grid_r, grid_c), (centre_r, centre_c) = _centred_grid(height, width)

        def per_image(v):
            return tf.reshape(v, (-1, 1, 1))

        rows = (per_image(a[0][0]) * grid_r + per_image(a[0][1]) * grid_c
                + centre_r + per_image(shift_r))
        cols = (per_image(a[1][0]) * grid_r + per_image(a[1][1]) * grid_c
                + centre_c + per_image(shift_c))
        if self.elastic_alpha:
            noise = keras.random.uniform((2 * batch, height, width), -1.0, 1.0,
                                         seed=self.seed_generator)
            fields = _smooth(noise, self.elastic_sigma) * self.elastic_alpha
            rows += fields[:batch]
            cols += fields[batch:]
        if self.box_fill:
            rows, cols = self._fill_box(x, rows, cols)
        out = bilinear_sample(x, rows, cols)[..., tf.newaxis]
        if self.max_stroke:
            out = vary_stroke(out, tf.reshape(self._uniform(batch, self.max_stroke),
                                              (-1, 1, 1, 1)))
        return out

    def _fill_box(self, x, rows, cols):
        """Source coordinates that first stretch a `box_fill` share of digits to
        fill a square (`rows`, `cols` address the stretched image)."""
        batch = tf.shape(x)[0]
        ink = x > BOX_INK
        sides, centres = [], []
        for axis in (2, 1):  # rows (any ink across a row), then columns
            seen = tf.reduce_any(ink, axis=axis)
            index = tf.range(tf.shape(seen)[1], dtype=tf.float32)
            first = tf.reduce_min(tf.where(seen, index, 1e9), axis=1)
            last = tf.reduce_max(tf.where(seen, index, -1e9), axis=1)
            found = tf.reduce_any(seen, axis=1)
            sides.append(tf.where(found, last - first + 1, 1.0))
            centres.append(tf.where(found, (first + last) / 2, 0.0))
        chosen = keras.random.uniform((batch,), 0.0, 1.0,
                                      seed=self.seed_generator) < self.box_fill
        stretch = tf.where(chosen, tf.minimum(
            tf.maximum(sides[0], sides[1]) / tf.minimum(sides[0], sides[1]),
            MAX_FILL_STRETCH), 1.0)
        wide = sides[1] > sides[0]  # stretch the rows of a wide digit, else its columns
        out = []
        for stretched_when, mid, coords in ((wide, centres[0], rows),
                                            (~wide, centres[1], cols)):
            factor = tf.reshape(tf.where(stretched_when, stretch, 1.0), (-1, 1, 1))
            mid = tf.reshape(mid, (-1, 1, 1))
            out.append(mid + (coords - mid) / factor)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_rotation": self.max_rotation,
                "max_zoom": self.max_zoom, "max_aspect": self.max_aspect,
                "max_shear": self.max_shear, "max_shift": self.max_shift,
                "elastic_alpha": self.elastic_alpha,
                "elastic_sigma": self.elastic_sigma, "max_stroke": self.max_stroke,
                "box_fill": self.box_fill, "seed": self.seed}


def centre_zoom_coordinates(height, width, zoom):
    """Source `(rows, cols)`, each `(height, width)`, of an image magnified `zoom`
    times about its centre (output pixel -> source pixel)."""
    (grid_r, grid_c), (centre_r, centre_c) = _centred_grid(height, width)
    return grid_r / zoom + centre_r, grid_c / zoom + centre_c


@keras.saving.register_keras_serializable(package="mnist_sum_keras")
class TestTimeZoom(layers.Layer):
    """At inference, magnifies each image `zoom` times about its centre (bilinear).

    Training images all pass through `RandomDistortion`'s bilinear resampling,
    which softens them; test images reach the network sharp. Reading them
    resampled, and a little larger, recovers part of that train-test gap
    (cf. Touvron et al. 2019, "Fixing the train-test resolution discrepancy";
    measured with `python -m bench.posthoc`, see docs/results.md). Training
    passes images through unchanged: the distortion already resamples them.

    Args:
        zoom: magnification (> 1 enlarges the digit); 1 passes images through.
    """

    def __init__(self, zoom=1.0, **kwargs):
        super().__init__(**kwargs)
        self.zoom = float(zoom)

    def call(self, images, training=None):
        if training or self.zoom == 1.0:
            return images
        x = images[..., 0]
        batch = tf.shape(x)[0]
        height, width = x.shape[1], x.shape[2]
        rows, cols = centre_zoom_coordinates(height, width, self.zoom)
        rows = tf.tile(rows[tf.newaxis], [batch, 1, 1])
        cols = tf.tile(cols[tf.newaxis], [batch, 1, 1])
        return bilinear_sample(x, rows, cols)[..., tf.newaxis]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "zoom": self.zoom}

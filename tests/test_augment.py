"""Tests of the training-time distortion layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import synthetic_digits
from mnist_sum_keras.augment import RandomDistortion, TestTimeZoom, bilinear_sample, vary_stroke

ALL = {"max_rotation": 0.03, "max_zoom": 0.1, "max_aspect": 0.1, "max_shear": 0.1,
       "max_shift": 0.1, "elastic_alpha": 34.0, "elastic_sigma": 5.0, "max_stroke": 0.5,
       "box_fill": 0.5}


def _images(count=8):
    images, _ = synthetic_digits(count)
    return (images.astype("float32") / 255)[..., np.newaxis]


def test_inference_passes_images_through_unchanged():
    images = _images()
    layer = RandomDistortion(**ALL, seed=1)
    np.testing.assert_array_equal(layer(images, training=False), images)
    np.testing.assert_array_equal(layer(images), images)


def test_all_sizes_zero_is_the_identity_in_training():
    images = _images()
    np.testing.assert_array_equal(RandomDistortion(seed=1)(images, training=True), images)


def test_distortion_changes_each_image_differently_and_stays_in_range():
    images = np.repeat(_images(1), 6, axis=0)  # One image six times.
    # Without box_fill, which may triple a digit's ink.
    sizes = {k: v for k, v in ALL.items() if k != "box_fill"}
    out = RandomDistortion(**sizes, seed=1)(images, training=True).numpy()
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0  # Bilinear: convex mixes, zeros outside.
    for i in range(1, 6):
        assert not np.allclose(out[0], out[i])
    # Most of the ink stays in the picture.
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), images.sum(axis=(1, 2, 3)), rtol=0.4)


def test_the_same_seed_gives_the_same_draws():
    images = _images()
    a = RandomDistortion(**ALL, seed=7)(images, training=True)
    b = RandomDistortion(**ALL, seed=7)(images, training=True)
    c = RandomDistortion(**ALL, seed=8)(images, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("size", sorted(ALL.keys() - {"elastic_sigma"}))
def test_each_size_alone_distorts(size):
    images = _images()
    out = RandomDistortion(**{size: ALL[size]}, seed=1)(images, training=True)
    assert not np.allclose(out, images)


def test_vary_stroke_widens_or_thins_a_bar_by_a_pixel_each_side():
    images = np.zeros((1, 12, 12, 1), "float32")
    images[0, 2:10, 4:8] = 1.0  # a bar 4 px wide and 8 tall
    widths = {}
    for share in (1.0, 0.0, -1.0):
        out = vary_stroke(tf.constant(images), share).numpy()[0, 5, :, 0]
        widths[share] = int((out > 0.99).sum())
        assert out.min() >= 0 and out.max() <= 1
    assert widths == {1.0: 6, 0.0: 4, -1.0: 2}
    half = vary_stroke(tf.constant(images), 0.5).numpy()[0, 5, :, 0]
    np.testing.assert_allclose(half[2:10], [0, 0.5, 1, 1, 1, 1, 0.5, 0], atol=1e-6)
    thinner = vary_stroke(tf.constant(images), -0.5).numpy()[0, 5, :, 0]
    np.testing.assert_allclose(thinner[2:10], [0, 0, 0.5, 1, 1, 0.5, 0, 0], atol=1e-6)


def test_box_fill_stretches_the_shorter_side_toward_a_square_at_most_3x():
    images = np.zeros((3, 28, 28, 1), "float32")
    images[0, 4:24, 12:16] = 1.0   # tall bar: 20 x 4, stretched 3x (the cap) to 12 wide
    images[1, 10:18, 4:24] = 1.0   # wide block: 8 x 20, stretched 2.5x to 20 tall
    images[2, 4:24, 4:24] = 1.0    # already square: unchanged
    out = RandomDistortion(box_fill=1.0, seed=1)(images, training=True).numpy()[..., 0]

    def extent(image, axis):
        return int((image.max(axis=axis) > 0.5).sum())

    assert (extent(out[0], 1), extent(out[0], 0)) == (20, 12)
    assert (extent(out[1], 1), extent(out[1], 0)) == (20, 20)
    np.testing.assert_array_equal(out[2], images[2, ..., 0])
    # Centred where the digit's box was.
    cols = np.flatnonzero(out[0].max(axis=0) > 0.5)
    assert (cols.min() + cols.max()) / 2 == 13.5
    none = RandomDistortion(box_fill=1e-9, seed=1)(images, training=True).numpy()
    np.testing.assert_array_equal(none, images)


def test_bilinear_sample_shifts_by_whole_pixels_with_black_outside():
    images = np.random.default_rng(0).random((2, 5, 6)).astype("float32")
    rows, cols = np.meshgrid(np.arange(5), np.arange(6), indexing="ij")
    rows = np.broadcast_to(rows - 2.0, (2, 5, 6)).astype("float32")  # Read 2 rows up.
    cols = np.broadcast_to(cols + 1.0, (2, 5, 6)).astype("float32")  # 1 column right.
    out = bilinear_sample(tf.constant(images), rows, cols).numpy()
    expected = np.zeros_like(images)
    expected[:, 2:, :-1] = images[:, :-2, 1:]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_bilinear_sample_interpolates_between_pixels():
    images = tf.constant([[[0.0, 1.0], [2.0, 3.0]]])
    out = bilinear_sample(images, tf.constant([[[0.5]]]), tf.constant([[[0.25]]]))
    np.testing.assert_allclose(out.numpy(), [[[0.25 * 1 + 0.5 * 2]]], atol=1e-6)


def test_config_round_trip():
    layer = RandomDistortion(**ALL, seed=3, name="distort")
    copy = RandomDistortion.from_config(layer.get_config())
    assert copy.get_config() == layer.get_config()
    assert keras.saving.get_registered_object(
        "mnist_sum_keras>RandomDistortion") is RandomDistortion


def test_test_time_zoom_magnifies_about_the_centre_at_inference_only():
    images = np.zeros((2, 28, 28, 1), "float32")
    images[:, 10:18, 13:15] = 1.0  # an 8-pixel bar, centred
    layer = TestTimeZoom(2.0)
    np.testing.assert_array_equal(layer(images, training=True), images)
    zoomed = np.asarray(layer(images, training=False))[0, ..., 0]
    rows = np.flatnonzero(zoomed.max(axis=1) > 0.5)
    assert (rows.min(), rows.max()) == (6, 21)  # twice as long, same centre
    assert zoomed[0, 0] == 0 and zoomed.max() <= 1.0
    np.testing.assert_array_equal(TestTimeZoom(1.0)(images, training=False), images)


def test_test_time_zoom_matches_the_posthoc_bench_and_round_trips():
    from bench.posthoc import zoom_images

    images, _ = synthetic_digits(4)
    zoomed = np.asarray(TestTimeZoom(1.05)(images[..., np.newaxis].astype("float32"),
                                           training=False))[..., 0]
    np.testing.assert_array_equal(np.clip(np.round(zoomed), 0, 255), zoom_images(images, 1.05))
    again = TestTimeZoom.from_config(TestTimeZoom(1.05, name="z").get_config())
    assert again.zoom == 1.05 and again.name == "z"

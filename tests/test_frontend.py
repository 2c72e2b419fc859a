"""The front end on photographed handwriting: paper, light, tables, ruled lines, blanks.

Pictures come from `mnist_sum_keras.frontend.synthetic` (seeded renders of
MNIST digits under each condition); the pieces of `mnist_sum_keras.frontend`
are checked on pictures whose right answer is known exactly.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import RELEASED, synthetic_digits
from mnist_sum_keras import contract
from mnist_sum_keras.config import DATA_ENV_VAR
from mnist_sum_keras.frontend import ImageError, kernels, preprocess, stages, synthetic, verifier


def _pool_by_hand(x, window, kind):
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            part = x[max(0, i - window // 2):i + window - window // 2,
                     max(0, j - window // 2):j + window - window // 2]
            out[i, j] = {"max": part.max, "min": part.min, "mean": part.mean}[kind]()
    return out


@pytest.mark.parametrize("window", [1, 2, 3, 7, 40])
@pytest.mark.parametrize("kind", ["max", "min", "mean"])
def test_pooling_matches_a_window_by_hand_fixed_or_traced(window, kind):
    x = np.random.default_rng(0).uniform(size=(13, 17)).astype(np.float32)
    expected = _pool_by_hand(x, window, kind)
    np.testing.assert_allclose(kernels.pool(tf.constant(x), window, kind), expected,
                               atol=1e-5)
    # The same with the window as a tensor (as the paper's, set by the picture's size).
    np.testing.assert_allclose(kernels.pool(tf.constant(x), tf.constant(window), kind),
                               expected, atol=1e-5)


@pytest.mark.parametrize("paper", [
    lambda ys, xs: 120 + 1.0 * xs - 0.4 * ys,                          # light falling off
    lambda ys, xs: np.where(xs + 0.5 * ys > 80, 0.65, 1.0) * 200,      # a hard shadow
])
def test_paper_follows_light_and_a_shadow_edge_but_not_strokes(paper):
    ys, xs = np.mgrid[0:90, 0:120].astype(np.float32)
    paper = paper(ys, xs).astype(np.float32)
    alone = stages.paper_level(tf.constant(paper)).numpy()
    # Within 1% almost everywhere (a grid half as fine blurs a sharp edge by a
    # pixel or two) ...
    assert np.mean(np.abs(alone / paper - 1) < 0.01) > 0.95
    picture = paper.copy()
    picture[20:70, 40:46] *= 0.2                                        # a stroke of ink
    estimate = stages.paper_level(tf.constant(picture)).numpy()
    # Under the stroke, near the paper it hides, far from the ink (0.2 of it).
    under, hidden = estimate[20:70, 40:46], paper[20:70, 40:46]
    assert (under >= 0.75 * hidden).all() and (under <= hidden * 1.02).all()
    # After the paper's texture pass: the stroke's ink, and none on the paper
    # but a trace along a hard shadow's edge.
    ink, table = stages.flat_ink(tf.constant(np.round(picture).astype(np.uint8)[..., None]))
    ink, stroke = ink.numpy(), np.zeros(paper.shape, bool)
    stroke[20:70, 40:46] = True
    assert not table.numpy().any()
    assert np.median(ink[stroke]) > 0.7
    assert np.quantile(np.abs(ink[~stroke]), 0.95) < 0.03 and np.abs(ink[~stroke]).mean() < 0.01


def test_components_are_labelled_apart():
    mask = np.zeros((12, 12), bool)
    mask[1:4, 1:4] = True       # a square
    mask[6:11, 2] = True        # a bar, apart from it
    mask[8, 3:9] = True         # joined to the bar
    labels = kernels.components(tf.constant(mask)).numpy()
    assert (labels[~mask] == 0).all()
    assert len(np.unique(labels[mask])) == 2
    assert labels[1, 1] != labels[6, 2] == labels[8, 8]


def test_ruled_lines_are_dropped_but_a_stroke_across_them_stays():
    mask = np.zeros((120, 160), bool)
    mask[30, :] = mask[60, 5:] = True                     # lines across the frame
    mask[90, np.arange(160)] = True
    mask[np.clip(90 + (np.arange(160) * 0.1).astype(int), 0, 119), np.arange(160)] = True
    mask[20:100, 70:76] = True                            # a thick stroke across them
    lines = stages.ruled_lines(tf.constant(mask)).numpy()
    assert lines[30, :60].all() and lines[60, 100:].all()
    assert not lines[20:100, 70:76].any()                 # the stroke is whole
    assert not (lines & ~mask).any()


def test_light_ink_on_a_dark_ground_is_told_from_pen_on_paper():
    images, _ = synthetic_digits(1)                       # a light bar on a dark ground
    gray = tf.constant(images[0].astype(np.float32))
    assert not stages.dark_ink_on_light_paper(gray)
    assert stages.dark_ink_on_light_paper(255.0 - gray)


@pytest.fixture(scope="module")
def mnist_like():
    """A few digits of MNIST's test split (real data when $MNIST_SUM_DATA is set)."""
    path = os.environ.get(DATA_ENV_VAR)
    if not path:
        pytest.skip(f"needs ${DATA_ENV_VAR}")
    with np.load(path) as data:
        return data["x_test"][:40], data["y_test"][:40]


def test_paper_statistics_come_from_the_border_when_ink_fills_the_picture():
    rng = np.random.default_rng(0)
    ink = rng.normal(0.0, 0.01, (40, 30)).astype(np.float32)
    ink[3:37, 4:26] += 0.8                       # a bold digit: 60% of the picture
    level, spread = stages.paper_statistics(tf.constant(ink))
    assert abs(float(level)) < 0.01 and 0.005 < float(spread) < 0.02
    # A photo: ink is a minority, the whole picture is the better estimate.
    ink[3:37, 4:26] -= 0.8
    ink[10:14, 10:20] += 0.8
    level, spread = stages.paper_statistics(tf.constant(ink))
    assert abs(float(level)) < 0.005 and 0.005 < float(spread) < 0.02


def _sheet_on_table(height=120, width=160, edge=30, tilt=0.1, table=40.0):
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    gray = np.full((height, width), 200.0, np.float32) - 0.3 * xs   # light falling off
    beyond = xs < edge + tilt * (ys - height / 2)
    gray[beyond] = table
    return gray, beyond


def test_a_table_beyond_the_sheet_is_left_out_on_every_side():
    gray, beyond = _sheet_on_table()
    for turn in range(4):
        found = stages.beyond_the_sheet(tf.constant(np.rot90(gray, turn).copy())).numpy()
        expected = np.rot90(beyond, turn)
        # All of the table, and at most the sheet's blurred edge (2 px) besides.
        assert found[expected].mean() > 0.97, turn
        assert (found & ~expected).sum() <= 3 * max(expected.shape)


def test_a_stroke_near_the_edge_or_a_shadow_is_not_a_table():
    gray, _ = _sheet_on_table(edge=-10)                  # no table at all
    stroke = gray.copy()
    stroke[10:110, 12:20] = 40.0                         # a tall 1 near the left side
    assert not stages.beyond_the_sheet(tf.constant(stroke)).numpy().any()
    shadow = gray.copy()
    shadow[:, :50] *= 0.75                               # a shadow: darker, still paper-lit
    assert not stages.beyond_the_sheet(tf.constant(shadow)).numpy().any()


def test_the_verifier_in_tensorflow_ops_is_its_keras_model():
    import keras

    keras.utils.set_random_seed(0)
    model = verifier.build(len(stages.FEATURES))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    features = rng.uniform(0, 1, (5, len(stages.FEATURES))).astype(np.float32)
    expected = keras.ops.sigmoid(model.predict({"image": images, "features": features},
                                               verbose=0))[:, 0]
    got = verifier.score(tf.constant(images), tf.constant(features),
                         [verifier.weights_of(model)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # A committee's probability is its members' mean.
    twice = verifier.score(tf.constant(images), tf.constant(features),
                           [verifier.weights_of(model)] * 2)
    np.testing.assert_allclose(twice, expected, atol=1e-5)


@pytest.mark.parametrize("message,words", [
    ("probability [0] and spans [0]", "blank"),
    ("probability [0.012] and spans [0.04]", "small"),
    ("probability [0.2] and spans [0.6]", "unlike"),
    # As a graph's assertion prints it: every part in brackets.
    ("probability] [0.2] [and spans] [0.6] [", "unlike"),
    ("probability] [0.2] [and spans] [0.06] [", "small"),
])
def test_a_refusal_is_put_in_words_for_people(message, words):
    text = contract.refusal(contract.BLANK_RULE, f"the likeliest mark looks like a digit "
                            f"with {message} of the longer side")
    assert contract.no_digit_words(text) == contract.NO_DIGIT_WORDS[words]
    assert contract.no_digit_words(contract.refusal(contract.EMPTY_RULE, "x")) is None


def test_the_page_puts_refusals_in_the_same_words():
    from conftest import ROOT

    with open(os.path.join(ROOT, "mnist_sum_keras", "web", "app.js")) as f:
        page = f.read()
    for key, words in contract.NO_DIGIT_WORDS.items():
        assert f'  {key}: "{words}",' in page
    assert f"const SMALL_MARK = {contract.SMALL_MARK};" in page
    assert contract.BLANK_FIGURES[0].split("looks")[1].strip() in page


def test_blank_pictures_of_every_kind_are_refused():
    for k, kind in enumerate(synthetic.BLANKS):
        rng = np.random.default_rng([7, k])
        for _ in range(3):
            with pytest.raises(ImageError, match="No digit found"):
                preprocess(synthetic.render_blank(rng, kind))


def test_photos_are_read_as_the_digit_by_the_release(mnist_like):
    import keras

    import mnist_sum_keras.model  # noqa: F401  Registers the custom layers.
    from conftest import RELEASE

    if RELEASE is None:
        pytest.skip("needs the released model")
    version = os.path.basename(RELEASE)
    model = keras.models.load_model(os.path.join(RELEASED, f"v{version}.keras"))
    images, labels = mnist_like
    rng = np.random.default_rng(11)
    # A faint digit on shaded paper is a phone photo's low end; a tight crop
    # touches the frame; a sheet on a table shows the table along its edges.
    for condition in ("clean scan", "phone photo", "ruled paper", "small in frame",
                      "coloured ink", "sheet on a table", "dim light", "tight crop"):
        picks = rng.choice(len(images), 3, replace=False)
        right = 0
        for i in picks:
            try:
                picture = preprocess(synthetic.render(rng, images[i], condition))
            except ImageError:  # Refused: not read.
                continue
            read = model.predict([picture[None], np.zeros(1, np.int32)], verbose=0)
            right += int(read["digit"].argmax(-1)[0] == labels[i])
        assert right >= 2, condition


def _exif(orientation, byte_order):
    """An APP1 payload holding only the orientation tag, in either TIFF byte order."""
    import struct

    end = "<" if byte_order == b"II" else ">"
    entry = struct.pack(end + "HHIHH", 0x0112, 3, 1, orientation, 0)
    return (b"Exif\0\0" + byte_order + struct.pack(end + "HI", 42, 8)
            + struct.pack(end + "H", 1) + entry + struct.pack(end + "I", 0))


# How a camera stores an upright picture for each orientation tag: the inverse
# of Pillow's `ImageOps.exif_transpose`.
_STORED = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
           6: "ROTATE_90", 7: "TRANSVERSE", 8: "ROTATE_270"}


@pytest.mark.parametrize("byte_order", [b"MM", b"II"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_when_decoding(orientation, byte_order):
    import io

    from PIL import Image

    from mnist_sum_keras.frontend import decode

    # Every flip and turn of this ramp differs from it by far more than JPEG's error.
    upright = (np.add.outer(np.arange(30) * 4, np.arange(50) ** 2 // 12) % 256).astype(np.uint8)
    stored = Image.fromarray(upright)
    if orientation > 1:
        stored = stored.transpose(getattr(Image.Transpose, _STORED[orientation]))
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=_exif(orientation, byte_order))
    data = tf.constant(buffer.getvalue())
    assert int(decode.exif_orientation(data)) == orientation
    got = decode.decode(data).numpy()[..., 0].astype(int)
    assert got.shape == upright.shape
    assert np.abs(got - upright).mean() < 3


def test_pictures_without_an_orientation_are_left_as_stored():
    import io

    from PIL import Image

    from mnist_sum_keras.frontend import decode

    pixels = np.arange(600, dtype=np.uint8).reshape(20, 30)
    for fmt, extra in (("PNG", {}), ("JPEG", {}), ("JPEG", {"exif": Image.Exif().tobytes()})):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, fmt, **extra)
        data = tf.constant(buffer.getvalue())
        assert int(decode.exif_orientation(data)) == 1, (fmt, extra)
        assert decode.decode(data).shape[:2] == (20, 30)

"""Tests of preprocessing users' images and predicting from them.

Pillow only draws and encodes the test images; the package reads them with
TensorFlow's decoders, the same graph code the served `predict_image` runs.
"""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from conftest import RELEASE, ROOT, assert_refuses_bad_files, call_main, gif_of_frames, png_claiming
from mnist_sum_keras.config import DATA_ENV_VAR
from mnist_sum_keras.contract import check_images, check_numbers
from mnist_sum_keras.data import load_mnist
from mnist_sum_keras.frontend import ImageError, load_image, preprocess, to_mnist
from mnist_sum_keras.predict import predict_digits


def _drawing(size, box, ink, paper, mode="L", shape="ellipse"):
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    if shape == "ellipse":
        draw.ellipse(box, outline=ink, width=max(1, (box[2] - box[0]) // 6))
    else:
        font = ImageFont.load_default(size=box[3] - box[1])
        draw.text(box[:2], "7", fill=ink, font=font)
    return image


def _encoded(image, fmt="PNG"):
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _check_mnist_like(out):
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out.max() == 255
    # Black border, digit inside a 20 px box, centre of mass at the centre.
    assert out[0].max() == out[-1].max() == out[:, 0].max() == out[:, -1].max() == 0
    rows = np.flatnonzero(out.max(axis=1) > 50)
    cols = np.flatnonzero(out.max(axis=0) > 50)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20, 21)
    ys, xs = np.indices(out.shape)
    total = out.sum()
    assert abs((ys * out).sum() / total - 14) < 1.0
    assert abs((xs * out).sum() / total - 14) < 1.0


@pytest.mark.parametrize("size,box,ink,paper,shape", [
    ((200, 150), (20, 10, 80, 110), 0, 255, "ellipse"),        # dark on light, off-centre
    ((200, 150), (110, 30, 170, 140), 255, 0, "ellipse"),      # light on dark
    ((1000, 800), (100, 100, 500, 700), 30, 220, "ellipse"),   # large, gray paper
    ((14, 12), (2, 1, 9, 11), 0, 255, "ellipse"),              # smaller than MNIST
    ((160, 160), (20, 10, 100, 110), 0, 255, "text"),          # a typed 7, off-centre
    ((160, 160), (60, 40, 140, 140), 255, 0, "text"),
])
def test_preprocess_gives_mnist_style_digit(size, box, ink, paper, shape):
    drawing = _drawing(size, box, ink, paper, shape=shape)
    out = preprocess(_encoded(drawing))
    _check_mnist_like(out)
    # Pixels and encoded bytes take the same path.
    np.testing.assert_array_equal(preprocess(np.asarray(drawing)), out)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_preprocess_reads_every_format(fmt):
    drawing = _drawing((90, 70), (20, 10, 60, 60), 0, 255)
    out = preprocess(_encoded(drawing, fmt))
    _check_mnist_like(out)
    lossless = preprocess(_encoded(drawing))
    # JPEG is lossy: a few gray levels on average (and maybe a pixel's shift).
    assert _shift_tolerant_diff(out, lossless) < (3 if fmt == "JPEG" else 1e-9)


def test_preprocess_colour_and_transparent_images():
    colour = _drawing((120, 120), (30, 20, 90, 100), (20, 20, 160), (250, 240, 200), "RGB")
    _check_mnist_like(preprocess(_encoded(colour)))
    clear = _drawing((120, 120), (30, 20, 90, 100), (0, 0, 0, 255), (0, 0, 0, 0), "RGBA")
    out = preprocess(_encoded(clear))
    _check_mnist_like(out)
    # Transparent background = white paper: same as the digit drawn on white.
    on_white = _drawing((120, 120), (30, 20, 90, 100), 0, 255)
    np.testing.assert_array_equal(out, preprocess(_encoded(on_white)))


def _shift_tolerant_diff(a, b):
    # Centre-of-mass rounding may move a digit by one pixel, as in MNIST itself.
    a, b = a.astype(int), b.astype(int)
    return min(np.abs(np.roll(a, (dy, dx), axis=(0, 1)) - b).mean()
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def test_preprocess_is_idempotent_on_mnist_style_input():
    first = preprocess(_encoded(_drawing((100, 100), (10, 10, 60, 90), 0, 255)))
    again = preprocess(first)
    assert _shift_tolerant_diff(first, again) < 3


@pytest.mark.skipif(not os.environ.get(DATA_ENV_VAR), reason=f"needs ${DATA_ENV_VAR}")
def test_preprocess_leaves_real_mnist_digits_as_they_are():
    _, (images, _) = load_mnist()
    diffs = [np.abs(preprocess(im).astype(int) - im).mean() for im in images[:500]]
    # Mean absolute change under 1 gray level of 255, on average.
    assert np.mean(diffs) < 1.0, np.mean(diffs)


def test_blank_image_is_refused():
    with pytest.raises(ImageError, match="blank"):
        preprocess(np.full((50, 50), 255, np.uint8))


def test_preprocess_refuses_arrays_it_cannot_read():
    with pytest.raises(ImageError, match="uint8 pixels.*float32"):
        preprocess(np.zeros((20, 20), np.float32))
    with pytest.raises(ImageError, match=r"shape=\(20, 20, 5\)"):
        preprocess(np.zeros((20, 20, 5), np.uint8))


def test_to_mnist_runs_in_a_graph():
    # The served predict_image traces it inside the SavedModel.
    traced = tf.function(to_mnist, input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    drawing = np.asarray(_drawing((60, 50), (10, 5, 40, 45), (0, 0, 0), (255, 255, 255),
                                  "RGB"))
    np.testing.assert_array_equal(traced(tf.constant(drawing)).numpy(), preprocess(drawing))


def test_load_image_errors_name_the_file(tmp_path):
    assert_refuses_bad_files(load_image, ImageError, tmp_path, ".png",
                             missing="not found.*{name}", directory="directory",
                             garbage="{name}")
    good = tmp_path / "good.png"
    _drawing((40, 40), (5, 5, 30, 35), 0, 255).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageError, match="truncated.png"):
        load_image(str(truncated))


def test_decompression_bomb_is_refused(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20000, 20000))
    with pytest.raises(ImageError, match="bomb.png.*at most 16,777,216 pixels.*400000000"):
        load_image(str(bomb))


def test_a_gif_is_read_from_its_first_frame_only():
    from mnist_sum_keras.frontend import decode

    first = np.full((60, 40), 255, np.uint8)
    first[10:50, 15:22] = 0
    gif = gif_of_frames(first, 30)
    assert tf.io.decode_gif(gif).shape[0] == 30
    cut, pixels = decode._first_gif_frame(tf.constant(gif))
    assert tf.io.decode_gif(cut).shape[0] == 1 and int(pixels) == 60 * 40
    np.testing.assert_array_equal(decode.decode(tf.constant(gif)).numpy()[..., 0], first)
    # A frame larger than the screen its header claims counts, not the screen.
    at = gif.index(b"\x2c", 13)
    huge = gif[:at + 5] + (5000).to_bytes(2, "little") * 2 + gif[at + 9:]
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?s)at most 16,777,216.*25000000"):
        decode.decode(tf.constant(huge))


def test_a_jpeg_of_too_many_scans_is_refused_before_decoding():
    import re

    from conftest import jpeg_of_scans
    from mnist_sum_keras import contract
    from mnist_sum_keras.frontend import decode

    rgb = np.full((48, 40, 3), 255, np.uint8)
    rgb[8:40, 18:24] = 0
    assert int(decode.jpeg_scans(tf.io.encode_jpeg(rgb))) == 1
    assert int(decode.jpeg_scans(tf.io.encode_jpeg(rgb, progressive=True))) == 10
    assert int(decode.jpeg_scans(tf.io.encode_png(rgb))) == 0   # Not a JPEG.
    at_limit = jpeg_of_scans(rgb, contract.MAX_JPEG_SCANS)
    assert int(decode.jpeg_scans(at_limit)) == contract.MAX_JPEG_SCANS
    assert decode.decode(tf.constant(at_limit)).shape == rgb.shape
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="(?s)" + re.escape(contract.IMAGE_BYTES_SCANS_RULE) + ".*101"):
        decode.decode(tf.constant(jpeg_of_scans(rgb, contract.MAX_JPEG_SCANS + 1)))


def test_a_large_picture_is_shrunk_before_its_gray_levels_with_the_same_result():
    from mnist_sum_keras.frontend import decode, kernels, stages

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (stages.SHRINK_FIRST + 100, 700, 3), dtype=np.uint8)
    size = [stages.WORK_SIZE, round(700 * stages.WORK_SIZE / (stages.SHRINK_FIRST + 100))]
    expected = kernels.resize(decode.gray_on_white(tf.constant(pixels)), size)
    np.testing.assert_allclose(stages.working_gray(tf.constant(pixels)), expected, atol=1e-3)


@pytest.mark.parametrize("numbers,count,match", [
    ([10], 1, "0..9. Received: number=10"),
    ([-1], 1, "number=-1"),
    ([3.5], 1, "number=3.5"),
    (["7"], 1, "number='7'"),
    ([None], 1, "number=None"),
    ([1, 2], 3, "one per image \\(3\\). Received: 2"),
    ([True], 1, "number=True"),
    ([3.0], 1, "number=3.0"),
    ([[1], [2, 3]], 2, r"number=\[1\]"),
])
def test_check_numbers_refuses(numbers, count, match):
    with pytest.raises(ValueError, match=match):
        check_numbers(numbers, count)


def test_check_numbers_broadcasts_one_number():
    np.testing.assert_array_equal(check_numbers([4], 3), [4, 4, 4])
    np.testing.assert_array_equal(check_numbers(np.array([1, 2], np.int64), 2), [1, 2])


@pytest.mark.parametrize("images,match", [
    (np.zeros((1, 28, 27), np.uint8), r"\[batch, 28, 28\].*shape=\(1, 28, 27\)"),
    (np.zeros((1, 28, 28, 3), np.uint8), r"shape=\(1, 28, 28, 3\)"),
    (np.zeros((1, 28, 28, 1), np.uint8), r"shape=\(1, 28, 28, 1\)"),
    (np.zeros((1, 1, 28, 28, 1), np.uint8), "shape=\\(1, 1, 28, 28, 1\\)"),
    (np.zeros((28, 28), np.uint8), r"shape=\(28, 28\)"),
    (np.zeros((0, 28, 28), np.uint8), "empty"),
    (np.full((2, 28, 28), 0.5, np.float32), "integers in 0..255.*0.5"),
    (np.full((2, 28, 28), np.nan), "integers in 0..255.*nan"),
    (np.full((2, 28, 28), 300), "integers in 0..255.*300"),
    (np.zeros((2, 28, 28), bool), "integers in 0..255.*bool"),
    ([[[0] * 28] * 28, [[0] * 28] * 27], r"\[batch, 28, 28\]. Received: a ragged nested list"),
    (np.full((2, 28, 28), "7"), "integers in 0..255.*<U1"),
])
def test_check_images_refuses(images, match):
    with pytest.raises(ValueError, match=match):
        check_images(images)


def test_check_images_converts_integer_values_to_uint8():
    images = np.arange(2 * 784, dtype=np.int64).reshape(2, 28, 28) % 256
    checked = check_images(images.tolist())
    assert checked.dtype == np.uint8
    np.testing.assert_array_equal(checked, images)


class _FixedModel:
    def __init__(self, p_three=0.91):
        self.p_three = p_three

    def predict(self, inputs, verbose=0):
        images, numbers = inputs
        digit = np.full((len(images), 10), (1 - self.p_three) / 9)
        digit[:, 3] = self.p_three
        total = np.eye(19)[3 + numbers]
        return {"digit": digit, "sum": total}


def test_predict_digits_reports_classes_and_probabilities():
    from mnist_sum_keras.predict import UNSURE_BELOW

    images = np.zeros((2, 28, 28), np.uint8)
    results = predict_digits(_FixedModel(), images, [5])
    assert results == [
        {"number": 5, "digit": 3, "digit_probability": pytest.approx(0.91),
         "sum": 8, "sum_probability": 1.0, "unsure": False}] * 2
    # Below the threshold, the same answer is marked unsure.
    low = predict_digits(_FixedModel(UNSURE_BELOW - 0.01), images[:1], [5])
    assert low[0]["digit"] == 3 and low[0]["unsure"] is True


def test_the_page_marks_unsure_answers_at_the_same_threshold():
    from mnist_sum_keras.predict import UNSURE_BELOW

    with open(os.path.join(ROOT, "mnist_sum_keras", "web", "app.js")) as f:
        page = f.read()
    assert f"const UNSURE_BELOW = {UNSURE_BELOW};" in page


def _predict_script(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "predict.py"), *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,message", [
    (["{missing}", "--number", "3"], "missing.png"),
    (["{image}", "--number", "10"], "number=10"),
    (["{image}", "--number", "x"], "Received: 'x'"),
    (["{image}", "{image}", "--number", "1", "2", "3"], "one per image"),
    (["{image}", "--number", "1", "--model", "{missing_model}"], "Model not found"),
])
def test_predict_script_errors(tmp_path, args, message):
    from mnist_sum_keras.cli import predict as predict_cli

    image = tmp_path / "digit.png"
    _drawing((40, 40), (5, 5, 30, 35), 0, 255).save(image)
    paths = {"image": image, "missing": tmp_path / "missing.png",
             "missing_model": tmp_path / "none.keras"}
    code, stdout, stderr = call_main(predict_cli.main, *(a.format(**paths) for a in args))
    assert code != 0
    assert message in stderr
    assert stdout == ""


@pytest.mark.skipif(RELEASE is None, reason="needs the released model")
def test_predict_script_answers_every_picture_and_names_those_with_no_digit(tmp_path):
    import json

    from mnist_sum_keras.cli import predict as predict_cli
    from mnist_sum_keras.contract import NO_DIGIT_WORDS

    digit, blank = tmp_path / "digit.png", tmp_path / "blank.png"
    _drawing((40, 40), (5, 5, 30, 35), 0, 255).save(digit)
    Image.new("L", (40, 40), 255).save(blank)
    code, stdout, stderr = call_main(predict_cli.main, digit, blank, digit, "--number", "2",
                                     "--model", RELEASE)
    lines = stdout.splitlines()
    assert code == 3, stderr
    assert len(lines) == 3 and lines[0].startswith(f"{digit}: digit ") and lines[2] == lines[0]
    assert lines[1] == f"{blank}: {NO_DIGIT_WORDS['blank']}"
    code, stdout, _ = call_main(predict_cli.main, blank, "--number", "2", "--model", RELEASE,
                                "--json")
    assert code == 3
    assert json.loads(stdout) == {"image": str(blank), "number": 2, "found": False,
                                  "reason": NO_DIGIT_WORDS["blank"]}


@pytest.mark.large
@pytest.mark.skipif(not os.environ.get(DATA_ENV_VAR), reason=f"needs ${DATA_ENV_VAR}")
@pytest.mark.skipif(RELEASE is None,
                    reason="needs the released model")
def test_png_round_trip_matches_array_prediction(tmp_path):
    import json

    from mnist_sum_keras.loading import load_any_model

    _, (images, digits) = load_mnist()
    picks = list(range(12))
    paths = []
    for i in picks:
        paths.append(str(tmp_path / f"test{i}.png"))
        Image.fromarray(images[i]).save(paths[-1])
    numbers = [i % 10 for i in picks]
    result = _predict_script(*paths, "--number", *map(str, numbers), "--json")
    assert result.returncode == 0, result.stderr
    from_png = [json.loads(line) for line in result.stdout.splitlines()]
    model = load_any_model(RELEASE)
    from_array = predict_digits(model, images[picks], numbers)
    for png, array in zip(from_png, from_array):
        assert (png["digit"], png["sum"]) == (array["digit"], array["sum"])
    assert [r["digit"] for r in from_array] == [int(d) for d in digits[picks]]


USER_STYLE = {   # name: (PIL image, format)
    "dark on light, off-centre": (_drawing((200, 150), (20, 10, 80, 110), 0, 255), "PNG"),
    "light on dark": (_drawing((200, 150), (110, 30, 170, 140), 255, 0), "PNG"),
    "large, gray paper": (_drawing((1000, 800), (100, 100, 500, 700), 30, 220), "JPEG"),
    "smaller than MNIST": (_drawing((14, 12), (2, 1, 9, 11), 0, 255), "PNG"),
    "typed 7, JPEG": (_drawing((160, 160), (20, 10, 100, 110), 0, 255, shape="text"), "JPEG"),
    "typed 7, RGBA on transparent": (
        _drawing((160, 160), (30, 20, 110, 120), (0, 0, 0, 255), (0, 0, 0, 0), "RGBA",
                 shape="text"), "PNG"),
}


@pytest.mark.skipif(RELEASE is None,
                    reason="needs the released model")
def test_predict_image_signature_answers_as_predict_script(tmp_path):
    from bench.common import signatures
    from mnist_sum_keras.contract import PREDICT_IMAGE_KEY
    from mnist_sum_keras.loading import load_any_model

    names = sorted(USER_STYLE)
    contents = [_encoded(*USER_STYLE[name]) for name in names]
    numbers = np.arange(len(names), dtype=np.int32) % 10
    served = signatures(RELEASE)[PREDICT_IMAGE_KEY](
        image_bytes=tf.constant(contents), number=tf.constant(numbers))
    paths = []
    for _name, data in zip(names, contents):
        paths.append(tmp_path / f"{len(paths)}.img")
        paths[-1].write_bytes(data)
    model = load_any_model(RELEASE)
    local = predict_digits(model, [load_image(str(p)) for p in paths], numbers)
    assert [r["digit"] for r in local] == served["digit"].numpy().tolist()
    assert [r["sum"] for r in local] == served["sum"].numpy().tolist()
    np.testing.assert_allclose([r["sum_probability"] for r in local],
                               served["sum_probabilities"].numpy().max(axis=-1), atol=1e-5)
    # The typed 7s are read as 7 (the ellipses are zeros or sixes: no check).
    sevens = [r["digit"] for name, r in zip(names, local) if name.startswith("typed 7")]
    assert sevens == [7, 7]

"""Bad input gets a clear error naming the input at every door; never a silent answer.

One table, `CASES`: each row is a bad input and the message (a rule of
`mnist_sum_keras.contract`) every door must refuse it with. The doors: the
Python API (`predict_digits`), the REST client (`serving.build_request`), the
model itself (`model.predict` and `model(x)`), the served `serving_default`
and `predict_image` signatures, and `scripts/predict.py`. A new case is one
line; `DOORS` says where a row does not apply and why.
"""

import io
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import call_main, jpeg_of_scans, png_claiming, write_npz
from mnist_sum_keras import contract, serving
from mnist_sum_keras.cli import evaluate as evaluate_cli
from mnist_sum_keras.cli import train as train_cli
from mnist_sum_keras.predict import predict_digits

IMAGES = np.zeros((3, 28, 28), np.uint8)
IMAGES[:, 6:22, 12:16] = 255   # a bar: not blank, so predict_image reads it
ONE = IMAGES[:1]
# The served signatures take uint8 and int32; other dtypes are refused by the
# signature itself (TF Serving: by its JSON layer, HTTP 400).
DTYPE = "expected|int32|uint8|Could not|cannot|Cannot"


def _png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


# name: (image, number, message, received, otherwise)
# `message` is a regex every door's error must match; `received` a regex of the
# bad value, which must appear after it. `otherwise` maps a door ("model" for
# both model doors, "served" for both signatures) to why it does not apply (the
# pair is not collected), or to DTYPE where the signature's own dtype refuses
# the input first.
CASES = {
    "number 10": (ONE, [10], contract.NUMBER_VALUE_RULE, "10", {}),
    "number -1": (ONE, [-1], contract.NUMBER_VALUE_RULE, "-1", {}),
    "number 3.5": (ONE, [3.5], contract.NUMBER_VALUE_RULE, "3.5", {"served": DTYPE}),
    "number -0.5": (ONE, [-0.5], contract.NUMBER_VALUE_RULE, "-0.5", {"served": DTYPE}),
    "number 9.7": (ONE, [9.7], contract.NUMBER_VALUE_RULE, "9.7", {"served": DTYPE}),
    "number NaN": (ONE, [float("nan")], contract.NUMBER_VALUE_RULE, "nan",
                   {"served": DTYPE}),
    "one bad number in a batch": (IMAGES, [1, 12, 3], contract.NUMBER_VALUE_RULE, "12", {}),
    "number '7'": (ONE, ["7"], contract.NUMBER_VALUE_RULE, "'7'",
                   {"served": DTYPE, "model": "not Keras' door: strings fail to convert"}),
    "pixel 256": (ONE.astype(np.int64) + 256, [1], re.escape(contract.IMAGE_VALUE_RULE),
                  "256", {"served": DTYPE}),
    "pixel -1": (ONE.astype(np.int64) - 1, [1], re.escape(contract.IMAGE_VALUE_RULE), "-1",
                 {"served": DTYPE}),
    "float image 0..1": (ONE / 510.0 + 0.25, [1], re.escape(contract.IMAGE_VALUE_RULE), "0.25",
                         {"served": DTYPE}),
    "NaN image": (np.full((1, 28, 28), np.nan), [1], re.escape(contract.IMAGE_VALUE_RULE),
                  "nan", {"served": DTYPE}),
    "image (28, 27)": (np.zeros((1, 28, 27), np.uint8), [1],
                       re.escape(contract.IMAGE_SHAPE_RULE), "28,? 27",
                       {"model": "Keras checks shapes itself"}),
    "image (N, 784)": (np.zeros((2, 784), np.uint8), [1, 2],
                       re.escape(contract.IMAGE_SHAPE_RULE), "784",
                       {"model": "Keras checks shapes itself"}),
    "extra axes (1, 1, 28, 28)": (np.zeros((1, 1, 28, 28), np.uint8), [1],
                                  re.escape(contract.IMAGE_SHAPE_RULE), "1,? 1,? 28,? 28",
                                  {"model": "Keras checks shapes itself"}),
    "channel axis (1, 28, 28, 1)": (np.zeros((1, 28, 28, 1), np.uint8), [1],
                                    re.escape(contract.IMAGE_SHAPE_RULE), "28,? 28,? 1",
                                    {"model": "Keras squeezes a trailing axis of 1"}),
    "colour image": (np.zeros((1, 28, 28, 3), np.uint8), [1],
                     re.escape(contract.IMAGE_SHAPE_RULE), "28,? 28,? 3",
                     {"model": "Keras checks shapes itself"}),
    "number shape (N, 1)": (ONE, [[1]], re.escape(contract.NUMBER_SHAPE_RULE), "1,? 1",
                            {"model": "Keras checks shapes itself"}),
    "empty batch": (np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int32),
                    re.escape(contract.EMPTY_RULE), "0",
                    {"model": "Keras answers an empty batch with an empty one"}),
    "batch sizes differ": (IMAGES[:2], [1, 2, 3], "one per image|same batch size", "3",
                           {"model": "Keras checks batch sizes itself"}),
}
DOORS = ("api", "rest", "model.predict", "model", "served", "predict_image")


@pytest.fixture(scope="module")
def model(tiny_served):
    return tiny_served[0]


@pytest.fixture(scope="module")
def signatures(tiny_signatures):
    return tiny_signatures


def _call(door, model, signatures, image, number):
    if door == "api":
        return predict_digits(model, image, number)
    if door == "rest":
        return serving.build_request(image, number)
    if door == "model.predict":
        return model.predict([np.asarray(image), np.asarray(number)], verbose=0)
    if door == "model":
        return model([np.asarray(image), np.asarray(number)])
    if door == "served":
        return signatures[contract.SIGNATURE_KEY](image=tf.constant(image),
                                                  number=tf.constant(number))
    if door == "predict_image":
        # The same numbers (and batch) with the images sent as PNG bytes.
        return signatures[contract.PREDICT_IMAGE_KEY](
            image_bytes=tf.constant([_png(im) for im in image], tf.string),
            number=tf.constant(number))
    raise AssertionError(door)


def _expected(case, door):
    """The message `door` must refuse `case` with, or None where it does not apply."""
    image, _, message, _, otherwise = CASES[case]
    image = np.asarray(image)
    if door == "predict_image" and (image.shape[1:] != (28, 28) or image.dtype != np.uint8):
        return None   # It takes encoded images: only the number and batch rows apply.
    key = {"model.predict": "model", "predict_image": "served"}.get(door, door)
    expected = otherwise.get(key, message)
    return expected if expected in (message, DTYPE) else None


@pytest.mark.parametrize("case,door", [(case, door) for case in sorted(CASES)
                                       for door in DOORS if _expected(case, door)])
def test_every_door_refuses(model, signatures, case, door):
    image, number, message, received, _ = CASES[case]
    expected = _expected(case, door)
    with pytest.raises(Exception) as error:
        _call(door, model, signatures, image, number)
    text = str(error.value)
    assert re.search(expected, text), text
    if expected == message:
        assert re.search(received, text[re.search(message, text).end():]), text


def test_served_and_model_errors_are_invalid_argument(model, signatures):
    # TF Serving turns InvalidArgument into HTTP 400.
    with pytest.raises(tf.errors.InvalidArgumentError):
        model.predict([ONE, np.array([10])], verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError):
        signatures[contract.SIGNATURE_KEY](image=tf.constant(ONE), number=tf.constant([10]))


# Bytes that predict_image refuses (InvalidArgument) before anything is answered.
BAD_BYTES = {
    "text": (b"not an image at all", re.escape(contract.IMAGE_BYTES_FORMAT_RULE)),
    "empty bytes": (b"", re.escape(contract.IMAGE_BYTES_FORMAT_RULE)),
    "truncated PNG": (_png(IMAGES[0])[:60], "PNG"),
    "20000x20000 PNG header": (png_claiming(20000, 20000),
                               re.escape(contract.IMAGE_BYTES_SIZE_RULE) + r".*400000000"),
    "JPEG of 101 scans": (jpeg_of_scans(np.stack([IMAGES[0]] * 3, -1), 101),
                          re.escape(contract.IMAGE_BYTES_SCANS_RULE) + r".*101"),
}


@pytest.mark.parametrize("case", sorted(BAD_BYTES))
def test_predict_image_refuses_bytes(signatures, case):
    data, message = BAD_BYTES[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signatures[contract.PREDICT_IMAGE_KEY](image_bytes=tf.constant([data]),
                                               number=tf.constant([1]))


def test_predict_image_answers_each_picture_of_a_batch_with_a_blank_one(signatures):
    # A picture with no digit is an outcome of reading, not a caller's mistake: the
    # batch's other pictures are answered as they would be alone.
    read = signatures[contract.PREDICT_IMAGE_KEY]
    digit, blank = _png(IMAGES[0]), _png(np.full((40, 40), 255, np.uint8))
    mixed = read(image_bytes=tf.constant([digit, blank, digit]), number=tf.constant([1, 2, 3]))
    alone = read(image_bytes=tf.constant([digit, digit]), number=tf.constant([1, 3]))
    assert mixed["found"].numpy().tolist() == [True, False, True]
    assert mixed["reason"].numpy().tolist() == [
        b"", contract.NO_DIGIT_WORDS["blank"].encode(), b""]
    for key in ("digit", "sum"):
        assert mixed[key].numpy().tolist() == [alone[key][0], -1, alone[key][1]]
    for key in ("digit_probabilities", "sum_probabilities"):
        np.testing.assert_allclose(mixed[key].numpy()[[0, 2]], alone[key].numpy(), atol=1e-6)
        assert not mixed[key].numpy()[1].any()


def test_predict_image_refuses_a_batch_of_lists(signatures):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=re.escape(contract.IMAGE_BYTES_SHAPE_RULE)):
        signatures[contract.PREDICT_IMAGE_KEY](
            image_bytes=tf.constant([[_png(IMAGES[0])]]), number=tf.constant([1]))


# Legitimately convertible input is converted (documented in the README).
CONVERTED = {
    "int64 numbers": (IMAGES, np.array([1, 2, 3], np.int64)),
    "int64 pixels 0..255": (IMAGES.astype(np.int64), [1, 2, 3]),
    "float pixels holding integers": (IMAGES.astype(np.float32), [1, 2, 3]),
    "nested lists (JSON)": (IMAGES.tolist(), [1, 2, 3]),
    "batch of 1": (ONE, [4]),
    "one number for all images": (IMAGES, [4]),
}


@pytest.mark.parametrize("case", sorted(CONVERTED))
def test_python_api_converts(model, case):
    images, numbers = CONVERTED[case]
    results = predict_digits(model, images, numbers)
    assert len(results) == len(images)
    assert all(0 <= r["sum"] <= 18 and 0 <= r["digit"] <= 9 for r in results)
    expected = predict_digits(model, IMAGES[:len(results)], numbers)
    assert results == expected


def test_train_script_refuses_truncated_npz(tmp_path):
    good = write_npz(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    with open(good, "rb") as f:
        truncated.write_bytes(f.read()[:5000])
    code, _, stderr = call_main(train_cli.main, "--data", truncated,
                                "--output-dir", tmp_path / "out")
    assert code != 0
    assert "truncated.npz" in stderr
    assert not (tmp_path / "out").exists()


def test_evaluate_script_refuses_keras_file_that_is_not_a_model(tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, stderr = call_main(evaluate_cli.main, fake, "--output-dir", tmp_path / "report")
    assert code != 0
    assert "fake.keras" in stderr
    assert not (tmp_path / "report").exists()


def test_evaluate_script_refuses_missing_model(tmp_path):
    code, _, stderr = call_main(evaluate_cli.main, tmp_path / "nothing", "--output-dir",
                                tmp_path / "report")
    assert code != 0 and "Model not found" in stderr
    assert not (tmp_path / "report").exists()

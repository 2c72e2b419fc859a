"""Tests of the TF Serving REST client, without a server."""

import json

import numpy as np
import pytest

from mnist_sum_keras import serving


def _batch(size=2):
    return np.arange(size * 784, dtype=np.int64).reshape(size, 28, 28).astype(np.uint8), \
        np.array([3, 9][:size], np.int32)


def test_row_request():
    images, numbers = _batch()
    body = serving.build_request(images, numbers, "instances")
    assert body["signature_name"] == "serving_default"
    assert len(body["instances"]) == 2
    first = body["instances"][0]
    assert first["number"] == 3 and np.array_equal(first["image"], images[0])
    json.dumps(body)  # Plain JSON types only.


def test_column_request():
    images, numbers = _batch()
    body = serving.build_request(images, numbers, "inputs")
    assert body["inputs"]["number"] == [3, 9]
    assert np.array_equal(body["inputs"]["image"], images)
    json.dumps(body)


@pytest.mark.parametrize("images,numbers,match", [
    (np.zeros((1, 28, 27), np.uint8), [1], "shape"),
    (np.zeros((1, 28, 28), np.float32), [1], "uint8"),
    (np.zeros((1, 28, 28), np.uint8), [10], "0..9. Received: number=10"),
    (np.zeros((1, 28, 28), np.uint8), [-1], "0..9"),
    (np.zeros((2, 28, 28), np.uint8), [1], "2 integers"),
    (np.zeros((1, 28, 28), np.uint8), [3.5], "integers"),
])
def test_bad_inputs_refused_before_sending(images, numbers, match):
    with pytest.raises(ValueError, match=match):
        serving.build_request(images, numbers)


def test_unknown_format():
    with pytest.raises(ValueError, match="request_format"):
        serving.build_request(*_batch(), request_format="rows")


def _row(digit, total):
    return {"digit": digit, "sum": total,
            "digit_probabilities": list(np.eye(10)[digit] * 0.9),
            "sum_probabilities": list(np.eye(19)[total] * 0.8)}


def test_parse_row_and_column_responses_agree():
    rows = [_row(5, 12), _row(0, 9)]
    row_answer = serving.parse_response({"predictions": rows})
    columns = {key: [r[key] for r in rows] for key in rows[0]}
    column_answer = serving.parse_response({"outputs": columns})
    assert row_answer == column_answer
    assert row_answer[0] == {"digit": 5, "sum": 12, "digit_probability": pytest.approx(0.9),
                             "sum_probability": pytest.approx(0.8)}


def test_parse_error_response():
    with pytest.raises(RuntimeError, match="number must be in 0..9"):
        serving.parse_response({"error": "number must be in 0..9"})
    with pytest.raises(ValueError, match="lacks the outputs"):
        serving.parse_response({"predictions": [{"digit": 1}]})

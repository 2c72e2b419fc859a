"""Tests of the TF Serving REST client, without a server (tests/test_server.py runs it
against the local stand-in)."""

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


def test_image_request_sends_bytes_as_b64():
    import base64

    body = serving.build_image_request([b"\x89PNG one", b"\xff\xd8\xff two"], [4])
    assert body["signature_name"] == "predict_image"
    assert [row["number"] for row in body["instances"]] == [4, 4]
    assert base64.b64decode(body["instances"][1]["image_bytes"]["b64"]) == b"\xff\xd8\xff two"
    json.dumps(body)
    with pytest.raises(ValueError, match="image_bytes must be PNG.*Received: str"):
        serving.build_image_request(["not bytes"], [4])
    with pytest.raises(ValueError, match="empty"):
        serving.build_image_request([], [4])
    with pytest.raises(ValueError, match="number=10"):
        serving.build_image_request([b"\x89PNG"], [10])


@pytest.mark.large
def test_client_imports_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, mnist_sum_keras.serving; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == "False"


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

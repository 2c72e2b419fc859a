"""Tests of the TF Serving REST client, without a server."""

import json
import urllib.error
import urllib.request

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


class _FakeTFServing:
    """A loopback stand-in for TF Serving's REST predict API.

    It answers from the real exported `serving_default` signature, row or
    column format, and turns InvalidArgument into HTTP 400 with an "error" key,
    as TF Serving does. (TF Serving itself cannot run on the CI machines.)
    """

    def __init__(self, signature):
        import http.server
        import threading

        import tensorflow as tf

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    if "instances" in body:
                        rows = body["instances"]
                        inputs = {k: [r[k] for r in rows] for k in ("image", "number")}
                    else:
                        inputs = body["inputs"]
                    out = signature(image=tf.constant(inputs["image"], tf.uint8),
                                    number=tf.constant(inputs["number"], tf.int32))
                    out = {k: v.numpy().tolist() for k, v in out.items()}
                    if "instances" in body:
                        answer = {"predictions": [dict(zip(out, values))
                                                  for values in zip(*out.values())]}
                    else:
                        answer = {"outputs": out}
                    code = 200
                except tf.errors.InvalidArgumentError as e:
                    answer, code = {"error": e.message}, 400
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = (f"http://127.0.0.1:{self.server.server_port}"
                    "/v1/models/mnist_sum:predict")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_client_against_served_signature(tmp_path):
    import dataclasses

    import tensorflow as tf

    from mnist_sum_keras.config import Config
    from mnist_sum_keras.contract import SIGNATURE_KEY
    from mnist_sum_keras.export import export_saved_model
    from mnist_sum_keras.model import build_model

    model = build_model(dataclasses.replace(Config(), conv_filters=(4,), feature_units=8,
                                            sum_units=(8,)))
    path = export_saved_model(model, str(tmp_path / "mnist_sum"))
    signature = tf.saved_model.load(path).signatures[SIGNATURE_KEY]
    images, numbers = _batch(2)
    expected = model.predict([images, numbers], verbose=0)
    with _FakeTFServing(signature) as server:
        rows = serving.predict(images, numbers, url=server.url, request_format="instances")
        columns = serving.predict(images, numbers, url=server.url, request_format="inputs")
        assert rows == columns
        assert [r["digit"] for r in rows] == list(np.argmax(expected["digit"], -1))
        assert [r["sum"] for r in rows] == list(np.argmax(expected["sum"], -1))
        # A number the client would refuse, sent raw: the server says 400.
        body = serving.build_request(images, numbers)
        body["instances"][0]["number"] = 10
        request = urllib.request.Request(server.url, data=json.dumps(body).encode())
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=30)
        assert error.value.code == 400
        assert "number must be an integer in 0..9" in json.load(error.value)["error"]

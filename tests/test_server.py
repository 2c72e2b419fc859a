"""Tests of the local TF Serving REST stand-in (`mnist_sum_keras.server`, `scripts/serve.py`).

The rules come from TF Serving's REST API documentation: model status,
metadata, predict in row (`instances` -> `predictions`) and column (`inputs`
-> `outputs`) formats, `{"b64": ...}` for bytes, `{"error": ...}` with HTTP 400
for a bad request and 404 for an unknown model or version.
"""

import base64
import concurrent.futures
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, Running, call_main, gif_of_frames, jpeg_of_scans, synthetic_digits
from mnist_sum_keras import contract, serving


@pytest.fixture(scope="module")
def exported(tiny_served, tiny_signatures):
    return tiny_served[1], tiny_signatures


@pytest.fixture(scope="module")
def server(exported):
    with Running(model_dir=exported[0], max_request_bytes=200_000) as running:
        yield running


def _call(url, body=None, raw=None):
    """(status, JSON answer) of a GET, or a POST of `body` as JSON (or `raw` bytes)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


PREDICT = "/v1/models/mnist_sum:predict"
IMAGES, _ = synthetic_digits(4)
NUMBERS = [3, 9, 0, 5]


def _png(image):
    return tf.io.encode_png(image[..., None]).numpy()


def test_model_status(server):
    for path in ("/v1/models/mnist_sum", "/v1/models/mnist_sum/versions/1"):
        assert _call(server.url + path) == (200, {"model_version_status": [{
            "version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]})


def test_metadata_lists_both_signatures(server):
    status, answer = _call(server.url + "/v1/models/mnist_sum/versions/1/metadata")
    assert status == 200 and answer["model_spec"]["version"] == "1"
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {contract.SIGNATURE_KEY, contract.PREDICT_IMAGE_KEY}
    image = signatures[contract.SIGNATURE_KEY]["inputs"]["image"]
    assert image["dtype"] == "DT_UINT8"
    assert [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "28", "28"]
    assert signatures[contract.PREDICT_IMAGE_KEY]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert signatures[contract.SIGNATURE_KEY]["outputs"]["sum"]["dtype"] == "DT_INT64"


def test_row_and_column_predictions_equal_the_signature(server, exported):
    expected = exported[1][contract.SIGNATURE_KEY](image=tf.constant(IMAGES),
                                                   number=tf.constant(NUMBERS))
    rows = _call(server.url + PREDICT, serving.build_request(IMAGES, NUMBERS, "instances"))
    columns = _call(server.url + "/v1/models/mnist_sum/versions/1:predict",
                    serving.build_request(IMAGES, NUMBERS, "inputs"))
    assert rows[0] == columns[0] == 200
    assert len(rows[1]["predictions"]) == 4
    for key, value in expected.items():
        np.testing.assert_allclose([row[key] for row in rows[1]["predictions"]], value,
                                   atol=1e-6)
        np.testing.assert_allclose(columns[1]["outputs"][key], value, atol=1e-6)


def test_predict_image_with_b64(server, exported):
    pngs = [_png(im) for im in IMAGES]
    expected = exported[1][contract.PREDICT_IMAGE_KEY](image_bytes=tf.constant(pngs),
                                                       number=tf.constant(NUMBERS))
    results = serving.predict_image(pngs, NUMBERS, url=server.url + PREDICT)
    assert [r["sum"] for r in results] == expected["sum"].numpy().tolist()
    columns = serving.predict_image(pngs, NUMBERS, url=server.url + PREDICT,
                                    request_format="inputs")
    assert columns == results


def test_predict_image_answers_a_blank_picture_as_found_false(server, exported):
    pngs = [_png(IMAGES[0]), _png(np.full((28, 28), 255, np.uint8))]
    status, answer = _call(server.url + PREDICT, {"signature_name": "predict_image", "instances": [
        {"image_bytes": {"b64": base64.b64encode(p).decode()}, "number": 1} for p in pngs]})
    assert status == 200, answer
    blank = answer["predictions"][1]
    assert blank["found"] is False and blank["reason"] == contract.NO_DIGIT_WORDS["blank"]
    assert blank["digit"] == blank["sum"] == -1
    assert answer["predictions"][0]["found"] is True and answer["predictions"][0]["reason"] == ""
    results = serving.predict_image(pngs, [1, 1], url=server.url + PREDICT)
    assert results[1] == {"digit": None, "sum": None, "digit_probability": None,
                          "sum_probability": None, "found": False,
                          "reason": contract.NO_DIGIT_WORDS["blank"]}
    assert results[0]["digit"] == answer["predictions"][0]["digit"]


# (request body, status, message regex): bad requests and who refuses them.
_ROW = {"image": IMAGES[0].tolist(), "number": 3}
BAD_REQUESTS = {
    "number 10 (graph)": ({"instances": [{**_ROW, "number": 10}]}, 400,
                          re.escape(contract.NUMBER_VALUE_RULE)),
    "number 3.5 (JSON layer)": ({"instances": [{**_ROW, "number": 3.5}]}, 400,
                                "number: JSON value 3.5 is not of expected type int32"),
    "pixel 256 (refused here, cast by TF Serving)": (
        {"inputs": {"image": [[[256] * 28] * 28], "number": [1]}}, 400,
        "image: JSON value 256 does not fit uint8"),
    "ragged image": ({"inputs": {"image": [[[1] * 28] * 27 + [[1] * 3]], "number": [1]}},
                     400, "ragged"),
    "image [1, 1, 28, 28] (graph)": ({"inputs": {"image": [[IMAGES[0].tolist()]],
                                                 "number": [1]}}, 400,
                                     re.escape(contract.IMAGE_SHAPE_RULE)),
    "empty instances": ({"instances": []}, 400, "No values in 'instances' array"),
    "batch sizes differ (graph)": ({"inputs": {"image": IMAGES[:2].tolist(), "number": [1]}},
                                   400, re.escape(contract.BATCH_RULE)),
    "missing input": ({"instances": [{"image": IMAGES[0].tolist()}]}, 400,
                      r"instances\[0\] must be an object with the inputs"),
    "both formats": ({"instances": [_ROW], "inputs": {}}, 400, "either 'instances'"),
    "unknown signature": ({"signature_name": "nope", "instances": [_ROW]}, 400,
                          "\"nope\" not found"),
    "bad base64": ({"signature_name": "predict_image",
                    "instances": [{"image_bytes": {"b64": "%%%"}, "number": 1}]}, 400,
                   "not valid base64"),
    "bytes not an image (graph)": (
        {"signature_name": "predict_image",
         "instances": [{"image_bytes": {"b64": base64.b64encode(b"hello").decode()},
                        "number": 1}]}, 400, re.escape(contract.IMAGE_BYTES_FORMAT_RULE)),
    "not an object": ([1, 2, 3], 400, "must be a JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests(server, case):
    body, status, message = BAD_REQUESTS[case]
    code, answer = _call(server.url + PREDICT, body)
    assert code == status and set(answer) == {"error"}, answer
    assert re.search(message, answer["error"]), answer


@pytest.mark.parametrize("path,message", [
    ("/v1/models/other:predict", r"Servable not found for request: Latest\(other\)"),
    ("/v1/models/mnist_sum/versions/2:predict",
     r"Servable not found for request: Specific\(mnist_sum, 2\)"),
    ("/v1/nothing", "Malformed request"),
])
def test_unknown_model_version_or_path_is_404(server, path, message):
    code, answer = _call(server.url + path, {"instances": [_ROW]})
    assert code == 404 and re.search(message, answer["error"])


def test_invalid_json_and_oversized_requests(server):
    assert _call(server.url + PREDICT, raw=b"{not json")[0] == 400
    code, answer = _call(server.url + PREDICT, raw=b" " * 200_001)
    assert code == 413 and "exceeds the limit of 200,000" in answer["error"]


def test_a_body_far_over_the_limit_gets_a_413_that_urllib_reads(server):
    # 10 MB, from 8 threads at once: the server reads and drops the body before
    # answering, so no client is cut off mid-send ("Broken pipe") before the 413.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _call(server.url + PREDICT, raw=b" " * 10_000_000),
                                range(8)))
    for code, answer in answers:
        assert code == 413 and set(answer) == {"error"}
        assert "Request body of 10,000,000 bytes exceeds the limit of 200,000" in answer["error"]
    assert _call(server.url + PREDICT, {"instances": [_ROW]})[0] == 200  # Still serving.


@pytest.mark.large
def test_a_body_far_over_the_limit_gets_a_413_that_curl_reads(server, tmp_path):
    body = tmp_path / "big.json"
    body.write_bytes(b" " * 10_000_000)
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "60", "--data-binary", f"@{body}",
         "--write-out", "\n%{http_code}", server.url + PREDICT],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answer, code = result.stdout.rsplit("\n", 1)
    assert code == "413" and "exceeds the limit of 200,000" in json.loads(answer)["error"]


def test_concurrent_requests_are_not_mixed_up(server, exported):
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
                rng.integers(0, 10, 3).tolist()) for _ in range(16)]
    signature = exported[1][contract.SIGNATURE_KEY]
    expected = [signature(image=tf.constant(x), number=tf.constant(n))["sum_probabilities"]
                for x, n in batches]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda b: _call(server.url + PREDICT, serving.build_request(*b, "inputs")),
            batches))
    for (code, answer), want in zip(answers, expected):
        assert code == 200
        np.testing.assert_allclose(answer["outputs"]["sum_probabilities"], want, atol=1e-6)


def test_page_is_served_without_samples(server):
    with urllib.request.urlopen(server.url + "/", timeout=30) as response:
        page = response.read().decode()
    assert response.headers["Content-Type"].startswith("text/html")
    assert '<canvas id="canvas"' in page and 'src="app.js"' in page
    for path in ("/app.js", "/style.css"):
        with urllib.request.urlopen(server.url + path, timeout=30) as response:
            assert response.status == 200
    assert _call(server.url + "/samples.json")[0] == 404
    assert _call(server.url + "/../setup.cfg")[0] == 404


def test_samples_from_data(exported, tmp_path):
    from conftest import write_npz

    with Running(model_dir=exported[0], data_path=write_npz(tmp_path / "m.npz")) as running:
        code, samples = _call(running.url + "/samples.json")
    assert code == 200 and sorted({s["label"] for s in samples}) == list(range(10))
    assert base64.b64decode(samples[0]["png"]).startswith(b"\x89PNG")


def test_forwarding_to_tf_serving(server):
    with Running(tf_serving=server.url + "/") as front:
        status = "/v1/models/mnist_sum"
        assert _call(front.url + status) == _call(server.url + status)
        body = serving.build_request(IMAGES, NUMBERS)
        assert _call(front.url + PREDICT, body) == _call(server.url + PREDICT, body)
        assert _call(front.url + "/v1/models/x:predict", body)[0] == 404
        with urllib.request.urlopen(front.url + "/", timeout=30) as response:
            assert response.status == 200
    with Running(tf_serving="http://127.0.0.1:9") as front:   # Nothing listens there.
        code, answer = _call(front.url + PREDICT, body)
        assert code == 502 and "unreachable" in answer["error"]


@contextlib.contextmanager
def _serve_script(model_dir, timeout=300):
    """`scripts/serve.py` in a process of its own, killed after `timeout` seconds
    at the latest (bounding every wait, its start included): `(process, url)`."""
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", "serve.py"), "--model", model_dir,
         "--port", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # SIGINT back to its default, as in a terminal (a shell's background jobs ignore it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        line = ""
        for line in process.stdout:
            if line.startswith("Page: "):
                break
        url = re.search(r"http://[\d.]+:\d+", line)
        assert url, f"serve.py did not start: {line!r}"
        yield process, url.group(0)
    finally:
        watchdog.cancel()
        process.kill()
        if process.returncode is None:   # Not yet collected by the test.
            process.communicate()


@pytest.mark.large
def test_serve_script_starts_answers_and_stops_on_ctrl_c(exported):
    with _serve_script(exported[0], timeout=120) as (process, url):
        assert url.startswith("http://127.0.0.1:")   # Loopback unless told otherwise.
        assert _call(url + "/v1/models/mnist_sum")[0] == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Stopped." in out and "Traceback" not in err


def _peak_memory_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


@pytest.mark.large  # A server process, and pictures of 4096x4096.
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
def test_picture_bombs_cost_bounded_memory_and_other_requests_are_answered(exported):
    """Five requests of pictures that decode to 4096x4096 each, at once, with
    ordinary requests among them: the server's peak memory grows by less than
    1 GB (before reading a GIF's first frame alone, one of these GIFs took
    ~17 MB a frame), a JPEG of 1,000 scans is refused, and every ordinary
    request is answered right."""
    side = 4096
    sheet = np.full((side, side, 1), 250, np.uint8)
    sheet[1000:3000, 1900:2200] = 20
    rgb = np.concatenate([sheet] * 3, axis=-1)
    rgba = np.concatenate([rgb, np.full_like(sheet, 255)], axis=-1)
    bombs = [
        [gif_of_frames(sheet[..., 0], 120)],                          # ~2 GB of frames
        [tf.io.encode_png(rgba).numpy()] * 10,                         # 10 x 268 MB as float
        [tf.io.encode_jpeg(rgb, progressive=True).numpy()] * 4,
        [gif_of_frames(sheet[..., 0], 120)],
        [jpeg_of_scans(rgb, 1000)],                                   # ~10 s of decoding
    ]
    ordinary = [[_png(image)] for image in IMAGES] * 3

    with _serve_script(exported[0]) as (process, url):
        def ask(pictures):
            return _call(url + PREDICT, serving.build_image_request(pictures, [7] * len(pictures)))

        expected = ask(ordinary[0])
        assert expected[0] == 200, expected
        before = _peak_memory_mb(process.pid)
        with concurrent.futures.ThreadPoolExecutor(len(bombs) + len(ordinary)) as pool:
            bomb_answers = [pool.submit(ask, pictures) for pictures in bombs]
            answers = [pool.submit(ask, pictures) for pictures in ordinary]
            answers = [a.result() for a in answers]
            bomb_answers = [a.result() for a in bomb_answers]
        growth = _peak_memory_mb(process.pid) - before
        assert process.poll() is None
        # Refused before decoding: more scans than any encoder writes.
        code, refusal = bomb_answers.pop()
        assert code == 400 and contract.IMAGE_BYTES_SCANS_RULE in refusal["error"], refusal
        assert [a[0] for a in bomb_answers] == [200] * (len(bombs) - 1), bomb_answers
        for (code, answer), pictures in zip(answers, ordinary):
            assert code == 200 and answer == ask(pictures)[1]
        assert growth < 1024, f"peak memory grew by {growth:.0f} MB"


def test_serve_script_refuses_a_folder_without_a_model(tmp_path):
    from mnist_sum_keras.cli import serve as serve_cli

    code, _, stderr = call_main(serve_cli.main, "--model", tmp_path, "--port", "0")
    assert code == 2 and "No SavedModel version folder" in stderr

"""A client for the model served by TF Serving's REST API."""

import json
import urllib.error
import urllib.request

import numpy as np

from mnist_sum_keras.config import IMAGE_SHAPE, MODEL_NAME, NUM_DIGITS
from mnist_sum_keras.export import SIGNATURE_KEY

DEFAULT_URL = f"http://localhost:8501/v1/models/{MODEL_NAME}:predict"
FORMATS = ("instances", "inputs")
OUTPUTS = ("digit", "sum", "digit_probabilities", "sum_probabilities")


def check_inputs(images, numbers):
    """Checks a batch before it is sent; returns uint8 images and int numbers.

    Raises:
        ValueError: naming the input, the value received and what is expected.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"image must have shape (batch, 28, 28). "
                         f"Received: shape={images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"image must be uint8 pixels 0..255. Received: dtype={images.dtype}")
    numbers = np.asarray(numbers)
    if numbers.shape != (len(images),) or not np.issubdtype(numbers.dtype, np.integer):
        raise ValueError(f"number must be {len(images)} integers, one per image. "
                         f"Received: dtype={numbers.dtype}, shape={numbers.shape}")
    bad = numbers[(numbers < 0) | (numbers >= NUM_DIGITS)]
    if bad.size:
        raise ValueError(f"number must be in 0..9. Received: number={int(bad[0])}")
    return images, numbers


def build_request(images, numbers, request_format="instances"):
    """The JSON body of a TF Serving REST predict request.

    Args:
        images: uint8 (batch, 28, 28), raw pixels.
        numbers: integers (batch,) in 0..9.
        request_format: "instances" (row format, one object per example) or
            "inputs" (column format, one list per input).

    Returns:
        A dict ready for `json.dumps`.
    """
    images, numbers = check_inputs(images, numbers)
    if request_format == "instances":
        body = [{"image": image.tolist(), "number": int(number)}
                for image, number in zip(images, numbers)]
    elif request_format == "inputs":
        body = {"image": images.tolist(), "number": numbers.tolist()}
    else:
        raise ValueError(f"request_format must be one of {FORMATS}. "
                         f"Received: request_format={request_format!r}")
    return {"signature_name": SIGNATURE_KEY, request_format: body}


def parse_response(body):
    """Turns a TF Serving REST response into a list of per-example dicts.

    Accepts both answers: `{"predictions": [...]}` (row) and `{"outputs":
    {...}}` (column). A response with `"error"` raises `RuntimeError` with
    the server's message.
    """
    if "error" in body:
        raise RuntimeError(f"TF Serving refused the request: {body['error']}")
    if "predictions" in body:
        rows = body["predictions"]
    elif "outputs" in body:
        columns = body["outputs"]
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    else:
        raise ValueError(f"Not a TF Serving predict response: keys {sorted(body)}")
    results = []
    for row in rows:
        missing = [name for name in OUTPUTS if name not in row]
        if missing:
            raise ValueError(f"TF Serving response lacks the outputs {missing}")
        results.append({
            "digit": int(row["digit"]),
            "sum": int(row["sum"]),
            "digit_probability": float(row["digit_probabilities"][int(row["digit"])]),
            "sum_probability": float(row["sum_probabilities"][int(row["sum"])]),
        })
    return results


def predict(images, numbers, url=DEFAULT_URL, request_format="instances", timeout=30):
    """Sends one predict request to TF Serving and returns `parse_response`."""
    data = json.dumps(build_request(images, numbers, request_format)).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:  # 400 carries TF Serving's error JSON.
        body = json.load(e)
    return parse_response(body)
